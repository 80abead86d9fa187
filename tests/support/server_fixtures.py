"""Fixtures for the feed server's tests, written once and run on two backends:

- ``embedded``: SQLite + blobs in a folder (the defaults of ``nuseal serve``);
- ``scale``: PostgreSQL (``tests.support.postgres``, the real-parts cluster) + S3 (``tests.support.s3``, ``rclone
  serve s3``), the deployment with several server processes.

``server_backend`` is parametrized over :data:`BACKENDS`; ``server_db`` (a fresh migrated database) and
``service_ctx`` (services on it, with that backend's blob store and the fixed clock) follow it, so every service
test runs on both. PostgreSQL and S3 start once per session, only when a ``scale`` test first needs them; each
test gets its own database (cloned from a migrated template, or an emptied one reused) and its own bucket.
:func:`start_serve` / :class:`FeedServer` run a real ``nuseal serve`` process on either backend.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from psycopg import sql

from nuseal.server.db import migrate
from nuseal.server.db.models import Base
from nuseal.server.db.session import Database
from nuseal.server.services.context import Clock, ServiceContext, system_clock
from nuseal.server.settings import load_settings
from nuseal.server.storage import BlobStore, open_blob_store
from tests.support.pki import TestPki
from tests.support.postgres import PostgresServer
from tests.support.processes import die_with_parent, terminate
from tests.support.s3 import S3Server

#: ``embedded`` = SQLite + folder, ``scale`` = PostgreSQL + S3.
BACKENDS = ("embedded", "scale")
#: The fixed moment service tests start at (an injected clock: no test depends on today's date).
T0 = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)
_TEMPLATE = "nuseal_template"
_counter = itertools.count()


@dataclass
class FakeClock:
    """A settable clock for services: ``clock()`` returns ``now``; ``advance`` moves it."""

    now: datetime = field(default=T0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass(frozen=True)
class PostgresAdmin:
    """The session's PostgreSQL cluster, with the two operations the server tests need."""

    server: PostgresServer

    def url(self, database: str) -> str:
        return self.server.url(database)

    def psql(self, statement: str, database: str = "postgres") -> None:
        """Run one statement outside a transaction (CREATE/DROP DATABASE, TRUNCATE)."""
        with psycopg.connect(self.server.conninfo(database), autocommit=True) as connection:
            connection.execute(sql.SQL(statement))


@dataclass(frozen=True)
class Storage:
    """A blob store location as ``nuseal serve`` takes it: the ``--storage`` URL and the S3 credentials."""

    url: str
    env: dict[str, str] = field(default_factory=dict)

    def open(self) -> BlobStore:
        store = open_blob_store(self.url, s3_access_key_id=self.env.get("NUSEAL_S3_ACCESS_KEY_ID"),
                                s3_secret_access_key=self.env.get("NUSEAL_S3_SECRET_ACCESS_KEY"))
        store.check()
        return store


def s3_storage(server: S3Server, bucket: str) -> Storage:
    endpoint = quote(server.endpoint_url, safe=":/")
    return Storage(f"s3://{bucket}?endpoint={endpoint}&region={server.region}",
                   {"NUSEAL_S3_ACCESS_KEY_ID": server.access_key, "NUSEAL_S3_SECRET_ACCESS_KEY": server.secret_key})


class DatabaseFactory:
    """Fresh migrated databases and blob stores of either backend. PostgreSQL and S3 are the session's real
    parts, asked for (and so started) the first time a ``scale`` test needs them."""

    def __init__(self, workdir: Path, fixture: Callable[[str], Any]) -> None:
        self.workdir = workdir
        self._fixture = fixture
        self._sqlite_template: Path | None = None
        self._postgres_ready = False
        self._idle_postgres: list[str] = []  # migrated databases returned by finished tests, emptied on reuse

    def postgres(self) -> PostgresAdmin:
        return PostgresAdmin(self._fixture("postgres_server"))

    def s3(self) -> S3Server:
        server = self._fixture("s3_server")
        assert isinstance(server, S3Server)
        return server

    def _sqlite_url(self) -> str:
        if self._sqlite_template is None:
            template = self.workdir / "template.db"
            db = Database(f"sqlite:///{template}")
            migrate.upgrade(db)
            db.dispose()  # the last connection checkpoints the WAL into the main file
            self._sqlite_template = template
        target = self.workdir / f"db{next(_counter)}.db"
        shutil.copyfile(self._sqlite_template, target)
        return f"sqlite:///{target}"

    def _postgres_url(self) -> str:
        server = self.postgres()
        if self._idle_postgres:  # reuse: emptying the tables is far cheaper than a new database
            name = self._idle_postgres.pop()
            tables = [t for t in Base.metadata.tables if t != "feed_state"]
            server.psql(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE", name)
            server.psql("UPDATE feed_state SET serial = 0", name)
            return server.url(name)
        if not self._postgres_ready:
            server.psql(f"CREATE DATABASE {_TEMPLATE}")
            db = Database(server.url(_TEMPLATE))
            migrate.upgrade(db)
            db.dispose()
            self._postgres_ready = True
        name = f"test_{next(_counter)}"
        server.psql(f"CREATE DATABASE {name} TEMPLATE {_TEMPLATE} STRATEGY FILE_COPY")
        return server.url(name)

    def new_url(self, backend: str) -> str:
        """The URL of a new, migrated, empty database of ``backend`` (``embedded`` or ``scale``)."""
        return self._sqlite_url() if backend == "embedded" else self._postgres_url()

    def new_storage(self, backend: str, folder: Path) -> Storage:
        """An empty blob store of ``backend``: ``folder`` for ``embedded``, a fresh bucket for ``scale``."""
        if backend == "embedded":
            return Storage(folder.as_uri())
        server = self.s3()
        return s3_storage(server, server.create_bucket())

    def release(self, url: str) -> None:
        """Give a database back (its engine disposed): PostgreSQL ones are reused, SQLite files deleted."""
        if url.startswith("postgresql"):
            self._idle_postgres.append(url.rsplit("/", 1)[1])
        else:
            Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)

    @contextmanager
    def database(self, backend: str) -> Iterator[Database]:
        url = self.new_url(backend)
        db = Database(url)
        try:
            yield db
        finally:
            db.dispose()
            self.release(url)


