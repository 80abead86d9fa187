"""Apply and inspect the Alembic history in ``migrations/`` (no alembic.ini: everything comes from the caller).

``upgrade`` runs in one transaction that first takes a lock (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: an
advisory transaction lock), so two processes starting at once (``serve`` and ``worker``) migrate one after the
other and the second finds nothing to do.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from nuseal.server.db.models import Base
from nuseal.server.db.session import Database, DatabaseError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
#: Arbitrary constant key for ``pg_advisory_xact_lock`` ("nuseal" in ASCII).
_PG_LOCK_KEY = 0x6E7573_65616C


@dataclass(frozen=True)
class MigrationResult:
    """The revision before and after :func:`upgrade` (``None`` = empty database)."""

    before: str | None
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision of the history shipped with this nuseal."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships revisions
        raise RuntimeError(f"no Alembic revisions in {MIGRATIONS_DIR}")
    return head


@contextmanager
def _locked_connection(db: Database) -> Iterator[Connection]:
    try:
        with db.write_connection() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
            yield connection
    except SQLAlchemyError as exc:
        raise DatabaseError(f"database {_safe_url(db)}: {_reason(exc)}") from exc


def current_revision(db: Database) -> str | None:
    """The revision the database is at (``None`` for an empty database)."""
    try:
        with db.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError as exc:
        raise DatabaseError(f"database {_safe_url(db)}: {_reason(exc)}") from exc


def upgrade(db: Database) -> MigrationResult:
    """Bring the database to the head revision; a no-op when it is already there."""
    with _locked_connection(db) as connection:
        before = MigrationContext.configure(connection).get_current_revision()
        command.upgrade(_config(connection), "head")
        after = MigrationContext.configure(connection).get_current_revision()
    if after is None:  # pragma: no cover - upgrade to head always stamps
        raise RuntimeError("migration left no revision")
    return MigrationResult(before=before, after=after)


def drift(db: Database) -> list[Any]:
    """Differences between the migrated database and the models (empty when they agree: ``alembic check``)."""
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


def require_head(db: Database) -> None:
    """Raise :class:`DatabaseError` unless the database is at the head revision (for an external database)."""
    current, head = current_revision(db), head_revision()
    if current != head:
        state = "empty" if current is None else f"at revision {current}"
        raise DatabaseError(
            f"database {_safe_url(db)} is {state}, this nuseal needs revision {head}: run 'nuseal admin migrate'"
        )


def _safe_url(db: Database) -> str:
    return db.engine.url.render_as_string(hide_password=True)


def _reason(exc: SQLAlchemyError) -> str:
    original = getattr(exc, "orig", None)
    return str(original if original is not None else exc).strip().splitlines()[0]
