"""The one Alembic history on SQLite and on a real PostgreSQL: it applies, is idempotent, matches the models
(``alembic check``), downgrades cleanly, and the database enforces the rules the services rely on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError, StatementError
from tests.support.server_fixtures import BACKENDS, DatabaseFactory

from nuseal.server.db import migrate
from nuseal.server.db.models import Account, AuditEvent, Base, Membership
from nuseal.server.db.session import Database, DatabaseError


def empty_database(factory: DatabaseFactory, backend: str, tmp_path: Path) -> Database:
    if backend == "embedded":
        return Database(f"sqlite:///{tmp_path / 'empty.db'}")
    name = f"empty_{tmp_path.name[-20:].replace('-', '_').lower()}"
    factory.postgres().psql(f"CREATE DATABASE {name}")
    return Database(factory.postgres().url(name))


@pytest.mark.parametrize("backend", BACKENDS)
def test_upgrade_from_empty_reaches_head_and_matches_the_models(
    backend: str, database_factory: DatabaseFactory, tmp_path: Path
) -> None:
    db = empty_database(database_factory, backend, tmp_path)
    try:
        assert migrate.current_revision(db) is None
        with pytest.raises(DatabaseError, match=r"is empty, this nuseal needs revision .*: run 'nuseal admin migrate'"):
            migrate.require_head(db)

        first = migrate.upgrade(db)
        assert (first.before, first.after, first.changed) == (None, migrate.head_revision(), True)
        second = migrate.upgrade(db)
        assert not second.changed
        migrate.require_head(db)

        assert migrate.drift(db) == []  # the `alembic check` equivalent: models and migrations agree
        tables = set(inspect(db.engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
    finally:
        db.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_downgrade_to_base_and_up_again(backend: str, database_factory: DatabaseFactory, tmp_path: Path) -> None:
    from alembic import command

    db = empty_database(database_factory, backend, tmp_path)
    try:
        migrate.upgrade(db)
        with db.write_connection() as connection:
            command.downgrade(migrate._config(connection), "base")
        assert migrate.current_revision(db) is None
        assert not set(Base.metadata.tables) & set(inspect(db.engine).get_table_names())
        migrate.upgrade(db)
        assert migrate.drift(db) == []
    finally:
        db.dispose()


def test_drift_is_detected(server_db: Database) -> None:
    with server_db.write_connection() as connection:
        connection.exec_driver_sql("CREATE TABLE stray (id INTEGER PRIMARY KEY)")
    assert any(diff[0] == "remove_table" for diff in migrate.drift(server_db))


def test_timestamps_come_back_timezone_aware_utc(server_db: Database) -> None:
    moment = datetime(2030, 1, 15, 14, 30, tzinfo=timezone(timedelta(hours=2)))
    with server_db.transaction() as session:
        session.add(AuditEvent(at=moment, actor="system", action="test:event:add", subject="x"))
    with server_db.reading() as session:
        stored = session.scalars(select(AuditEvent.at)).one()
    assert stored == moment and stored.tzinfo is not None and stored.utcoffset() == timedelta(0)
    assert stored.tzinfo == UTC
    with pytest.raises(StatementError, match="naive datetime"), server_db.transaction() as session:
        session.add(AuditEvent(at=datetime(2030, 1, 1), actor="system", action="a:b:c", subject="x"))
        session.flush()


def test_the_database_enforces_unique_lower_names_and_foreign_keys(server_db: Database) -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    with server_db.transaction() as session:
        session.add(Account(name="Alice", lower_name="alice", kind="user", created_at=now))
    with pytest.raises(IntegrityError), server_db.transaction() as session:
        session.add(Account(name="ALICE", lower_name="alice", kind="user", created_at=now))
    with pytest.raises(IntegrityError), server_db.transaction() as session:
        session.add(Account(name="x", lower_name="x", kind="robot", created_at=now))  # CHECK constraint
    with pytest.raises(IntegrityError), server_db.transaction() as session:
        session.add(Membership(organization_id=999, member_id=998, is_admin=True))  # foreign keys are on
