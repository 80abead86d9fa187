"""The feed-state serial: one number that goes up whenever what the feed serves changes.

Every transaction that makes a version available, unlists, relists or deletes it, or changes a package's owners
calls :func:`bump` inside that transaction. Readers (:mod:`.feed_documents`) cache rendered documents per
serial and compare the cached serial with :func:`current` on each request: a change committed by any server
process is seen by every other one on its next request, with one primary-key read per request.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from nuseal.server.db.models import FeedState
from nuseal.server.db.session import Database

_ROW = 1


def bump(session: Session) -> None:
    """Increment the serial in the caller's transaction (it commits or rolls back with the change)."""
    session.execute(update(FeedState).where(FeedState.id == _ROW).values(serial=FeedState.serial + 1))


def current(db: Database) -> int:
    """The committed serial (0 on a fresh database)."""
    with db.engine.connect() as connection:
        value = connection.execute(select(FeedState.serial).where(FeedState.id == _ROW)).scalar_one_or_none()
    return int(value or 0)
