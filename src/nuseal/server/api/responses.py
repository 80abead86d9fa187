"""HTTP answers shared by the routes: rendered JSON documents and stored blobs, with caching headers; plain-text
errors carrying their message as the HTTP reason phrase (for NuGet clients).

- Documents: strong ETag, ``If-None-Match`` → 304, ``Cache-Control`` short (the feed changes with every push),
  gzip when the route asks for it (registration hives 3.4.0/3.6.0) and the client accepts it.
- Blobs: the exact stored bytes, strong ETag from the stored SHA-512, a long ``Cache-Control``, ``HEAD`` and
  ``Range`` (206, or 416 with ``Content-Range: bytes */SIZE``). A folder store hands the file to Starlette's
  ``FileResponse`` (single and multiple ranges, ``If-Range``); other stores stream one range from the backend.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from email.utils import formatdate
from typing import Final

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from nuseal.server.reason_phrase import send_with_reason, supports_reason
from nuseal.server.services.feed_documents import BlobRef, Rendered
from nuseal.server.storage import BlobStore, RangeNotSatisfiableError

JSON: Final = "application/json; charset=utf-8"
#: Indexes, registrations and search change with every push: clients may reuse them briefly, then revalidate.
DOCUMENT_CACHE: Final = "public, max-age=10, must-revalidate"
#: A version's bytes change only when it is re-signed or deleted and pushed again: cache for a day.
BLOB_CACHE: Final = "public, max-age=86400"
NO_STORE: Final = "no-store"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
#: Blobs up to this size (without a Range header) are read in one go rather than streamed.
SMALL_BLOB: Final = 1024 * 1024
_MISSING: Final = "the stored package is missing; ask the feed's operator"


def _last_modified(mtime: float) -> dict[str, str]:
    return {"Last-Modified": formatdate(mtime, usegmt=True)}



def _matches(if_none_match: str | None, etag: str) -> bool:
    """Weak comparison, as ``If-None-Match`` wants (RFC 9110 §13.1.2)."""
    if if_none_match is None:
        return False
    if if_none_match.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in if_none_match.split(","))


def _accepts_gzip(request: Request) -> bool:
    for part in request.headers.get("accept-encoding", "").split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*") and params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00"):
            return True
    return False


def document_response(request: Request, rendered: Rendered, *, cache_control: str = DOCUMENT_CACHE,
                      gzip: bool = False, media_type: str = JSON) -> Response:
    """A rendered document (JSON unless ``media_type`` says otherwise) or 304, gzip-encoded when ``gzip`` and the
    client accepts it."""
    encoded = gzip and _accepts_gzip(request)
    etag = rendered.gzip_etag if encoded else rendered.etag
    headers = {"ETag": etag, "Cache-Control": cache_control}
    if gzip:
        headers["Vary"] = "Accept-Encoding"
    if _matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    if encoded:
        headers["Content-Encoding"] = "gzip"
        return Response(rendered.gzip_body, media_type=media_type, headers=headers)
    return Response(rendered.body, media_type=media_type, headers=headers)


def _single_range(header: str, size: int) -> tuple[int, int] | None:
    """``(start, length)`` of a one-range ``Range`` header; None when it is not one (then the whole blob is
    sent, as RFC 9110 allows); :class:`RangeNotSatisfiableError` when it lies outside the blob."""
    match = _RANGE.match(header.strip().replace(" ", ""))
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        length = min(int(last), size)
        if length == 0:
            raise RangeNotSatisfiableError(f"range '{header}' selects no byte of {size}")
        return size - length, length
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        raise RangeNotSatisfiableError(f"range '{header}' is outside the {size} bytes")
    return start, end - start + 1


def _stream(store: BlobStore, key: str, offset: int, length: int) -> Iterator[bytes]:
    # A sync iterator: Starlette runs each next() in its thread pool, so S3 reads never block the event loop.
    yield from store.open(key, offset=offset, length=length).iter_chunks(256 * 1024)


def blob_response(request: Request, store: BlobStore, ref: BlobRef, *, media_type: str,
                  filename: str | None = None) -> Response:
    """The stored bytes of ``ref`` (GET or HEAD) with ETag, Cache-Control and Range support."""
    headers = {"ETag": ref.etag, "Cache-Control": BLOB_CACHE, "Accept-Ranges": "bytes"}
    if filename is not None:
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    if _matches(request.headers.get("if-none-match"), ref.etag):
        return Response(status_code=304, headers={k: v for k, v in headers.items() if k != "Content-Disposition"})
    path = store.local_path(ref.key)
    if path is not None:
        try:
            stat = os.stat(path)
        except FileNotFoundError:  # the row points at a blob that is gone: an operator's problem, not the client's
            return Response(_MISSING, status_code=503, media_type="text/plain")
        if "range" not in request.headers and stat.st_size <= SMALL_BLOB:
            # Most packages are small: one read here (routes run in the thread pool) beats FileResponse's
            # thread hop per 64 KiB chunk.
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                return Response(_MISSING, status_code=503, media_type="text/plain")
            return Response(data, media_type=media_type, headers={**headers, **_last_modified(stat.st_mtime)})
        return FileResponse(path, media_type=media_type, headers=headers, stat_result=stat)
    info = store.stat(ref.key)
    if info is None:
        return Response(_MISSING, status_code=503, media_type="text/plain")
    size = info.size
    wanted = request.headers.get("range")
    if_range = request.headers.get("if-range")
    span = None
    if wanted is not None and (if_range is None or if_range.strip() == ref.etag):
        try:
            span = _single_range(wanted, size)
        except RangeNotSatisfiableError:
            return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    if request.method == "HEAD":
        length = span[1] if span else size
        extra = {"Content-Range": f"bytes {span[0]}-{span[0] + span[1] - 1}/{size}"} if span else {}
        return Response(status_code=206 if span else 200, media_type=media_type,
                        headers={**headers, **extra, "Content-Length": str(length)})
    start, length = span if span else (0, size)
    extra = {"Content-Range": f"bytes {start}-{start + length - 1}/{size}"} if span else {}
    return StreamingResponse(_stream(store, ref.key, start, length), status_code=206 if span else 200,
                             media_type=media_type, headers={**headers, **extra, "Content-Length": str(length)})


class ReasonPhraseText(PlainTextResponse):
    """A plain-text answer whose status line carries ``reason`` as its reason phrase, when the server can write one
    (:mod:`nuseal.server.reason_phrase`; elsewhere, e.g. under a test client, the standard phrase stays)."""

    def __init__(self, content: str, *, status_code: int, reason: str) -> None:
        super().__init__(content, status_code=status_code)
        self.reason = reason

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send_with_reason(send, self.reason) if supports_reason(scope) else send)
