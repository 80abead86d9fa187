"""``FastReads`` as an ASGI middleware, on both backends: which requests it answers itself (without calling the
application behind it) and which it hands on; a deleted version is handed on at once, never served from the blob
cache. (Over HTTP, tests/integration/server/test_fast_reads.py checks its answers equal the routes'.)"""

from __future__ import annotations

import asyncio
from pathlib import Path

from starlette.types import Message, Receive, Scope, Send
from tests.support.feed_packages import build_package
from tests.support.server_factories import OPERATOR, user

from nuseal.server.api.fast_reads import FastReads
from nuseal.server.services import apikeys, packages, push
from nuseal.server.services.context import ServiceContext
from nuseal.server.services.feed_documents import FeedReader

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


def test_answers_hot_reads_itself_and_hands_on_the_rest(service_ctx: ServiceContext, tmp_path: Path) -> None:
    user(service_ctx, "alice")
    token = apikeys.create(service_ctx, OPERATOR, "alice").token
    pushed = push.push_package(service_ctx, apikeys.authenticate(service_ctx, token),
                               build_package(tmp_path / "p.nupkg", "Contoso.Lib", "1.0.0"))
    assert pushed.status == "available"
    behind = Behind()
    app = FastReads(behind, feed=FeedReader(service_ctx.db, "http://feed.test"), blobs=service_ctx.blobs)

    status, headers, body = call(app, NUPKG)
    ref = FeedReader(service_ctx.db, "http://feed.test").blob("contoso.lib", "1.0.0")
    assert ref is not None
    with service_ctx.blobs.open(ref.key) as reader:
        assert (status, body) == (200, reader.read())
    assert headers[b"etag"] == ref.etag.encode() and headers[b"content-length"] == str(len(body)).encode()
    assert call(app, NUPKG, method="HEAD")[::2] == (200, b"")
    index = call(app, "/v3/registration/contoso.lib/index.json")
    assert index[0] == 200 and b'"1.0.0"' in index[2]
    assert call(app, "/v3/flatcontainer/contoso.lib/index.json")[2] == b'{"versions":["1.0.0"]}'
    assert behind.paths == []

    handed_on = [
        ("/v3/flatcontainer/Contoso.Lib/1.0.0/contoso.lib.1.0.0.nupkg", []),
        (NUPKG, [(b"range", b"bytes=0-1")]),
        (NUPKG, [(b"if-none-match", ref.etag.encode())]),
        ("/v3/flatcontainer/contoso.lib/1.0/contoso.lib.1.0.nupkg", []),
        ("/v3/flatcontainer/contoso.lib/2.0.0/contoso.lib.2.0.0.nupkg", []),
        ("/v3/registration-gz/contoso.lib/index.json", []),
        ("/v3/registration/contoso.lib/../index.json", []),
        ("/api/v2/package", []),
    ]
    for path, headers_ in handed_on:
        assert call(app, path, headers=headers_)[0] == 418, path
    assert behind.paths == [path for path, _ in handed_on]

    packages.delete_version(service_ctx, OPERATOR, "Contoso.Lib", "1.0.0")
    assert call(app, NUPKG)[0] == 418  # the route answers (404): the cached bytes are not served
    assert call(app, "/v3/registration/contoso.lib/index.json")[0] == 418
