"""bench/feed's ceiling: the smallest ASGI application under the same uvicorn (httptools, uvloop) as nuseal serve.

It answers GET with the bytes of the files under ``$BENCH_BARE_ROOT`` (read into memory at start) and nothing
else, so its rate is what uvicorn itself allows on this machine: nuseal's reads are compared with it for
information (how much of the gap to nginx is the Python HTTP server rather than nuseal's work).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

_ROOT = Path(os.environ.get("BENCH_BARE_ROOT", "."))
FILES = {"/" + str(p.relative_to(_ROOT)): p.read_bytes() for p in _ROOT.rglob("*") if p.is_file()}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = FILES.get(scope["path"])
    status = 200 if body is not None else 404
    body = body or b""
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
