"""``FastReads`` as an ASGI middleware over both blob stores: which requests it answers itself (without calling the
application behind it) and which it hands on; once the feed no longer points at a blob, its cached bytes are not
served. (Over HTTP with the real feed, tests/integration/server/test_fast_reads.py checks its answers equal the
routes' and that changes by another process show at once.)"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
from typing import cast

from starlette.types import Message, Receive, Scope, Send

from nuseal.server.api.fast_reads import FastReads
from nuseal.server.services.context import ServiceContext
from nuseal.server.services.feed_documents import BlobRef, FeedReader, Hive, Rendered

NUPKG = "/v3/flatcontainer/contoso.lib/1.0.0/contoso.lib.1.0.0.nupkg"


class Behind:
    """The application behind the middleware: records the paths handed to it, answers 418."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.paths.append(scope["path"])
        await send({"type": "http.response.start", "status": 418, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def call(app: FastReads, path: str, *, method: str = "GET", headers: list[tuple[bytes, bytes]] | None = None,
         ) -> tuple[int, dict[bytes, bytes], bytes]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "query_string": b"", "headers": headers or []}
    asyncio.run(app(scope, receive, send))
    return int(sent[0]["status"]), dict(sent[0]["headers"]), b"".join(m.get("body", b"") for m in sent[1:])


class Feed:
    """The :class:`FeedReader` methods the fast path uses, over one version whose refs the test sets."""

    def __init__(self, ref: BlobRef, index: Rendered) -> None:
        self.ref: BlobRef | None = ref
        self.index: Rendered | None = index

    def blob(self, lower_id: str, lower_version: str, *, nuspec: bool = False) -> BlobRef | None:
        return self.ref if (lower_id, lower_version, nuspec) == ("contoso.lib", "1.0.0", False) else None

    def versions_index(self, lower_id: str) -> Rendered | None:
        return Rendered.of(b'{"versions":["1.0.0"]}') if lower_id == "contoso.lib" and self.ref else None

    def registration_index(self, hive: Hive, lower_id: str) -> Rendered | None:
        return self.index if (hive, lower_id) == (Hive.SEMVER1, "contoso.lib") else None


def test_answers_hot_reads_itself_and_hands_on_the_rest(service_ctx: ServiceContext) -> None:
    data = b"PK-the-package-bytes"
    key = "packages/contoso.lib/1.0.0/0123456789ab.nupkg"
    service_ctx.blobs.put(key, io.BytesIO(data))
    ref = BlobRef(key, len(data), base64.b64encode(hashlib.sha512(data).digest()).decode())
    feed = Feed(ref, Rendered.of(b'{"count":1}'))
    behind = Behind()
    app = FastReads(behind, feed=cast(FeedReader, feed), blobs=service_ctx.blobs)

    status, headers, body = call(app, NUPKG)
    assert (status, body) == (200, data)
    assert headers[b"etag"] == ref.etag.encode() and headers[b"content-length"] == str(len(data)).encode()
    assert headers[b"content-type"] == b"application/octet-stream"
    assert call(app, NUPKG, method="HEAD")[::2] == (200, b"")
    assert call(app, "/v3/registration/contoso.lib/index.json")[::2] == (200, b'{"count":1}')
    assert call(app, "/v3/flatcontainer/contoso.lib/index.json")[2] == b'{"versions":["1.0.0"]}'
    assert behind.paths == []

    handed_on = [
        ("/v3/flatcontainer/Contoso.Lib/1.0.0/contoso.lib.1.0.0.nupkg", []),
        (NUPKG, [(b"range", b"bytes=0-1")]),
        (NUPKG, [(b"if-none-match", ref.etag.encode())]),
        ("/v3/flatcontainer/contoso.lib/1.0/contoso.lib.1.0.nupkg", []),
        ("/v3/flatcontainer/contoso.lib/2.0.0/contoso.lib.2.0.0.nupkg", []),
        ("/v3/flatcontainer/contoso.lib/1.0.0/contoso.lib.nuspec", []),
        ("/v3/registration-gz/contoso.lib/index.json", []),
        ("/v3/registration/contoso.lib/../index.json", []),
        ("/api/v2/package", []),
    ]
    for path, headers_ in handed_on:
        assert call(app, path, headers=headers_)[0] == 418, path
    assert behind.paths == [path for path, _ in handed_on]

    feed.ref = feed.index = None  # the version deleted: the feed no longer points at the (cached) blob
    assert call(app, NUPKG)[0] == 418  # the route answers (404): the cached bytes are not served
    assert call(app, "/v3/registration/contoso.lib/index.json")[0] == 418
