"""The feed-state serial: one number that goes up whenever what the feed serves changes.

Every transaction that makes a version available, unlists, relists or deletes it, or changes a package's owners
calls :func:`bump` inside that transaction. Readers (:mod:`.feed_documents`) cache rendered documents per
serial and compare the cached serial with :func:`current` on each request: a change committed by any server
process is seen by every other one on its next request, with one primary-key read per request.
"""

from __future__ import annotations

import sqlite3
import threading
import weakref

from sqlalchemy import update
from sqlalchemy.orm import Session

from nuseal.server.db.models import FeedState
from nuseal.server.db.session import Database

_ROW = 1


def bump(session: Session) -> None:
    """Increment the serial in the caller's transaction (it commits or rolls back with the change)."""
    session.execute(update(FeedState).where(FeedState.id == _ROW).values(serial=FeedState.serial + 1))


#: The serial's read as plain SQL (constant row id): :func:`current` runs on every read request.
_READ_SERIAL = f"SELECT serial FROM {FeedState.__tablename__} WHERE id = {_ROW}"
#: SQLite: one read-only connection per database and thread, kept open (see :func:`current`).
_sqlite_readers: weakref.WeakKeyDictionary[Database, threading.local] = weakref.WeakKeyDictionary()
_readers_lock = threading.Lock()


def _sqlite_reader(db: Database) -> sqlite3.Connection | None:
    path = db.engine.url.database
    if not path or path == ":memory:" or path.startswith("file:"):
        return None
    with _readers_lock:
        local = _sqlite_readers.setdefault(db, threading.local())
    connection: sqlite3.Connection | None = getattr(local, "connection", None)
    if connection is None:
        # Autocommit (isolation_level None): each SELECT is its own read transaction, so it sees the last commit.
        connection = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=True)
        local.connection = connection
    return connection


def current(db: Database) -> int:
    """The committed serial (0 on a fresh database).

    Plain SQL on a DB-API connection: through a SQLAlchemy connection this read cost a BEGIN, statement
    compilation and a result proxy, over a millisecond on a loaded machine and most of a cached read's time. On
    SQLite each thread keeps its own connection (a file handle, no server resource): a few microseconds; other
    databases take a pooled connection for the read."""
    if db.dialect == "sqlite":
        reader = _sqlite_reader(db)
        if reader is not None:
            row = reader.execute(_READ_SERIAL).fetchone()
            return int(row[0]) if row and row[0] is not None else 0
    connection = db.engine.raw_connection()
    try:
        cursor = connection.cursor()
        try:
            cursor.execute(_READ_SERIAL)
            row = cursor.fetchone()
        finally:
            cursor.close()
    finally:
        connection.close()  # back to the pool, which ends any transaction the driver began
    return int(row[0]) if row and row[0] is not None else 0
