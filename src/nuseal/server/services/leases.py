"""Job leases on package versions (``package_versions.lease_owner`` / ``lease_until``).

A job takes a version with one conditional UPDATE (free, or held by a lease that expired), so two workers never
work on the same version at once; it then publishes its result in a transaction whose UPDATE also requires
``lease_owner = token`` (fencing: a worker whose lease expired under it changes nothing). A crashed worker's leases
simply expire; the periodic sweep hands the work out again. Tokens are random per attempt, never per worker, so a
restarted worker cannot mistake an old lease for its own.

Used by re-signing (:mod:`nuseal.server.services.rotation`) and meant for the push pipeline's validation job:
``take_version`` + publish with ``owned_by(token)`` in the WHERE clause + ``release`` on a handled failure.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session

from nuseal.server.db.models import PackageVersion
from nuseal.server.services.context import ServiceContext


def new_token() -> str:
    """A lease token for one attempt."""
    return uuid.uuid4().hex


def free(now: datetime) -> ColumnElement[bool]:
    """Versions nobody holds: no lease, or one that expired."""
    return or_(PackageVersion.lease_until.is_(None), PackageVersion.lease_until < now)


def owned_by(token: str) -> ColumnElement[bool]:
    """The fencing condition for a job's publishing UPDATE."""
    return PackageVersion.lease_owner == token


def take(session: Session, conditions: Sequence[Any], *, token: str, now: datetime, seconds: int,
         limit: int) -> list[int]:  # fmt: skip
    """Lease up to ``limit`` free versions matching ``conditions`` (in the caller's transaction); their ids.

    PostgreSQL skips rows another transaction is leasing right now (``FOR UPDATE SKIP LOCKED``); SQLite's write
    transaction is exclusive already. The UPDATE repeats the "free" test, so a row is never taken twice.
    """
    candidates = list(session.scalars(
        select(PackageVersion.id).where(*conditions, free(now)).order_by(PackageVersion.id).limit(limit)
        .with_for_update(skip_locked=True)
    ))  # fmt: skip
    if not candidates:
        return []
    taken = session.execute(
        update(PackageVersion).where(PackageVersion.id.in_(candidates), free(now))
        .values(lease_owner=token, lease_until=now + timedelta(seconds=seconds)).returning(PackageVersion.id)
        .execution_options(synchronize_session=False)
    )  # fmt: skip
    return sorted(int(i) for i in taken.scalars())


def take_version(ctx: ServiceContext, version_id: int, token: str, *conditions: Any) -> bool:
    """Lease one version (if free and matching ``conditions``, e.g. its status); True when this call got it."""
    now = ctx.now()
    with ctx.db.transaction() as session:
        got = take(session, (PackageVersion.id == version_id, *conditions), token=token, now=now,
                   seconds=ctx.settings.job_lease_seconds, limit=1)  # fmt: skip
    return got == [version_id]


def release_in(session: Session, token: str, version_ids: Sequence[int]) -> None:
    """Give back, in the caller's transaction, the leases ``token`` still holds on ``version_ids``."""
    if version_ids:
        session.execute(
            update(PackageVersion).where(PackageVersion.id.in_(list(version_ids)), owned_by(token))
            .values(lease_owner=None, lease_until=None).execution_options(synchronize_session=False)
        )  # fmt: skip


def release(ctx: ServiceContext, token: str, version_ids: Sequence[int]) -> None:
    """Give back leases ``token`` still holds (after an error: expiry would do it, later)."""
    if version_ids:
        with ctx.db.transaction() as session:
            release_in(session, token, version_ids)
