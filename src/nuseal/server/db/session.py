"""Engine and session factory: one :class:`Database` per process, for SQLite (embedded) or PostgreSQL (psycopg 3).

SQLite gets WAL (readers never wait for the writer), ``busy_timeout`` (writers queue instead of failing at once)
and ``foreign_keys`` on every connection. pysqlite's own transaction handling is switched off so that SQLAlchemy
emits ``BEGIN`` itself: a write transaction starts with ``BEGIN IMMEDIATE`` (it takes the write lock up front, so
a read-then-write transaction cannot fail with "database is locked" half way), read-only ones with a plain
``BEGIN``. This is SQLAlchemy's documented recipe for SQLite transactions.

SQLite has one writer at a time, and its busy handler is a sleep-and-retry loop without any queue: with many
pushes in one process (threads that also hold the GIL while verifying), a writer could lose the race again and
again until ``busy_timeout`` ran out ("database is locked", seen with 16 concurrent pushes). So the write
transactions of one process take a process-wide lock first and wait on it (for at most
:data:`SQLITE_WRITE_WAIT_SECONDS`); ``busy_timeout`` only arbitrates between processes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from nuseal.errors import NusealError

#: How long a SQLite writer waits for the lock before giving up (milliseconds).
SQLITE_BUSY_TIMEOUT_MS = 10_000
_IMMEDIATE = "nuseal_sqlite_immediate"
#: How long a SQLite write transaction waits for the other write transactions of its process.
SQLITE_WRITE_WAIT_SECONDS = 60.0


class DatabaseError(NusealError):
    """The database URL is unusable or the database cannot be reached."""


class DatabaseBusyError(DatabaseError):
    """The embedded database stayed busy with other writes for too long (the server answers 503)."""


def normalize_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` mean psycopg 3 (the driver the server extra installs)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def create_database_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for ``url`` with nuseal's connection settings; :class:`DatabaseError` for a bad URL."""
    try:
        parsed = make_url(normalize_url(url))
    except ArgumentError:
        raise DatabaseError(f"invalid database URL {url!r}") from None
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(parsed, echo=echo)
        _configure_sqlite(engine)
        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(parsed, echo=echo, pool_pre_ping=True)
    raise DatabaseError(f"unsupported database {parsed.get_backend_name()!r} in {url!r}: use sqlite or postgresql")


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (see "begin" below)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get(_IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Database:
    """Sessions for one database: :meth:`transaction` for writes (commit on success), :meth:`reading` for reads."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.engine = create_database_engine(url, echo=echo)
        self._writer = self.engine.execution_options(**{_IMMEDIATE: True})
        self._writes = sessionmaker(bind=self._writer, expire_on_commit=False)
        self._reads = sessionmaker(bind=self.engine, expire_on_commit=False)
        # Re-entrant: a thread holding a write transaction may open a read session, never a second writer.
        self._write_lock = threading.RLock() if self.dialect == "sqlite" else None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session in one write transaction: committed when the block ends, rolled back if it raises."""
        with self._serialized(), self._writes.begin() as session:
            yield session

    @contextmanager
    def write_connection(self) -> Iterator[Connection]:
        """A Core connection in one write transaction (migrations, bulk clean-up)."""
        with self._serialized(), self._writer.begin() as connection:
            yield connection

    def _serialized(self) -> AbstractContextManager[object]:
        lock = self._write_lock
        if lock is None:
            return nullcontext()
        return _held(lock, SQLITE_WRITE_WAIT_SECONDS)

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A session for reads only: never committed (closing it ends the transaction without expiring objects)."""
        with self._reads() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


@contextmanager
def _held(lock: threading.RLock, timeout: float) -> Iterator[object]:
    if not lock.acquire(timeout=timeout):
        raise DatabaseBusyError(f"the database stayed busy with other writes for {timeout:.0f} s; try again")
    try:
        yield lock
    finally:
        lock.release()
