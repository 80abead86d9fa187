"""Job leases on package versions: one holder at a time, expiry, fencing, release (both backends)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update
from tests.support.server_factories import package, user
from tests.support.server_fixtures import FakeClock

from nuseal.server.db.models import PackageVersion, VersionStatus
from nuseal.server.services import leases
from nuseal.server.services.context import ServiceContext


def _versions(ctx: ServiceContext) -> list[int]:
    user(ctx, "alice")
    package(ctx, "Contoso.Lib", "alice", versions=["1.0.0", "2.0.0", "3.0.0"])
    with ctx.db.reading() as session:
        return list(session.scalars(select(PackageVersion.id).order_by(PackageVersion.id)))


def test_one_holder_at_a_time_until_the_lease_expires(service_ctx: ServiceContext, clock: FakeClock) -> None:
    first, second, _ = _versions(service_ctx)
    available = PackageVersion.status == VersionStatus.AVAILABLE.value
    a, b = leases.new_token(), leases.new_token()
    assert a != b
    assert leases.take_version(service_ctx, first, a, available) is True
    assert leases.take_version(service_ctx, first, b, available) is False
    assert leases.take_version(service_ctx, first, a, available) is False  # not re-entrant: one attempt, one lease
    assert leases.take_version(service_ctx, second, b, PackageVersion.status == "validating") is False
    clock.advance(timedelta(seconds=service_ctx.settings.job_lease_seconds + 1))
    assert leases.take_version(service_ctx, first, b, available) is True  # a's worker died: b takes over
    with service_ctx.db.transaction() as session:  # a wakes up and tries to publish: the fence stops it
        stale = session.execute(update(PackageVersion).where(PackageVersion.id == first, leases.owned_by(a))
                                .values(listed=False).execution_options(synchronize_session=False))  # fmt: skip
        assert stale.rowcount == 0  # type: ignore[attr-defined]
    leases.release(service_ctx, a, [first])  # releasing someone else's lease does nothing
    with service_ctx.db.reading() as session:
        row = session.get(PackageVersion, first)
        assert row is not None and row.lease_owner == b and row.listed
    leases.release(service_ctx, b, [first])
    assert leases.take_version(service_ctx, first, a, available) is True


def test_take_leases_a_batch_once(service_ctx: ServiceContext) -> None:
    ids = _versions(service_ctx)
    with service_ctx.db.transaction() as session:
        got = leases.take(session, [PackageVersion.status == VersionStatus.AVAILABLE.value], token="one",
                          now=service_ctx.now(), seconds=60, limit=2)  # fmt: skip
    assert got == ids[:2]
    with service_ctx.db.transaction() as session:
        rest = leases.take(session, [], token="two", now=service_ctx.now(), seconds=60, limit=10)
    assert rest == ids[2:]
