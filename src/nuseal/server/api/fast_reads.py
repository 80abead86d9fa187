"""The hot reads of a restore, answered as raw ASGI before FastAPI's routing: a version's ``.nupkg`` and ``.nuspec``
and the versions index from the flat container, and the index of the SemVer 1 registration hive.

Why by hand: through FastAPI these plain GETs paid for route matching, dependency injection, a thread-pool hop
(the routes are sync) and a file read per request, about four fifths of their cost (bench/feed). Here a request
whose answer is cached is served on the event loop: the documents and blob references come from the same
:class:`FeedReader` cache the routes use (so the same feed-state serial check: a change committed by any process
is seen on the next request), and blob bytes up to :data:`CACHED_BLOB_MAX` from a size-bounded LRU keyed by blob
key. Blob keys are content-addressed (a re-signed or re-pushed version gets a new key), so a cached key's bytes
never change; only keys the database row points at now are looked up, so an orphaned blob is never served.

The cache lookups run on the event loop: the serial check is one primary-key read (microseconds on SQLite; a
loopback round trip on PostgreSQL), and a document is rebuilt there only after the serial changed; blob bytes are
read in a thread, once per key.

Everything else goes to the application unchanged: other methods and paths, ``Range``, conditional requests
(``If-None-Match``, ``If-Range``, ``If-Modified-Since``), unknown ids and versions (their 404s), names that are
not the canonical lower-case ones, and blobs too big for the cache. The answers carry the same status, headers
and bytes as the routes' (tests/integration/server/test_fast_reads.py compares them).
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections import OrderedDict
from email.utils import formatdate
from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

from nuseal.server.api.responses import BLOB_CACHE, DOCUMENT_CACHE, JSON
from nuseal.server.services.feed_documents import BlobRef, FeedReader, Hive, Rendered
from nuseal.server.storage import BlobStore
from nuseal.versioning import NuGetVersion

#: Blobs up to this size are kept in memory once read (most packages are far smaller).
CACHED_BLOB_MAX: Final = 1024 * 1024
#: Total bytes of cached blobs per process.
CACHE_BYTES: Final = 64 * 1024 * 1024
_FLAT: Final = "/v3/flatcontainer/"
_REGISTRATION: Final = f"/v3/{Hive.SEMVER1.path}/"
#: Request headers that ask for something other than the whole current representation.
_CONDITIONAL: Final = frozenset({b"range", b"if-none-match", b"if-range", b"if-modified-since", b"if-match",
                                 b"if-unmodified-since"})
_Headers = list[tuple[bytes, bytes]]


class _BlobCache:
    """Bytes (and header values) of small blobs by key, least recently used out first (thread-safe)."""

    def __init__(self, max_bytes: int) -> None:
        self._max = max_bytes
        self._size = 0
        self._entries: OrderedDict[str, tuple[bytes, _Headers]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> tuple[bytes, _Headers] | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(self, key: str, data: bytes, headers: _Headers) -> None:
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = (data, headers)
            self._size += len(data)
            while self._size > self._max and self._entries:
                _, (dropped, _) = self._entries.popitem(last=False)
                self._size -= len(dropped)


class FastReads:
    """Pure ASGI middleware; see the module docstring."""

    def __init__(self, app: ASGIApp, *, feed: FeedReader, blobs: BlobStore, max_bytes: int = CACHE_BYTES) -> None:
        self.app = app
        self.feed = feed
        self.blobs = blobs
        self.cache = _BlobCache(max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD") and not scope.get("query_string") \
                and not any(name in _CONDITIONAL for name, _ in scope["headers"]):
            path: str = scope["path"]
            answer: tuple[bytes, _Headers] | None = None
            if path.startswith(_FLAT):
                answer = await self._flat(path[len(_FLAT):])
            elif path.startswith(_REGISTRATION) and path.endswith("/index.json"):
                answer = self._document(self.feed.registration_index(Hive.SEMVER1, path[len(_REGISTRATION):-11]))
            if answer is not None:
                await _send(send, answer, head=scope["method"] == "HEAD")
                return
        await self.app(scope, receive, send)

    async def _flat(self, rest: str) -> tuple[bytes, _Headers] | None:
        parts = rest.split("/")
        if len(parts) == 2 and parts[1] == "index.json" and _canonical_id(parts[0]):
            return self._document(self.feed.versions_index(parts[0]))
        if len(parts) != 3 or not _canonical_id(parts[0]):
            return None
        lower_id, lower_version, name = parts
        if not _canonical_version(lower_version):
            return None
        if name == f"{lower_id}.{lower_version}.nupkg":
            nuspec, media_type = False, b"application/octet-stream"
        elif name == f"{lower_id}.nuspec":
            nuspec, media_type = True, b"application/xml"
        else:
            return None
        ref = self.feed.blob(lower_id, lower_version, nuspec=nuspec)
        if ref is None or (ref.size is not None and ref.size > CACHED_BLOB_MAX):
            return None
        cached = self.cache.get(ref.key)
        if cached is None:
            cached = await asyncio.to_thread(self._load, ref, media_type, name)
            if cached is None:
                return None
        return cached

    def _load(self, ref: BlobRef, media_type: bytes, name: str) -> tuple[bytes, _Headers] | None:
        """Read a blob into the cache with the headers the route sends; None (the route answers) when it is gone
        or too big."""
        info = self.blobs.stat(ref.key)
        if info is None or info.size > CACHED_BLOB_MAX:
            return None
        with self.blobs.open(ref.key) as reader:
            data = reader.read()
        headers: _Headers = [
            (b"etag", ref.etag.encode()), (b"cache-control", BLOB_CACHE.encode()), (b"accept-ranges", b"bytes"),
            (b"content-disposition", f'attachment; filename="{name}"'.encode()),
        ]
        path = self.blobs.local_path(ref.key)
        if path is not None:  # the route's FileResponse path sends it too
            mtime = path.stat().st_mtime
            headers.append((b"last-modified", formatdate(mtime, usegmt=True).encode()))
        headers.append((b"content-type", media_type))
        self.cache.put(ref.key, data, headers)
        return data, headers

    @staticmethod
    def _document(rendered: Rendered | None) -> tuple[bytes, _Headers] | None:
        if rendered is None:
            return None
        return rendered.body, [(b"etag", rendered.etag.encode()), (b"cache-control", DOCUMENT_CACHE.encode()),
                               (b"content-type", JSON.encode())]  # fmt: skip


@functools.lru_cache(maxsize=4096)
def _canonical_version(text: str) -> bool:
    """``text`` is a version in its normalized lower-case spelling (memoized: parsing is most of a cached read)."""
    parsed = NuGetVersion.try_parse(text)
    return parsed is not None and parsed.lower == text


def _canonical_id(text: str) -> bool:
    """A lower-case id without path tricks (anything else is the routes' to answer)."""
    return 0 < len(text) <= 128 and text == text.lower() and "/" not in text and text not in (".", "..")


async def _send(send: Send, answer: tuple[bytes, _Headers], *, head: bool) -> None:
    body, headers = answer
    await send({"type": "http.response.start", "status": 200,
                "headers": [*headers, (b"content-length", str(len(body)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": b"" if head else body})
