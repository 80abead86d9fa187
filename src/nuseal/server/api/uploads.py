"""Receiving uploads, bounded: a pushed package (push and dry run) and a certificate file.

A pushed package: the request body streamed into a local temporary file, counted as it arrives.

NuGet clients send ``multipart/form-data`` whose first part is the ``.nupkg`` (its field name and headers do not
matter); nuget.exe quotes the boundary and sends the body chunked, without ``Content-Length``. So the size limit
is enforced on the bytes as they arrive: a declared ``Content-Length`` over the limit is refused before reading
anything (uvicorn then never sends ``100 Continue``), and a body that grows past it is refused as soon as it
does, without keeping it. A body that is not multipart is taken as the raw package (``curl --data-binary``).

The multipart framing is parsed by python-multipart's streaming parser (the one Starlette uses), fed chunk by
chunk: Starlette's own ``request.form()`` would first spool the whole body without a size limit.

A certificate (at most 10,000 bytes): :func:`capped` bounds the body (refused from ``Content-Length``, or as soon
as a chunked body passes the limit), then :func:`single_file` parses the small form with Starlette.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Final

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.datastructures import FormData, UploadFile
from starlette.requests import ClientDisconnect, Request
from starlette.types import Message

from nuseal.server.services.errors import InvalidInputError
from nuseal.server.storage import BlobTooLargeError

#: Room for the multipart framing around the package (boundaries, part headers, other small parts).
MULTIPART_SLACK: Final = 64 * 1024
#: nuget.org's texts.
TOO_LARGE: Final = "The package file exceeds the size limit. Please try again."
CANCELLED: Final = "The package upload failed due to the client disconnecting."
NO_PACKAGE: Final = ("The request has no package: send multipart/form-data with the .nupkg as its first part "
                     "(as NuGet clients do).")


class _FirstPart:
    """Writes the first multipart part's bytes to ``out``, refusing more than ``limit`` of them."""

    def __init__(self, out: BinaryIO, limit: int) -> None:
        self.out = out
        self.limit = limit
        self.parts = 0
        self.size = 0

    def on_part_begin(self) -> None:
        self.parts += 1

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.parts != 1:
            return
        self.size += end - start
        if self.size > self.limit:
            raise BlobTooLargeError(TOO_LARGE)
        self.out.write(data[start:end])


def _boundary(content_type: str) -> bytes | None:
    kind, options = parse_options_header(content_type)
    if kind.lower() != b"multipart/form-data":
        return None
    boundary = options.get(b"boundary")
    if not boundary:
        raise InvalidInputError("The request is multipart/form-data without a boundary.")
    return boundary


async def receive_package(request: Request, folder: Path, max_bytes: int) -> Path:
    """Write the pushed package to a new file in ``folder`` and return its path (the caller deletes it).

    :class:`BlobTooLargeError` (413) past ``max_bytes``; :class:`InvalidInputError` (400) for a malformed or
    empty body or a client that went away mid-upload.
    """
    declared = request.headers.get("content-length", "").strip()
    if declared.isdigit() and int(declared) > max_bytes + MULTIPART_SLACK:
        raise BlobTooLargeError(TOO_LARGE)
    boundary = _boundary(request.headers.get("content-type", ""))
    folder.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix="push-", suffix=".nupkg.part", dir=folder)
    path = Path(name)
    try:
        with os.fdopen(handle, "wb") as out:
            received = await _copy(request, out, boundary, max_bytes)
        if received == 0:
            raise InvalidInputError(NO_PACKAGE)
        return path
    except BaseException:
        path.unlink(missing_ok=True)
        raise


async def _copy(request: Request, out: BinaryIO, boundary: bytes | None, max_bytes: int) -> int:
    """Feed the body to ``out`` (through the multipart parser when there is a boundary); the package's size."""
    total = 0
    limit = max_bytes + (MULTIPART_SLACK if boundary is not None else 0)
    first = _FirstPart(out, max_bytes)
    parser = MultipartParser(boundary, {"on_part_begin": first.on_part_begin, "on_part_data": first.on_part_data}
                             ) if boundary is not None else None
    try:
        # Local-disk writes of <= 64 KiB chunks are fast enough to do on the event loop.
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise BlobTooLargeError(TOO_LARGE)
            if parser is not None:
                parser.write(chunk)
            else:
                out.write(chunk)
        if parser is not None:
            parser.finalize()
    except ClientDisconnect:
        raise InvalidInputError(CANCELLED) from None
    except MultipartParseError as exc:
        raise InvalidInputError(f"The request body is not valid multipart/form-data: {exc}") from None
    return first.size if parser is not None else total


# --- small uploads (certificates) ---------------------------------------------------------------------------------


class BodyTooLarge(BlobTooLargeError):
    """The request body is larger than the route accepts (HTTP 413)."""


#: A body announced as too large is read and dropped up to this size before the 413 answer, so that clients which
#: send the whole body before reading the answer (httpx, NuGet) see the 413 rather than a reset connection.
DRAIN_LIMIT: Final = 64 * 1024 * 1024


async def capped(request: Request, limit: int, what: str) -> Request:
    """A view of ``request`` whose body may not exceed ``limit`` bytes: refused up front from Content-Length, or as
    soon as a chunked body passes the limit, before it is parsed or spooled any further. Nothing is kept."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        if int(declared) <= DRAIN_LIMIT:
            async for _chunk in request.stream():
                pass
        raise BodyTooLarge(f"{what}: the request body has {declared} bytes, more than the {limit} accepted")
    received = 0
    receive = request.receive

    async def bounded() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(f"{what}: the request body is larger than the {limit} bytes accepted")
        return message

    return Request(request.scope, receive=bounded)


async def single_file(request: Request, what: str) -> UploadFile | None:
    """The one file part of a multipart form (whatever its field name), or None when there is none."""
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise InvalidInputError(f"{what}: send the file as multipart/form-data (got '{content_type or 'no body'}')")
    form: FormData = await request.form(max_files=1, max_fields=16)
    files = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
    return files[0] if files else None


async def read_at_most(upload: UploadFile, limit: int) -> bytes:
    """Up to ``limit + 1`` bytes of an uploaded file (enough to tell that it is too large)."""
    return await upload.read(limit + 1)
