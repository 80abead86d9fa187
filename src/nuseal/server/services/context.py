"""What every service needs, passed in rather than looked up: database, blob store, clock and settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from nuseal.server.db.session import Database
from nuseal.server.settings import ServerSettings
from nuseal.server.storage import BlobStore

#: Returns the current time, timezone-aware UTC (tests inject a fixed or stepping clock).
Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ServiceContext:
    db: Database
    blobs: BlobStore
    settings: ServerSettings
    clock: Clock = system_clock

    def now(self) -> datetime:
        moment = self.clock()
        if moment.tzinfo is None:
            raise ValueError("the service clock must return timezone-aware datetimes")
        return moment.astimezone(UTC)
