"""Open what the services need from the settings: data folder, database (migrated or checked) and blob store.

Used by ``nuseal serve``, ``nuseal admin`` and (later) ``nuseal worker``, so they agree on one rule: the embedded
SQLite database is migrated automatically; an external database (PostgreSQL) must have been migrated with
``nuseal admin migrate``, and a process refuses to start on an outdated schema instead of changing it behind the
operator's back.
"""

from __future__ import annotations

from nuseal.server.db import migrate
from nuseal.server.db.session import Database, DatabaseError
from nuseal.server.services import audit
from nuseal.server.services.context import Clock, ServiceContext, system_clock
from nuseal.server.services.permissions import Operator
from nuseal.server.settings import ServerSettings
from nuseal.server.storage import open_blob_store


def ensure_data_dir(settings: ServerSettings) -> None:
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatabaseError(f"cannot create the data folder '{settings.data_dir}': {exc.strerror}") from None


def open_database(settings: ServerSettings) -> Database:
    ensure_data_dir(settings)
    return Database(settings.database_url)


def _upgrade(db: Database, actor: Operator, clock: Clock) -> migrate.MigrationResult:
    result = migrate.upgrade(db)
    if result.changed:  # a schema change is an operator change like any other
        with db.transaction() as session:
            audit.record(session, actor, audit.SCHEMA_MIGRATE, "database", at=clock(),
                         before={"revision": result.before}, after={"revision": result.after})  # fmt: skip
    return result


def migrate_database(
    settings: ServerSettings, *, actor: Operator, clock: Clock = system_clock
) -> migrate.MigrationResult:
    """``nuseal admin migrate``: bring the configured database to the head revision (audited when it changes)."""
    db = open_database(settings)
    try:
        return _upgrade(db, actor, clock)
    finally:
        db.dispose()


def open_context(settings: ServerSettings, *, clock: Clock = system_clock,
                 migrate_embedded: bool = True) -> ServiceContext:
    """A :class:`ServiceContext` on a database at the head revision (the embedded one is migrated here, unless
    ``migrate_embedded`` is off: the extra HTTP worker processes of ``serve --workers`` only check it)."""
    db = open_database(settings)
    try:
        if settings.uses_embedded_database and migrate_embedded:
            _upgrade(db, Operator("system"), clock)
        else:
            migrate.require_head(db)
        blobs = open_blob_store(
            settings.storage,
            s3_access_key_id=settings.s3_access_key_id,
            s3_secret_access_key=settings.s3_secret_access_key,
        )
    except BaseException:
        db.dispose()
        raise
    return ServiceContext(db=db, blobs=blobs, settings=settings, clock=clock)
