"""Smoke tests of the real parts the feed-server tests use (tests/support/README.md): each one is really there,
started on 127.0.0.1 by the fixture, and does its job; none is a mock.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import subprocess
import threading
import time
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError
from tests.support.nginx import NginxFactory
from tests.support.nugetexe import VERSION, NuGetExe
from tests.support.postgres import PostgresServer
from tests.support.redis_server import RedisServer
from tests.support.s3 import S3Bucket, S3Server, client_config
from tests.support.static_feed import serve_feed
from tests.support.wrk import run_wrk, wrk_version


def make_package(directory: Path, package_id: str, version: str) -> Path:
    """A minimal unsigned package as ``nuget pack`` lays it out."""
    nuspec = (f'<?xml version="1.0"?><package xmlns="http://schemas.microsoft.com/packaging/2013/05/nuspec.xsd">'
              f"<metadata><id>{package_id}</id><version>{version}</version><authors>t</authors>"
              f"<description>smoke</description></metadata></package>")
    path = directory / f"{package_id}.{version}.nupkg"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("_rels/.rels", "<Relationships />")
        z.writestr(f"{package_id}.nuspec", nuspec)
        z.writestr(f"lib/netstandard2.0/{package_id}.dll", b"MZ" + os.urandom(64))
        z.writestr("[Content_Types].xml", "<Types />")
    return path


# -- 1. PostgreSQL -----------------------------------------------------------------------------------------


def _psycopg_url(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://", 1)


def test_postgres_session_database_round_trip(postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql+psycopg://nuseal@127.0.0.1:")
    with psycopg.connect(_psycopg_url(postgres_url)) as conn:
        version = conn.execute("SHOW server_version").fetchone()
        fsync = conn.execute("SHOW fsync").fetchone()
        conn.execute("CREATE TABLE smoke (id serial PRIMARY KEY, name text NOT NULL UNIQUE)")
        conn.execute("INSERT INTO smoke (name) VALUES (%s), (%s)", ("Alpha", "beta"))
        rows = conn.execute("SELECT name FROM smoke ORDER BY id").fetchall()
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("INSERT INTO smoke (name) VALUES ('beta')")
        conn.rollback()
    assert version is not None and version[0].startswith("15.")
    assert fsync == ("off",)
    assert rows == [("Alpha",), ("beta",)]


def test_postgres_extra_databases_are_isolated(postgres_server: PostgresServer) -> None:
    first, second = postgres_server.create_database(), postgres_server.create_database()
    assert first != second
    with psycopg.connect(_psycopg_url(first)) as conn:
        conn.execute("CREATE TABLE only_here (x int)")
    with psycopg.connect(_psycopg_url(second)) as conn:
        assert conn.execute("SELECT to_regclass('only_here')").fetchone() == (None,)
    postgres_server.drop_database(second.rsplit("/", 1)[1])
    with pytest.raises(psycopg.OperationalError, match="does not exist"):
        psycopg.connect(_psycopg_url(second)).close()


def test_postgres_listens_on_loopback_only_with_socket_in_temp_dir(postgres_server: PostgresServer) -> None:
    with psycopg.connect(postgres_server.conninfo()) as conn:
        settings: dict[str, str] = dict(conn.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN ('listen_addresses', 'unix_socket_directories')"
        ).fetchall())  # fmt: skip
    assert settings == {"listen_addresses": "127.0.0.1", "unix_socket_directories": str(postgres_server.socket_dir)}
    assert (postgres_server.socket_dir / f".s.PGSQL.{postgres_server.port}").exists()


# -- 2. S3 (rclone serve s3) -------------------------------------------------------------------------------


def _client(bucket: S3Bucket, secret: str | None = None) -> Any:  # botocore clients have no static type
    return boto3.client("s3", endpoint_url=bucket.endpoint_url, region_name=bucket.region,
                        aws_access_key_id=bucket.access_key, aws_secret_access_key=secret or bucket.secret_key,
                        config=client_config())


def test_s3_enforces_sigv4(s3_bucket: S3Bucket) -> None:
    wrong = _client(s3_bucket, secret="not-the-secret")
    with pytest.raises(ClientError) as caught:
        wrong.put_object(Bucket=s3_bucket.name, Key="x", Body=b"x")
    assert caught.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


def test_s3_object_round_trip(s3_bucket: S3Bucket, s3_server: S3Server) -> None:
    s3 = _client(s3_bucket)
    bucket = s3_bucket.name
    body = os.urandom(100_000)
    s3.put_object(Bucket=bucket, Key="flat/a.nupkg", Body=body)
    # A real server: the object is a file on disk, byte for byte.
    assert (s3_server.data_dir / bucket / "flat" / "a.nupkg").read_bytes() == body
    head = s3.head_object(Bucket=bucket, Key="flat/a.nupkg")
    assert head["ContentLength"] == len(body)
    assert head["ETag"].strip('"') == hashlib.md5(body).hexdigest()
    assert s3.get_object(Bucket=bucket, Key="flat/a.nupkg")["Body"].read() == body
    ranged = s3.get_object(Bucket=bucket, Key="flat/a.nupkg", Range="bytes=10-19")
    assert ranged["Body"].read() == body[10:20]
    assert ranged["ContentRange"] == f"bytes 10-19/{len(body)}"  # (status 200, not 206: rclone quirk)
    s3.copy_object(Bucket=bucket, Key="flat/b.nupkg",
                   CopySource={"Bucket": bucket, "Key": "flat/a.nupkg"})
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="flat/")
    assert [o["Key"] for o in listed["Contents"]] == ["flat/a.nupkg", "flat/b.nupkg"]
    s3.delete_object(Bucket=bucket, Key="flat/a.nupkg")
    with pytest.raises(ClientError) as caught:
        s3.get_object(Bucket=bucket, Key="flat/a.nupkg")
    assert caught.value.response["Error"]["Code"] == "NoSuchKey"
    assert s3.get_object(Bucket=bucket, Key="flat/b.nupkg")["Body"].read() == body


def test_s3_multipart_upload_of_20_mb(s3_bucket: S3Bucket) -> None:
    s3 = _client(s3_bucket)
    calls: list[str] = []
    s3.meta.events.register("before-call.s3.*", lambda model, **_: calls.append(model.name))
    data = os.urandom(20 * 1024 * 1024)
    config = TransferConfig(multipart_threshold=8 * 1024 * 1024, multipart_chunksize=8 * 1024 * 1024)
    s3.upload_fileobj(io.BytesIO(data), s3_bucket.name, "big.bin", Config=config)
    assert sorted(calls) == ["CompleteMultipartUpload", "CreateMultipartUpload"] + ["UploadPart"] * 3
    head = s3.head_object(Bucket=s3_bucket.name, Key="big.bin")
    assert head["ContentLength"] == len(data)
    got = s3.get_object(Bucket=s3_bucket.name, Key="big.bin")["Body"].read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()


def test_s3_buckets_are_fresh_per_test(s3_bucket: S3Bucket, s3_server: S3Server) -> None:
    assert "Contents" not in _client(s3_bucket).list_objects_v2(Bucket=s3_bucket.name)
    assert s3_server.fresh_bucket_name() != s3_server.fresh_bucket_name()


# -- 3. Redis ----------------------------------------------------------------------------------------------


def test_redis_round_trip_without_persistence(redis_server: RedisServer) -> None:
    with redis_server.client() as client:
        client.set("smoke:key", b"value", ex=60)
        assert client.get("smoke:key") == b"value"
        assert 0 < client.ttl("smoke:key") <= 60
        assert client.incr("smoke:counter") == 1
        assert client.incr("smoke:counter") == 2
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}
        assert client.config_get("bind") == {"bind": "127.0.0.1"}
        assert str(client.info("server")["redis_version"]).startswith("7.")


# -- 4. nuget.exe under Mono -------------------------------------------------------------------------------


def test_nuget_exe_help(nuget_exe: NuGetExe) -> None:
    code, stdout, stderr = nuget_exe.run("help")
    assert code == 0, stdout + stderr
    assert f"NuGet Version: {VERSION}." in stdout
    assert "push" in stdout and "install" in stdout


def test_nuget_exe_installs_from_static_v3_feed(nuget_exe: NuGetExe, tmp_path: Path) -> None:
    package = make_package(tmp_path, "Smoke.Package", "1.2.3")
    config = tmp_path / "packages.config"
    config.write_text('<?xml version="1.0" encoding="utf-8"?>\n'
                      '<packages><package id="Smoke.Package" version="1.2.3" /></packages>\n')
    out = tmp_path / "out"
    with serve_feed(tmp_path / "feed") as feed:
        feed.add(package)
        code, stdout, stderr = nuget_exe.run("install", str(config), "-Source", feed.index_url,
                                             "-OutputDirectory", str(out), "-Verbosity", "detailed")
    assert code == 0, stdout + stderr
    # It read our service index and fetched from its PackageBaseAddress/3.0.0 (flat container), over HTTP.
    assert f"GET {feed.base}/v3/flatcontainer/smoke.package/1.2.3/smoke.package.1.2.3.nupkg" in stdout
    assert (out / "Smoke.Package.1.2.3" / "Smoke.Package.1.2.3.nupkg").read_bytes() == package.read_bytes()
    assert (out / "Smoke.Package.1.2.3" / "lib" / "netstandard2.0" / "Smoke.Package.dll").is_file()
    assert not (nuget_exe.home / ".config" / "NuGet" / "NuGet.Config").read_text().count("nuget.org")


class _FeedRecorder(BaseHTTPRequestHandler):
    """A V3 feed that records push/delete and answers search and registration: enough for nuget.exe's commands."""

    protocol_version = "HTTP/1.1"
    requests: list[tuple[str, str, str | None, bytes]]
    documents: dict[str, object]

    def do_GET(self) -> None:
        self.requests.append(("GET", self.path, None, b""))
        document = self.documents.get(self.path.split("?", 1)[0])
        if document is None:
            self._reply(404, b"not found")
        elif isinstance(document, bytes):
            self._reply(200, document, "application/octet-stream")
        else:
            self._reply(200, json.dumps(document).encode(), "application/json")

    def do_PUT(self) -> None:
        self.requests.append(("PUT", self.path, self.headers.get("X-NuGet-ApiKey"), self._body()))
        self._reply(201, b"")

    def do_DELETE(self) -> None:
        self.requests.append(("DELETE", self.path, self.headers.get("X-NuGet-ApiKey"), b""))
        self._reply(204, b"")

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":  # what nuget.exe under Mono sends
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _reply(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def recorder() -> Iterator[tuple[str, type[_FeedRecorder]]]:
    handler = type("Recorder", (_FeedRecorder,), {"requests": [], "documents": {}})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield base, handler
    finally:
        server.shutdown()
        server.server_close()


def test_nuget_exe_push_search_install_delete(nuget_exe: NuGetExe, recorder: tuple[str, type[_FeedRecorder]],
                                              tmp_path: Path) -> None:
    """The commands the feed server will face, against a recording V3 feed: this is what the apt set must run."""
    base, handler = recorder
    package = make_package(tmp_path, "Smoke.Push", "2.0.0")
    content = f"{base}/flat/smoke.push/2.0.0/smoke.push.2.0.0.nupkg"
    registration = f"{base}/reg/smoke.push/index.json"
    handler.documents.update({
        "/v3/index.json": {"version": "3.0.0", "resources": [
            {"@id": f"{base}/api/v2/package", "@type": "PackagePublish/2.0.0"},
            {"@id": f"{base}/query", "@type": "SearchQueryService/3.0.0-beta"},
            {"@id": f"{base}/flat/", "@type": "PackageBaseAddress/3.0.0"},
            {"@id": f"{base}/reg/", "@type": "RegistrationsBaseUrl/3.4.0"},
        ]},
        "/query": {"totalHits": 1, "data": [{"id": "Smoke.Push", "version": "2.0.0", "description": "smoke",
                                              "versions": [{"version": "2.0.0", "downloads": 0}]}]},
        "/reg/smoke.push/index.json": {"@id": registration, "count": 1, "items": [{
            "@id": f"{registration}#page", "count": 1, "lower": "2.0.0", "upper": "2.0.0", "items": [{
                "@id": f"{base}/reg/smoke.push/2.0.0.json", "packageContent": content,
                "catalogEntry": {"@id": f"{base}/catalog/smoke.push.2.0.0.json", "id": "Smoke.Push",
                                 "version": "2.0.0", "listed": True, "dependencyGroups": []}}]}]},
    })  # fmt: skip
    source = ["-Source", f"{base}/v3/index.json"]

    code, stdout, stderr = nuget_exe.run("push", str(package), *source, "-ApiKey", "key-1")
    assert code == 0 and "Your package was pushed." in stdout, stdout + stderr
    pushes = [r for r in handler.requests if r[0] == "PUT"]
    assert [(m, p, k) for m, p, k, _ in pushes] == [("PUT", "/api/v2/package/", "key-1")]
    assert package.read_bytes() in pushes[0][3]  # the whole package inside the multipart body

    code, stdout, stderr = nuget_exe.run("search", "Smoke", *source)
    assert code == 0 and "Smoke.Push | 2.0.0" in stdout, stdout + stderr
    assert any(m == "GET" and p.startswith("/query?q=Smoke") for m, p, _, _ in handler.requests)

    handler.documents["/flat/smoke.push/2.0.0/smoke.push.2.0.0.nupkg"] = package.read_bytes()
    code, stdout, stderr = nuget_exe.run("install", "Smoke.Push", "-Version", "2.0.0", *source,
                                         "-OutputDirectory", str(tmp_path / "out"))
    assert code == 0, stdout + stderr
    # By id: dependency gathering through the registration hive first, then the flat-container download.
    gets = [p for m, p, _, _ in handler.requests if m == "GET"]
    assert gets.index("/reg/smoke.push/index.json") < gets.index("/flat/smoke.push/2.0.0/smoke.push.2.0.0.nupkg")
    assert (tmp_path / "out" / "Smoke.Push.2.0.0" / "Smoke.Push.2.0.0.nupkg").read_bytes() == package.read_bytes()

    code, stdout, stderr = nuget_exe.run("delete", "Smoke.Push", "2.0.0", *source, "-ApiKey", "key-2")
    assert code == 0 and "Smoke.Push 2.0.0 was deleted successfully." in stdout, stdout + stderr
    assert ("DELETE", "/api/v2/package/Smoke.Push/2.0.0", "key-2", b"") in handler.requests


# -- 5. nginx and 6. wrk -----------------------------------------------------------------------------------


def test_nginx_serves_a_directory_with_keep_alive(nginx_factory: NginxFactory, tmp_path: Path) -> None:
    root = tmp_path / "www"
    (root / "v3" / "flat").mkdir(parents=True)
    blob = os.urandom(1_000_000)
    (root / "v3" / "flat" / "x.1.0.0.nupkg").write_bytes(blob)
    nginx = nginx_factory(root, worker_processes=2)
    config = nginx.config.read_text()
    assert "worker_processes 2;" in config and "access_log off;" in config and "sendfile on;" in config
    conn = http.client.HTTPConnection("127.0.0.1", nginx.port, timeout=10)
    try:
        replies = []
        for path, headers in (("/v3/flat/x.1.0.0.nupkg", {}), ("/v3/flat/x.1.0.0.nupkg", {"Range": "bytes=0-9"}),
                              ("/nope", {})):
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            replies.append((response.status, response.getheader("Content-Type"), response.read()))
            if len(replies) == 1:
                first_socket = conn.sock
            assert conn.sock is first_socket, "nginx closed the connection: no keep-alive"
    finally:
        conn.close()
    assert replies[0] == (200, "application/octet-stream", blob)
    assert replies[1][0] == 206 and replies[1][2] == blob[:10]
    assert replies[2][0] == 404
    # A worker keeps the master's title until it has set itself up: on a loaded machine, ps may see one that early.
    deadline = time.monotonic() + 10
    while True:
        workers = subprocess.run(["ps", "-o", "cmd=", "--ppid", str(nginx.master_pid)], capture_output=True,
                                 text=True, check=True).stdout.splitlines()  # fmt: skip
        if workers == ["nginx: worker process"] * 2 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert workers == ["nginx: worker process"] * 2


def test_wrk_loads_nginx(nginx_factory: NginxFactory, tmp_path: Path) -> None:
    assert "wrk" in wrk_version() and "4." in wrk_version()
    (tmp_path / "index.json").write_text('{"version": "3.0.0"}')
    nginx = nginx_factory(tmp_path)
    result = run_wrk(nginx.url("index.json"), threads=1, connections=2, seconds=1)
    assert result.requests > 0 and result.requests_per_sec > 0
    assert result.non_2xx == 0 and result.errors is None, result.output


# -- 8. faketime -------------------------------------------------------------------------------------------


def test_faketime_fakes_the_clock() -> None:
    done = subprocess.run(["faketime", "2001-02-03 04:05:06", "date", "+%Y-%m-%d %H:%M"], capture_output=True,
                          text=True, check=False, env={**os.environ, "TZ": "UTC"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2001-02-03 04:05"