@pytest.fixture(scope="session")
def database_factory(request: pytest.FixtureRequest,
                     tmp_path_factory: pytest.TempPathFactory) -> DatabaseFactory:
    """Makes fresh migrated databases and blob stores; the real parts start when first asked for."""
    return DatabaseFactory(tmp_path_factory.mktemp("server-db"), request.getfixturevalue)


@pytest.fixture(params=BACKENDS)
def server_backend(request: pytest.FixtureRequest) -> str:
    """``embedded`` (SQLite + folder) or ``scale`` (PostgreSQL + S3): every server test runs on both."""
    return str(request.param)


@pytest.fixture
def server_db(server_backend: str, database_factory: DatabaseFactory) -> Iterator[Database]:
    """A fresh migrated database of the backend under test."""
    with database_factory.database(server_backend) as db:
        yield db


@pytest.fixture
def server_storage(server_backend: str, database_factory: DatabaseFactory, tmp_path: Path) -> Storage:
    """An empty blob store of the backend under test."""
    return database_factory.new_storage(server_backend, tmp_path / "blobs")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_context(db: Database, data_dir: Path, clock: Clock, storage: Storage | None = None,
                 **settings: object) -> ServiceContext:
    """Services on ``db`` with ``storage`` (default: a folder under ``data_dir``) and ``clock``."""
    storage = storage or Storage((data_dir / "blobs").as_uri())
    loaded = load_settings({"data_dir": data_dir, "database_url": db.url, "storage": storage.url, **settings},
                           environ=storage.env)
    return ServiceContext(db=db, blobs=storage.open(), settings=loaded, clock=clock)


@pytest.fixture
def service_ctx(server_db: Database, server_storage: Storage, tmp_path: Path, clock: FakeClock) -> ServiceContext:
    """Services on a fresh database and blob store of the backend under test, with the fixed clock."""
    return make_context(server_db, tmp_path / "data", clock, server_storage)


# --- a real `nuseal serve` process ---------------------------------------------------------------------------


@dataclass
class ServeProcess:
    """A running ``nuseal serve``: its base URL (from the "listening" line) and its JSON log file (stderr)."""

    process: subprocess.Popen[str]
    url: str
    log_path: Path

    def stop(self) -> int:
        """SIGTERM, then wait; returns the exit code (uvicorn shuts down gracefully, then re-raises the signal,
        so a clean stop is ``-SIGTERM``)."""
        if not terminate(self.process):
            pytest.fail("nuseal serve did not stop within 30 s of SIGTERM")
        return int(self.process.returncode)

    def log_lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.startswith("{")]


def start_serve(args: list[str], log_path: Path, *, env: dict[str, str] | None = None) -> ServeProcess:
    """Start ``nuseal serve ARGS`` (add ``--port 0``) and wait for its "listening" line; fail with its log if it
    exits or stays silent for 60 s. Like the real parts, it gets SIGTERM when the test process that started it ends,
    so a fixture that fails before its ``yield`` (or a killed run) leaves no server behind. Call it from the thread
    that outlives the server (the kernel's signal follows the thread that forked)."""
    nuseal = str(Path(sys.executable).with_name("nuseal"))
    log = log_path.open("w")
    process = subprocess.Popen(
        [nuseal, "serve", *args], stdout=subprocess.PIPE, stderr=log, text=True, preexec_fn=die_with_parent,
        env={k: v for k, v in os.environ.items() if not k.startswith("NUSEAL_")} | (env or {}),
    )  # fmt: skip
    log.close()
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    threading.Thread(target=lambda: lines.put(process.stdout.readline() if process.stdout else ""), daemon=True).start()
    try:
        line = lines.get(timeout=60)
    except queue.Empty:
        process.kill()
        pytest.fail(f"nuseal serve printed nothing in 60 s; log:\n{log_path.read_text()}")
    match = re.match(r"nuseal feed listening on (\S+)/ ", line)
    if match is None:
        process.wait(timeout=30)
        pytest.fail(f"nuseal serve did not start (exit {process.returncode}): {line!r}\n{log_path.read_text()}")
    return ServeProcess(process=process, url=match.group(1), log_path=log_path)


