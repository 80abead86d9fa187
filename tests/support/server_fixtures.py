"""Fixtures for the feed server's tests: a fresh migrated database per test on SQLite *and* PostgreSQL, a fixed
clock, a service context, and helpers to make a database outside a fixture (module-scoped worlds, CLI tests).

``server_db`` is parametrized over ``sqlite`` and ``postgresql``: every service test runs on both. PostgreSQL is
the minimal cluster of :mod:`tests.support.postgres_minimal`, started once per session; each test gets its own
database cloned from a migrated template (``CREATE DATABASE ... TEMPLATE``), SQLite tests a copy of a migrated file.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from nuseal.server.db import migrate
from nuseal.server.db.models import Base
from nuseal.server.db.session import Database
from nuseal.server.services.context import ServiceContext
from nuseal.server.settings import load_settings
from nuseal.server.storage.filesystem import FilesystemBlobStore
from tests.support.postgres_minimal import PostgresServer, start_postgres

BACKENDS = ("sqlite", "postgresql")
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


class DatabaseFactory:
    """Fresh migrated databases of either kind, cloned from one migrated template per kind."""

    def __init__(self, workdir: Path, postgres: PostgresServer | None) -> None:
        self.workdir = workdir
        self._postgres = postgres
        self._sqlite_template: Path | None = None
        self._postgres_ready = False
        self._idle_postgres: list[str] = []  # migrated databases returned by finished tests, emptied on reuse

    def postgres(self) -> PostgresServer:
        if self._postgres is None:
            self._postgres = start_postgres()
        return self._postgres

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
            server.psql(f"TRUNCATE {', '.join(Base.metadata.tables)} RESTART IDENTITY CASCADE", name)
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
        """The URL of a new, migrated, empty database."""
        return self._sqlite_url() if backend == "sqlite" else self._postgres_url()

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

    def close(self) -> None:
        if self._postgres is not None:
            self._postgres.stop()


@pytest.fixture(scope="session")
def database_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatabaseFactory]:
    """Makes fresh migrated databases; starts the PostgreSQL cluster the first time one is asked for."""
    factory = DatabaseFactory(tmp_path_factory.mktemp("server-db"), None)
    yield factory
    factory.close()


@pytest.fixture(params=BACKENDS)
def server_db(request: pytest.FixtureRequest, database_factory: DatabaseFactory) -> Iterator[Database]:
    """A fresh migrated database, once on SQLite and once on PostgreSQL."""
    with database_factory.database(request.param) as db:
        yield db


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_context(db: Database, data_dir: Path, clock: FakeClock) -> ServiceContext:
    settings = load_settings({"data_dir": data_dir, "database_url": db.url})
    blobs = FilesystemBlobStore(data_dir / "blobs")
    blobs.check()
    return ServiceContext(db=db, blobs=blobs, settings=settings, clock=clock)


@pytest.fixture
def service_ctx(server_db: Database, tmp_path: Path, clock: FakeClock) -> ServiceContext:
    """Services on a fresh database (both backends), a folder blob store and the fixed clock."""
    return make_context(server_db, tmp_path / "data", clock)
