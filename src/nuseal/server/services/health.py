"""``GET /health``: can the server reach its database and its blob store right now."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from nuseal.server.services.context import ServiceContext
from nuseal.server.storage import StorageError

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HealthReport:
    database: bool
    storage: bool

    @property
    def ok(self) -> bool:
        return self.database and self.storage

    def to_dict(self) -> dict[str, Any]:
        def word(up: bool) -> str:
            return "ok" if up else "unavailable"

        return {"status": word(self.ok), "checks": {"database": word(self.database), "storage": word(self.storage)}}


def check(ctx: ServiceContext) -> HealthReport:
    """Probe both dependencies; failures are logged with their reason (the report itself stays terse)."""
    database = storage = True
    try:
        with ctx.db.reading() as session:
            session.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        _log.warning("health: database unavailable: %s", exc)
        database = False
    try:
        ctx.blobs.check()
    except (StorageError, OSError) as exc:
        _log.warning("health: storage unavailable: %s", exc)
        storage = False
    return HealthReport(database=database, storage=storage)
