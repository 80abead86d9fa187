"""SQLite's one writer: the write transactions of one process queue on a process-wide lock instead of SQLite's
retry loop, so many threads writing at once never see "database is locked" (the concurrent-push test found it
with 16 pushes); a writer that waits longer than the limit gets DatabaseBusyError (503), not a traceback."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import text

from nuseal.server.db import session as db_session
from nuseal.server.db.session import Database, DatabaseBusyError


def test_many_threads_writing_at_once_all_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # SQLite's own wait shortened to 1 ms: without the process lock, these writers would fail within seconds.
    monkeypatch.setattr(db_session, "SQLITE_BUSY_TIMEOUT_MS", 1)
    db = Database(f"sqlite:///{tmp_path / 'w.db'}")
    with db.transaction() as session:
        session.execute(text("CREATE TABLE counter (n INTEGER)"))
        session.execute(text("INSERT INTO counter VALUES (0)"))

    def bump(_: int) -> None:
        with db.transaction() as session:
            value = session.execute(text("SELECT n FROM counter")).scalar_one()
            time.sleep(0.002)  # hold the write lock while others want it
            session.execute(text("UPDATE counter SET n = :n"), {"n": value + 1})

    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(bump, range(80)))
        with db.reading() as session:
            assert session.execute(text("SELECT n FROM counter")).scalar_one() == 80  # no lost update either
    finally:
        db.dispose()


def test_a_writer_waiting_too_long_is_told_the_database_is_busy(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db_session, "SQLITE_WRITE_WAIT_SECONDS", 0.2)
    db = Database(f"sqlite:///{tmp_path / 'b.db'}")
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with db.transaction():
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(10)
        with pytest.raises(DatabaseBusyError, match="busy with other writes for 0 s"), db.transaction():
            pass
    finally:
        release.set()
        holder.join()
        db.dispose()
    with db.transaction():  # free again
        pass
    db.dispose()


def test_postgres_writers_are_not_serialized_in_process() -> None:
    assert Database("postgresql://nobody@127.0.0.1:1/none")._serialized().__class__.__name__ == "nullcontext"
