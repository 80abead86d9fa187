"""The NuGet V3 feed over real HTTP, on both backends: a real ``nuseal serve`` process (SQLite + folder, and
PostgreSQL + S3), pushed to the way nuget.exe pushes, read the way NuGet clients read; the status API; refusals
with nuget.org's statuses and texts; the size limit enforced while streaming; two server processes on one
database seeing each other's changes at once."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from tests.support.feed_http import TIMEOUT, api_key, multipart, push
from tests.support.feed_packages import build_package, sign
from tests.support.pki import TestPki
from tests.support.server_factories import OPERATOR, organization, user
from tests.support.server_fixtures import BACKENDS, DatabaseFactory, FeedServer, start_feed_server
from tests.support.tamper import append_to_entry

from nuseal.protocol.package_content import PackageVersionsIndex
from nuseal.protocol.registration import RegistrationIndex
from nuseal.protocol.search import AutocompleteIds, AutocompleteVersions, SearchResponse
from nuseal.protocol.service_index import ResourceKind, ServiceIndex
from nuseal.server.services import certificates

LIMIT = 300_000  # the server's max_package_bytes in this module


@pytest.fixture(scope="module", params=BACKENDS)
def feed(request: pytest.FixtureRequest, database_factory: DatabaseFactory, pki: TestPki,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[FeedServer]:
    folder = tmp_path_factory.mktemp(f"feed-{request.param}")
    roots = folder / "roots.pem"
    roots.write_bytes(pki.root.pem)
    server = start_feed_server(database_factory, request.param, folder, roots=roots,
                               env={"NUSEAL_MAX_PACKAGE_BYTES": str(LIMIT)})
    for name in ("alice", "carl", "eve"):
        user(server.ctx, name)
    organization(server.ctx, "contoso", admins=["alice"], collaborators=["carl"])
    yield server
    server.stop()


@pytest.fixture(scope="module")
def alice(feed: FeedServer) -> str:
    return api_key(feed.ctx, "alice")


def get(feed: FeedServer, path: str, **headers: str) -> httpx.Response:
    return httpx.get(feed.url + path, headers=headers, timeout=TIMEOUT)


def test_push_then_read_everything_a_client_reads(feed: FeedServer, alice: str, tmp_path: Path) -> None:
    path = build_package(tmp_path / "p.nupkg", "Http.Lib", "1.0.0-Beta+build.1", metadata="<title>Http</title>",
                         dependencies=[("net8.0", [("Newtonsoft.Json", "13.0.1")])])
    pushed = push(feed.url, alice, path)  # chunked, quoted boundary, trailing slash: as nuget.exe
    assert (pushed.status_code, pushed.text) == (201, "")

    index = ServiceIndex.parse(get(feed, "/v3/index.json").content, source="index")
    flat = index.url(ResourceKind.PACKAGE_BASE_ADDRESS)
    assert flat == f"{feed.url}/v3/flatcontainer/"
    versions = httpx.get(f"{flat}http.lib/index.json", timeout=TIMEOUT)
    assert versions.headers["content-type"] == "application/json; charset=utf-8"
    assert [v.lower for v in PackageVersionsIndex.parse(versions.content, source="v").versions] == ["1.0.0-beta"]

    nupkg = f"{flat}http.lib/1.0.0-beta/http.lib.1.0.0-beta.nupkg"
    got = httpx.get(nupkg, timeout=TIMEOUT)
    assert got.status_code == 200 and got.content == path.read_bytes()  # the stored bytes, exactly
    etag = got.headers["etag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    assert got.headers["cache-control"] == "public, max-age=86400"
    assert got.headers["content-type"] == "application/octet-stream" and got.headers["accept-ranges"] == "bytes"
    assert httpx.get(nupkg, headers={"If-None-Match": etag}, timeout=TIMEOUT).status_code == 304
    shouting = httpx.get(f"{flat}HTTP.LIB/1.0.0-BETA/HTTP.LIB.1.0.0-BETA.NUPKG", timeout=TIMEOUT)
    assert shouting.content == path.read_bytes()  # ids and versions in any case
    head = httpx.head(nupkg, timeout=TIMEOUT)
    assert (head.status_code, head.content, head.headers["content-length"], head.headers["etag"]) == (
        200, b"", str(path.stat().st_size), etag)
    part = httpx.get(nupkg, headers={"Range": "bytes=2-11"}, timeout=TIMEOUT)
    assert (part.status_code, part.content) == (206, path.read_bytes()[2:12])
    assert part.headers["content-range"] == f"bytes 2-11/{path.stat().st_size}"
    tail = httpx.get(nupkg, headers={"Range": "bytes=-5"}, timeout=TIMEOUT)
    assert (tail.status_code, tail.content) == (206, path.read_bytes()[-5:])
    beyond = httpx.get(nupkg, headers={"Range": f"bytes={path.stat().st_size + 10}-"}, timeout=TIMEOUT)
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{path.stat().st_size}"
    nuspec = httpx.get(f"{flat}http.lib/1.0.0-beta/http.lib.nuspec", timeout=TIMEOUT)
    assert nuspec.status_code == 200 and b"<id>Http.Lib</id>" in nuspec.content

    semver2 = get(feed, "/v3/registration-gz-semver2/http.lib/index.json", **{"Accept-Encoding": "gzip"})
    assert semver2.headers["content-encoding"] == "gzip" and semver2.headers["vary"] == "Accept-Encoding"
    registration = RegistrationIndex.parse(semver2.content, source="r")  # httpx decoded the gzip
    [leaf] = registration.items[0].items or []
    assert leaf.catalog_entry.version.full == "1.0.0-Beta+build.1" and leaf.catalog_entry.title == "Http"
    assert leaf.package_content == nupkg
    plain = httpx.get(f"{feed.url}/v3/registration-gz-semver2/http.lib/index.json",
                      headers={"Accept-Encoding": "identity"}, timeout=TIMEOUT)
    assert "content-encoding" not in plain.headers and json.loads(plain.content)["count"] == 1
    # SemVer 2 (build metadata): not in the SemVer 1 hives
    assert get(feed, "/v3/registration-gz/http.lib/index.json").status_code == 404
    assert get(feed, "/v3/registration/http.lib/index.json").status_code == 404

    found = SearchResponse.parse(get(feed, "/v3/search?q=http.lib&prerelease=true&semVerLevel=2.0.0").content,
                                 source="s")
    assert [(r.id, r.version.full, r.owners) for r in found.data] == [("Http.Lib", "1.0.0-Beta+build.1", ["alice"])]
    assert SearchResponse.parse(get(feed, "/v3/search?q=http.lib&prerelease=true").content, source="s").data == []
    ids = AutocompleteIds.parse(get(feed, "/v3/autocomplete?q=http&prerelease=true&semVerLevel=2.0.0").content,
                                source="a")
    assert ids.data == ["Http.Lib"]
    versions_of = AutocompleteVersions.parse(
        get(feed, "/v3/autocomplete?id=HTTP.LIB&prerelease=true&semVerLevel=2.0.0").content, source="a")
    assert [v.full for v in versions_of.data] == ["1.0.0-Beta+build.1"]

    status = get(feed, "/api/v1/packages/http.lib/1.0.0-BETA")
    assert status.headers["cache-control"] == "no-store"
    body = status.json()
    assert set(body) == {"id", "version", "status", "listed", "owners", "findings", "pushed_at", "pushed_by"}
    assert (body["id"], body["version"], body["status"], body["listed"], body["owners"], body["findings"],
            body["pushed_by"]) == ("Http.Lib", "1.0.0-Beta+build.1", "available", True, ["alice"], [], "alice")


def test_documents_answer_304_to_their_etag_and_404_as_problem_json(feed: FeedServer) -> None:
    first = get(feed, "/v3/index.json")
    assert first.headers["etag"] and first.headers["cache-control"].startswith("public")
    assert get(feed, "/v3/index.json", **{"If-None-Match": first.headers["etag"]}).status_code == 304
    missing = get(feed, "/v3/flatcontainer/no.such.package/index.json")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["detail"] == "no package 'no.such.package'"
    assert get(feed, "/v3/flatcontainer/no.such.package/1.0.0/no.such.package.1.0.0.nupkg").status_code == 404
    assert get(feed, "/v3/registration/no.such.package/index.json").status_code == 404
    unknown = get(feed, "/api/v1/packages/No.Such/1.0.0")
    assert (unknown.status_code, unknown.json()["detail"]) == (404, "no package 'No.Such'")
    assert get(feed, "/api/v1/packages/No.Such/not-a-version").status_code == 404
    assert get(feed, "/v3/search?take=100000").status_code == 422


def test_the_v2_feed_serves_xml_and_refuses_what_it_does_not_understand(feed: FeedServer, alice: str,
                                                                         tmp_path: Path) -> None:
    assert push(feed.url, alice, build_package(tmp_path / "v2.nupkg", "V2.Lib", "1.0.0")).status_code == 201
    index = ServiceIndex.parse(get(feed, "/v3/index.json").content, source="index")
    base = index.url(ResourceKind.LEGACY_GALLERY)
    assert base == f"{feed.url}/api/v2"
    for path in ("", "/"):
        service = httpx.get(base + path, timeout=TIMEOUT)
        assert (service.status_code, service.headers["content-type"]) == (200, "application/xml;charset=utf-8")
        assert b"<collection href=\"Packages\">" in service.content
    assert b'FunctionImport Name="Search"' in httpx.get(f"{base}/$metadata", timeout=TIMEOUT).content
    found = httpx.get(f"{base}/Search()?$filter=IsLatestVersion&$orderby=Id&searchTerm='v2.lib'&targetFramework=''"
                      "&includePrerelease=false&$skip=0&$top=30&semVerLevel=2.0.0", timeout=TIMEOUT)
    assert found.headers["content-type"] == "application/atom+xml;type=feed;charset=utf-8"
    assert b"<d:Id>V2.Lib</d:Id>" in found.content and found.headers["etag"]
    entry = httpx.get(f"{base}/Packages(Id='V2.Lib',Version='1.0.0')", timeout=TIMEOUT)
    assert entry.status_code == 200 and b"<d:Version>1.0.0</d:Version>" in entry.content
    refusals = {
        "/Search()?$filter=Id eq 'x'": "$filter \"Id eq 'x'\" is not supported by this feed",
        "/Search()?$select=Id": "query option $select is not supported by this feed",
        "/Search()?searchTerm='open": "searchTerm: \"'open\" is not an OData string literal",
        "/Packages()?$orderby=DownloadCount desc": "$orderby 'DownloadCount desc' is not supported by this feed",
        "/Packages(Id='V2.Lib',Version='9.0.0')": "no listed version '9.0.0' of package 'V2.Lib'",
    }
    for path, message in refusals.items():
        answer = httpx.get(base + path, timeout=TIMEOUT)
        assert answer.status_code in (400, 404) and answer.headers["content-type"] == "text/plain; charset=utf-8"
        assert answer.text.startswith(message), (path, answer.text)


def test_refusals_have_nuget_org_statuses_and_plain_text_reasons(feed: FeedServer, alice: str, pki: TestPki,
                                                                 tmp_path: Path) -> None:
    path = build_package(tmp_path / "r.nupkg", "Refused.Lib", "1.0.0")
    missing = push(feed.url, None, path)
    assert (missing.status_code, missing.headers["content-type"]) == (401, "text/plain; charset=utf-8")
    assert missing.text == "An API key must be provided in the 'X-NuGet-ApiKey' header to use this service"
    assert missing.reason_phrase == missing.text  # nuget.org's message is the reason phrase too (NuGet prints it)
    wrong = push(feed.url, "nsk_000000000000_" + "a" * 52, path)
    assert wrong.status_code == 401 and wrong.text.startswith("The specified API key is invalid, has expired, or does "
                                                              "not have permission to access the specified package.")
    assert push(feed.url, alice, path, chunked=False, trailing_slash=False).status_code == 201
    again = push(feed.url, alice, path)
    assert (again.status_code, again.text) == (
        409, "A package with ID 'Refused.Lib' and version '1.0.0' already exists and cannot be modified.")
    assert again.reason_phrase == again.text
    eve = push(feed.url, api_key(feed.ctx, "eve"), build_package(tmp_path / "e.nupkg", "Refused.Lib", "2.0.0"))
    assert eve.status_code == 401 and "eve may not push a new version on package 'Refused.Lib'" in eve.text
    bad = push(feed.url, alice, b"PK\x03\x04 not really a zip")
    assert bad.status_code == 400 and bad.text.startswith("InvalidPackageFile: Failed to read the package file.")
    # signed pushes: the signer rules want the certificate registered to the account pushed for
    user(feed.ctx, "sig")
    certificates.register(feed.ctx, OPERATOR, "sig", pki.leaf.der, "leaf.cer")
    sig = api_key(feed.ctx, "sig")
    tampered = sign(build_package(tmp_path / "t.nupkg", "Tampered.Lib", "1.0.0"), pki)
    append_to_entry(tampered, tampered, name="lib/net8.0/Contoso.Lib.dll", extra=b"!")
    refused = push(feed.url, sig, tampered)
    assert refused.status_code == 400 and refused.text.startswith("NU3008: ")
    assert refused.reason_phrase.startswith("NU3008: ")  # what NuGet clients print
    recorded = get(feed, "/api/v1/packages/Tampered.Lib/1.0.0").json()  # the refusal, not the package
    assert (recorded["status"], [f["code"] for f in recorded["findings"]]) == ("failed", ["NU3008"])
    assert get(feed, "/v3/flatcontainer/tampered.lib/index.json").status_code == 404
    signed = sign(build_package(tmp_path / "s.nupkg", "Signed.Lib", "1.0.0"), pki)
    assert push(feed.url, sig, signed).status_code == 201
    assert get(feed, "/v3/flatcontainer/signed.lib/1.0.0/signed.lib.1.0.0.nupkg").content == signed.read_bytes()


def test_unlist_and_relist(feed: FeedServer, alice: str, tmp_path: Path) -> None:
    assert push(feed.url, alice, build_package(tmp_path / "u.nupkg", "Unlist.Lib", "1.0.0")).status_code == 201
    url = f"{feed.url}/api/v2/package/unlist.lib/1.0"
    headers = {"X-NuGet-ApiKey": alice}
    deleted = httpx.delete(url, headers=headers, timeout=TIMEOUT)
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert SearchResponse.parse(get(feed, "/v3/search?q=unlist.lib").content, source="s").data == []
    assert get(feed, "/api/v1/packages/Unlist.Lib/1.0.0").json()["listed"] is False
    assert get(feed, "/v3/flatcontainer/unlist.lib/index.json").status_code == 200  # still installable
    registration = RegistrationIndex.parse(get(feed, "/v3/registration/unlist.lib/index.json").content, source="r")
    entry = (registration.items[0].items or [])[0].catalog_entry
    assert entry.listed is False and entry.published is not None and entry.published.year == 1900
    assert httpx.post(url, headers=headers, timeout=TIMEOUT).status_code == 200
    assert httpx.post(url, headers=headers, timeout=TIMEOUT).status_code == 200  # also when already listed
    assert [r.id for r in SearchResponse.parse(get(feed, "/v3/search?q=unlist.lib").content, source="s").data] == [
        "Unlist.Lib"]
    gone = httpx.delete(f"{feed.url}/api/v2/package/unlist.lib/9.0.0", headers=headers, timeout=TIMEOUT)
    assert (gone.status_code, gone.text) == (404, "A package with ID 'unlist.lib' and version '9.0.0' does not exist.")
    assert httpx.delete(url, timeout=TIMEOUT).status_code == 401
    push_only = api_key(feed.ctx, "alice", scopes=("package:push",))
    refused = httpx.delete(url, headers={"X-NuGet-ApiKey": push_only}, timeout=TIMEOUT)
    assert refused.status_code == 403 and "do not allow to unlist or relist" in refused.text


def _raw_push(feed: FeedServer, key: str, head: str, body: Iterator[bytes]) -> tuple[int, bytes]:
    """Send a request over a raw socket, stop sending when the server answers; (status, body) of the answer."""
    parts = urlsplit(feed.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=TIMEOUT) as sock:
        sock.sendall(head.replace("{key}", key).encode())
        sock.setblocking(False)
        answer = b""
        for chunk in body:
            with contextlib.suppress(BlockingIOError):
                answer += sock.recv(65536)
            if answer:
                break
            try:
                sock.sendall(chunk)
            except BlockingIOError:
                time.sleep(0.01)
            except (BrokenPipeError, ConnectionResetError):
                break
        sock.setblocking(True)

        def complete() -> bool:
            head, found, content = answer.partition(b"\r\n\r\n")
            lengths = [line.split(b":", 1)[1] for line in head.split(b"\r\n") if line.lower().startswith(
                b"content-length:")]
            return bool(found) and len(content) >= (int(lengths[0]) if lengths else 0)

        while not complete():
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def test_oversized_bodies_get_413_while_streaming_and_nothing_is_kept(feed: FeedServer, alice: str) -> None:
    declared = (f"PUT /api/v2/package/ HTTP/1.1\r\nHost: x\r\nX-NuGet-ApiKey: {{key}}\r\n"
                f'Content-Type: multipart/form-data; boundary="b"\r\nContent-Length: {LIMIT * 10}\r\n\r\n')
    status, text = _raw_push(feed, alice, declared, iter([]))  # refused on the header alone, no body sent
    assert (status, text[:58]) == (413, b"The package file exceeds the size limit. Please try again.")

    chunked = ('PUT /api/v2/package/ HTTP/1.1\r\nHost: x\r\nX-NuGet-ApiKey: {key}\r\n'
               'Content-Type: multipart/form-data; boundary="b"\r\nTransfer-Encoding: chunked\r\n\r\n')
    start = multipart(b"", "b").split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    piece = b"x" * 65536

    def endless() -> Iterator[bytes]:  # a body that never ends unless the server stops reading it
        yield b"%x\r\n%s\r\n" % (len(start), start)
        for _ in range(LIMIT * 100 // len(piece)):
            yield b"%x\r\n%s\r\n" % (len(piece), piece)

    status, text = _raw_push(feed, alice, chunked, endless())
    assert status == 413 and text.startswith(b"The package file exceeds the size limit.")
    assert not list((feed.data_dir / "tmp").glob("*"))  # the partial upload is gone
    assert not list(feed.ctx.blobs.list_keys("incoming/"))


def test_two_server_processes_see_each_other_s_changes_at_once(feed: FeedServer, alice: str, tmp_path: Path) -> None:
    other = feed.another_process(tmp_path / "other.log")
    try:
        def search(url: str) -> list[str]:
            found = httpx.get(f"{url}/v3/search?q=twoprocs", timeout=TIMEOUT)
            return [r.id for r in SearchResponse.parse(found.content, source="s").data]

        assert search(feed.url) == search(other.url) == []  # both have cached the empty answer
        assert push(other.url, alice, build_package(tmp_path / "a.nupkg", "TwoProcs.Lib", "1.0.0")).status_code == 201
        assert search(feed.url) == ["TwoProcs.Lib"]  # pushed through the other process
        nupkg = "/v3/flatcontainer/twoprocs.lib/1.0.0/twoprocs.lib.1.0.0.nupkg"
        assert httpx.get(feed.url + nupkg, timeout=TIMEOUT).status_code == 200
        unlisted = httpx.delete(f"{feed.url}/api/v2/package/TwoProcs.Lib/1.0.0", headers={"X-NuGet-ApiKey": alice},
                                timeout=TIMEOUT)
        assert unlisted.status_code == 204
        assert search(other.url) == []
    finally:
        other.stop()


def test_the_openapi_schema_documents_the_json_api(feed: FeedServer) -> None:
    schema = get(feed, "/api/openapi.json").json()
    status = schema["paths"]["/api/v1/packages/{id}/{version}"]["get"]["responses"]["200"]
    reference = status["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    properties = schema["components"]["schemas"][reference]["properties"]
    assert set(properties) == {"id", "version", "status", "listed", "owners", "findings", "pushed_at", "pushed_by"}
    assert properties["status"]["enum"] == ["validating", "available", "failed"]
    assert {"/v3/search", "/v3/autocomplete", "/v3/index.json", "/v3/flatcontainer/{id}/index.json",
            "/v3/registration-gz-semver2/{id}/index.json", "/api/v2/package"} <= set(schema["paths"])
