"""Talking to a running feed over real HTTP the way NuGet clients do (nuget.exe 5.8's push: ``PUT`` to the
publish URL with a trailing slash, ``X-NuGet-ApiKey``, ``multipart/form-data`` with a quoted boundary, sent
chunked without ``Content-Length``)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx

from nuseal.server.services import apikeys
from nuseal.server.services.context import ServiceContext
from nuseal.server.services.permissions import Operator

TIMEOUT = 60.0


def multipart(data: bytes, boundary: str, *, filename: str = "package.nupkg") -> bytes:
    return (f"--{boundary}\r\nContent-Type: application/octet-stream\r\n"
            f'Content-Disposition: form-data; name="package"; filename="{filename}"\r\n\r\n').encode() + data + \
        f"\r\n--{boundary}--\r\n".encode()


def _chunks(body: bytes, size: int = 16 * 1024) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start:start + size]


def push(base_url: str, key: str | None, package: Path | bytes, *, chunked: bool = True,
         trailing_slash: bool = True) -> httpx.Response:
    """Push ``package`` as nuget.exe does; returns the response (any status)."""
    data = package if isinstance(package, bytes) else package.read_bytes()
    boundary = secrets.token_hex(16)
    body = multipart(data, boundary)
    headers = {"Content-Type": f'multipart/form-data; boundary="{boundary}"', "User-Agent": "NuGet Command Line/5.8.0"}
    if key is not None:
        headers["X-NuGet-ApiKey"] = key
    url = f"{base_url}/api/v2/package" + ("/" if trailing_slash else "")
    content: bytes | Iterator[bytes] = _chunks(body) if chunked else body
    return httpx.put(url, content=content, headers=headers, timeout=TIMEOUT)


def api_key(ctx: ServiceContext, owner: str, holder: str | None = None, *,
            scopes: tuple[str, ...] = ("package:push", "package:unlist"), globs: tuple[str, ...] = ("*",),
            days: int = 30) -> str:
    """A new key (created by the operator) acting for ``owner``, held by ``holder``."""
    return apikeys.create(ctx, Operator(), owner, holder_name=holder, scopes=list(scopes), globs=list(globs),
                          expires_in_days=days).token
