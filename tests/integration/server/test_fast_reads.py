"""The raw-ASGI fast path for hot reads (``server/api/fast_reads.py``) answers exactly as the routes do, on both
backends: same status, headers and bytes for ``.nupkg``, ``.nuspec``, the versions index and the registration
index, GET and HEAD; requests it leaves to the routes (other case, ``Range``, blobs over the cache limit) still
work; and a change committed by another process (unlist, hard delete) shows on the very next request: a deleted
version's cached bytes are never served again.

The routes' own answer for the same path is obtained with an ``If-Modified-Since`` in 1970 (which the fast path
leaves to the routes, and which they answer with the full representation)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest
from tests.support.feed_http import TIMEOUT, api_key, push
from tests.support.feed_packages import build_package
from tests.support.server_factories import OPERATOR, user
from tests.support.server_fixtures import BACKENDS, DatabaseFactory, FeedServer, start_feed_server

from nuseal.server.api.fast_reads import CACHED_BLOB_MAX
from nuseal.server.services import packages

ROUTE_ONLY = {"If-Modified-Since": "Thu, 01 Jan 1970 00:00:00 GMT"}
NUPKG = "/v3/flatcontainer/fast.lib/1.0.0/fast.lib.1.0.0.nupkg"
PATHS = [NUPKG, "/v3/flatcontainer/fast.lib/1.0.0/fast.lib.nuspec", "/v3/flatcontainer/fast.lib/index.json",
         "/v3/registration/fast.lib/index.json"]


@pytest.fixture(scope="module", params=BACKENDS)
def feed(request: pytest.FixtureRequest, database_factory: DatabaseFactory,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[FeedServer]:
    folder = tmp_path_factory.mktemp(f"fast-{request.param}")
    server = start_feed_server(database_factory, request.param, folder)
    user(server.ctx, "alice")
    key = api_key(server.ctx, "alice")
    for version in ("1.0.0", "1.1.0"):
        assert push(server.url, key, build_package(folder / f"{version}.nupkg", "Fast.Lib", version)).status_code == 201
    big = build_package(folder / "big.nupkg", "Fast.Big", "1.0.0",
                        files={"content/blob.bin": os.urandom(CACHED_BLOB_MAX + 4096)})
    assert push(server.url, key, big).status_code == 201
    yield server
    server.stop()


def _comparable(answer: httpx.Response) -> tuple[int, bytes, dict[str, str]]:
    headers = {k.lower(): v for k, v in answer.headers.items() if k.lower() != "date"}
    return answer.status_code, answer.content, headers


@pytest.mark.parametrize("path", PATHS)
def test_fast_answers_are_the_routes_answers(feed: FeedServer, path: str) -> None:
    with httpx.Client(base_url=feed.url, timeout=TIMEOUT) as client:
        fast = [client.get(path) for _ in range(2)]  # the second from the caches
        route = client.get(path, headers=ROUTE_ONLY)
        assert route.status_code == 200
        assert _comparable(fast[0]) == _comparable(fast[1]) == _comparable(route)
        head = client.head(path)
        assert head.status_code == 200 and head.content == b""
        assert {k: v for k, v in head.headers.items() if k != "date"} == _comparable(route)[2]


def test_what_the_fast_path_leaves_to_the_routes(feed: FeedServer) -> None:
    with httpx.Client(base_url=feed.url, timeout=TIMEOUT) as client:
        whole = client.get(NUPKG).content
        assert client.get(NUPKG.replace("fast.lib", "Fast.Lib")).content == whole
        partial = client.get(NUPKG, headers={"Range": "bytes=0-9"})
        assert partial.status_code == 206 and partial.content == whole[:10]
        assert client.get(NUPKG, headers={"If-None-Match": client.get(NUPKG).headers["etag"]}).status_code == 304
        assert client.get("/v3/flatcontainer/fast.lib/9.9.9/fast.lib.9.9.9.nupkg").status_code == 404
        assert client.get("/v3/flatcontainer/fast.lib/1.0.0/other.1.0.0.nupkg").status_code == 404
        assert client.get("/v3/registration/no.such/index.json").status_code == 404
        big = client.get("/v3/flatcontainer/fast.big/1.0.0/fast.big.1.0.0.nupkg")
        assert big.status_code == 200 and len(big.content) > CACHED_BLOB_MAX


def test_changes_by_another_process_show_at_once(feed: FeedServer) -> None:
    path = "/v3/flatcontainer/fast.lib/1.1.0/fast.lib.1.1.0.nupkg"
    with httpx.Client(base_url=feed.url, timeout=TIMEOUT) as client:
        assert client.get(path).status_code == 200  # cached now
        packages.set_listed(feed.ctx, OPERATOR, "Fast.Lib", "1.1.0", listed=False)  # this test process
        leaves = client.get("/v3/registration/fast.lib/index.json").json()["items"][0]["items"]
        assert {leaf["catalogEntry"]["version"]: leaf["catalogEntry"]["listed"] for leaf in leaves} == {
            "1.0.0": True, "1.1.0": False}
        packages.delete_version(feed.ctx, OPERATOR, "Fast.Lib", "1.1.0")
        assert client.get(path).status_code == 404
        assert client.get("/v3/flatcontainer/fast.lib/index.json").json() == {"versions": ["1.0.0"]}
