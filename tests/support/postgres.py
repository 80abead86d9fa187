"""A throwaway PostgreSQL 15 cluster (Debian's ``postgresql-15``) on 127.0.0.1 for the server tests.

``initdb`` into a fresh temp dir (as the ``postgres`` user when we are root: PostgreSQL refuses to run as root),
trust authentication (loopback only, a cluster nobody else can reach), ``fsync=off``, the unix socket inside the
temp dir (never /var/run/postgresql), a free loopback port. The ``postgres`` process is our child and stops with
the session, failed tests or not; the temp dir goes with it.

Fixtures: ``postgres_server`` (the cluster, with :meth:`PostgresServer.create_database` for tests that need a
database of their own) and ``postgres_url`` (a fresh database for the session, as a SQLAlchemy URL).
"""

from __future__ import annotations

import functools
import glob
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.support.processes import (
    INSTALL_HINT,
    ManagedProcess,
    RealPartError,
    failing_clearly,
    free_port,
    run_as_postgres,
)

MAJOR = 15
USER = "nuseal"
START_TIMEOUT = 60.0


@dataclass(frozen=True)
class PostgresServer:
    """A running cluster: superuser ``user`` (no password) on 127.0.0.1:``port``."""

    port: int
    user: str
    data_dir: Path
    socket_dir: Path
    host: str = "127.0.0.1"

    def url(self, database: str, driver: str = "psycopg") -> str:
        """The SQLAlchemy URL of ``database``, e.g. ``postgresql+psycopg://nuseal@127.0.0.1:5xxxx/db``."""
        return f"postgresql+{driver}://{self.user}@{self.host}:{self.port}/{database}"

    def conninfo(self, database: str = "postgres") -> str:
        """The libpq connection string of ``database`` (for ``psycopg.connect``)."""
        return f"host={self.host} port={self.port} user={self.user} dbname={database} connect_timeout=5"

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (a random ``test_<hex>`` name by default) and return its SQLAlchemy URL."""
        name = name or f"test_{secrets.token_hex(4)}"
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop ``name``, disconnecting whoever is still connected to it."""
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _bin_dir() -> Path:
    preferred = Path(f"/usr/lib/postgresql/{MAJOR}/bin")
    if (preferred / "initdb").is_file():
        return preferred
    others = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    found = f" (found only {', '.join(others)})" if others else ""
    raise RealPartError(f"PostgreSQL {MAJOR} not found at {preferred}{found}: Debian package postgresql-{MAJOR}; "
                        f"{INSTALL_HINT}")


def _can_connect(conninfo: str) -> bool:
    with psycopg.connect(conninfo):
        return True


@contextmanager
def running_postgres(attempts: int = 3) -> Iterator[PostgresServer]:
    """Start a throwaway cluster, yield it, stop it and delete its files (whatever happened in between)."""
    bin_dir = _bin_dir()
    account = run_as_postgres()
    root = Path(tempfile.mkdtemp(prefix="nuseal-pg-"))
    try:
        data, sock = root / "data", root / "sock"
        sock.mkdir()
        if account is not None:
            for path in (root, sock):
                os.chown(path, account.pw_uid, account.pw_gid)
        initdb = subprocess.run(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", USER, "-A", "trust", "-E", "UTF8", "--locale=C",
             "--no-sync", "--no-instructions"],
            cwd=root, capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL,
            user=account.pw_uid if account else None, group=account.pw_gid if account else None,
            extra_groups=[] if account else None,
        )  # fmt: skip
        if initdb.returncode != 0:
            raise RealPartError(f"postgres: initdb failed ({initdb.returncode}): {initdb.stderr.strip()[-800:]}")
        for attempt in range(attempts):
            port = free_port()
            server = PostgresServer(port=port, user=USER, data_dir=data, socket_dir=sock)
            process = ManagedProcess(
                "postgres",
                [str(bin_dir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(sock),
                 "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
                 "-c", "full_page_writes=off"],
                root / f"postgres-{attempt}.log", cwd=root, user=account,
            )  # fmt: skip
            try:
                process.wait_ready(functools.partial(_can_connect, server.conninfo()), START_TIMEOUT)
            except RealPartError:
                if "could not bind" in process.log_tail(40) and attempt + 1 < attempts:
                    continue  # someone took the port between free_port() and bind(): try another one
                raise
            break
        try:
            yield server
        finally:
            # SIGINT is PostgreSQL's "fast" shutdown: it disconnects clients (pools left open by tests) at once.
            process.stop(signal.SIGINT)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL 15 cluster for the whole session (see module docstring)."""
    with failing_clearly(), running_postgres() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database for the session: ``postgresql+psycopg://nuseal@127.0.0.1:PORT/nuseal_session``."""
    with failing_clearly():
        try:
            return postgres_server.create_database("nuseal_session")
        except psycopg.Error as exc:
            raise RealPartError(f"postgres: cannot create the session database: {exc}") from exc