@dataclass
class FeedServer:
    """A ``nuseal serve`` process on one backend, plus a service context on the same database and blob store
    (for arranging accounts and keys directly, and for looking behind the HTTP surface)."""

    backend: str
    serve: ServeProcess
    ctx: ServiceContext
    database_url: str
    storage: Storage
    data_dir: Path
    #: More ``nuseal serve`` options (e.g. ``--tls-cert``/``--tls-key``), kept for restarts.
    extra_args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.serve.url

    def restart(self, log_path: Path, *, env: dict[str, str] | None = None) -> ServeProcess:
        """Start ``nuseal serve`` again on the same data folder, database and blob store (after a stop or a
        kill); ``env`` replaces the extra environment for this start (e.g. a crash point)."""
        self.serve = start_serve(self.arguments(self.data_dir), log_path,
                                 env=self.storage.env | self.env | (env or {}))  # fmt: skip
        return self.serve

    def another_process(self, log_path: Path, *, env: dict[str, str] | None = None) -> ServeProcess:
        """A second ``nuseal serve`` on the same database and blob store (its own data folder)."""
        return start_serve(self.arguments(log_path.parent / f"{log_path.stem}-data"), log_path,
                           env=self.storage.env | (env or {}))

    def arguments(self, data_dir: Path) -> list[str]:
        settings = self.ctx.settings
        args = ["--data", str(data_dir), "--port", "0", "--database-url", self.database_url,
                "--storage", self.storage.url, "--revocation-mode", settings.revocation_mode.value]
        if settings.trust_roots is not None:
            args += ["--trust-roots", str(settings.trust_roots)]
        if settings.timestamp_roots is not None:
            args += ["--timestamp-roots", str(settings.timestamp_roots)]
        return args + list(self.extra_args)

    def stop(self) -> None:
        self.serve.stop()
        self.ctx.db.dispose()


def start_feed_server(factory: DatabaseFactory, backend: str, folder: Path, *, roots: Path | None = None,
                      env: dict[str, str] | None = None, extra_args: tuple[str, ...] = (),
                      settings: dict[str, object] | None = None) -> FeedServer:
    """``nuseal serve`` on a fresh database and blob store of ``backend``, with ``roots`` (PEM) as its code
    signing and timestamping trust roots and revocation offline. The setup context runs on the real clock, like
    the server; ``settings`` go to the setup context too (give the server the same through ``env``)."""
    folder.mkdir(parents=True, exist_ok=True)
    url = factory.new_url(backend)
    storage = factory.new_storage(backend, folder / "blobs")
    db = Database(url)
    extra: dict[str, object] = {"revocation_mode": "offline", **(settings or {})}
    if roots is not None:
        extra |= {"trust_roots": roots, "timestamp_roots": roots}
    ctx = make_context(db, folder / "data", system_clock, storage, **extra)
    server = FeedServer(backend, cast(ServeProcess, None), ctx, url, storage, folder / "data", extra_args,
                        dict(env or {}))
    server.serve = start_serve(server.arguments(folder / "data"), folder / "serve.log", env=storage.env | server.env)
    return server


@dataclass(frozen=True)
class TlsFiles:
    chain: Path  # server certificate then the intermediate, PEM
    key: Path
    ca_bundle: Path  # the test PKI's root, for clients


def tls_for(pki: TestPki, folder: Path, name: str | None = None) -> TlsFiles:
    """A TLS server certificate for 127.0.0.1, localhost and ``name`` (when given), issued by the test PKI's
    intermediate CA, written to ``folder`` with its chain, key and the root for clients."""
    folder.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    issuer = pki.intermediate
    names: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    if name is not None:
        names.insert(0, x509.DNSName(name))
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name or "nuseal test feed")]))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(pki.now - timedelta(days=1))
        .not_valid_after(pki.now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(issuer.key, hashes.SHA256())
    )
    chain, key_path, bundle = folder / "chain.pem", folder / "key.pem", folder / "ca.pem"
    chain.write_bytes(certificate.public_bytes(serialization.Encoding.PEM) + issuer.pem)
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))  # fmt: skip
    bundle.write_bytes(pki.root.pem)
    return TlsFiles(chain=chain, key=key_path, ca_bundle=bundle)


@pytest.fixture(scope="session")
def tls_files(pki: TestPki, tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A TLS server certificate for 127.0.0.1 and localhost, issued by the test PKI's intermediate CA."""
    return tls_for(pki, tmp_path_factory.mktemp("tls"))
