"""``nuseal worker`` processes re-signing a run, embedded (SQLite + folder + SQLite queue) and at scale
(PostgreSQL + S3 + Redis): two workers share a run without double work, and a worker killed with SIGKILL mid-run
(``NUSEAL_TEST_CRASH_AT``) leaves nothing half-done: a fresh worker finishes, every package ends re-signed exactly
once, never served half-signed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select
from tests.support.pki import TestPki
from tests.support.repository_signing import (
    OPERATOR,
    SigningFeed,
    WorkerProcess,
    nuget_content_hash,
    s3_storage,
    signatures_of,
    signing_feed,
    start_worker,
    worker_environment,
)
from tests.support.server_fixtures import DatabaseFactory

from nuseal.server.db.models import AuditEvent
from nuseal.server.faults import ENV as CRASH_ENV
from nuseal.server.jobs.queue import RESIGN_FANOUT, JobQueue, open_huey
from nuseal.server.services import repository_certificates as repo
from nuseal.server.services import rotation

LEASE_SECONDS = 4
PACKAGES = 24


@pytest.fixture(params=["embedded", "scale"])
def deployment(request: pytest.FixtureRequest, database_factory: DatabaseFactory, pki: TestPki,
               tmp_path: Path) -> Iterator[SigningFeed]:  # fmt: skip
    """A signing feed whose workers run in other processes: embedded, or PostgreSQL + S3 + Redis."""
    backend = "sqlite" if request.param == "embedded" else "postgresql"
    extra: dict[str, object] = {"job_lease_seconds": LEASE_SECONDS, "resign_batch_size": 3}
    if request.param == "scale":
        redis = request.getfixturevalue("redis_server")
        redis.client(15).flushdb()
        extra |= s3_storage(request.getfixturevalue("s3_bucket")) | {"queue_url": redis.url(15)}
    with database_factory.database(backend) as db, signing_feed(db, pki, tmp_path / "feed", **extra) as feed:
        feed.add_certificate()
        yield feed


@dataclass
class Rotation:
    old: str
    new: str
    versions: list[int]
    before: dict[int, bytes]
    run_id: int


def _prepare(feed: SigningFeed) -> tuple[str, list[int], dict[int, bytes]]:
    with feed.ctx.db.reading() as session:
        active = repo.active_certificate(session)
        assert active is not None
    versions = [feed.publish(f"Contoso.Lib{i}", "1.0.0", owners=("alice",), author_signed=i % 2 == 0)
                for i in range(PACKAGES)]  # fmt: skip
    return active.sha256, versions, {v: feed.served(v)[1] for v in versions}


def _rotate(feed: SigningFeed, old: str, versions: list[int], before: dict[int, bytes]) -> Rotation:
    new = feed.add_certificate()
    run = rotation.retire(feed.ctx, OPERATOR, old)
    JobQueue(open_huey(feed.ctx.settings)).enqueue_resign(run.run_id, copies=RESIGN_FANOUT)
    return Rotation(old, new, versions, before, run.run_id)


def _wait(feed: SigningFeed, run_id: int, workers: list[WorkerProcess], timeout: float = 180.0) -> rotation.RunReport:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        report = rotation.run_report(feed.ctx, run_id)
        if report.completed:
            return report
        time.sleep(0.2)
    logs = "\n".join(w.log_path.read_text()[-3000:] for w in workers)
    pytest.fail(f"run {run_id} not completed in {timeout} s: {rotation.run_report(feed.ctx, run_id)}\n{logs}")


def _check_outcome(feed: SigningFeed, done: Rotation, tmp_path: Path) -> None:
    """Every package re-signed exactly once, correctly, author signature and content hash intact; nothing leased."""
    report = rotation.run_report(feed.ctx, done.run_id)
    assert (report.state, report.resigned, report.failed, report.certificate_listed) == ("completed", PACKAGES, 0,
                                                                                          False)  # fmt: skip
    with feed.ctx.db.reading() as session:
        events = dict(session.execute(select(AuditEvent.subject, func.count())
                                      .where(AuditEvent.action == rotation.VERSION_RESIGN)
                                      .group_by(AuditEvent.subject)).all())  # fmt: skip
    assert events == {f"Contoso.Lib{i}/1.0.0": 1 for i in range(PACKAGES)}  # none signed twice, none lost
    for version in done.versions:
        row, data = feed.served(version)
        carried, was = signatures_of(data, tmp_path), signatures_of(done.before[version], tmp_path)
        assert (row.repo_cert_sha256, carried.repository_cert, carried.repository_signatures) == (done.new,
                                                                                                 done.new, 1)
        assert carried.author_signature_value == was.author_signature_value
        assert nuget_content_hash(data, tmp_path) == nuget_content_hash(done.before[version], tmp_path)
        assert row.lease_owner is None


def test_two_workers_share_a_run_without_double_work(deployment: SigningFeed, tmp_path: Path) -> None:
    feed = deployment
    old, versions, before = _prepare(feed)
    env = worker_environment(feed)
    workers = [start_worker(env, tmp_path / f"worker{i}.log") for i in range(2)]
    try:
        done = _rotate(feed, old, versions, before)
        _wait(feed, done.run_id, workers)
    finally:
        codes = [w.stop() for w in workers]
    _check_outcome(feed, done, tmp_path)
    shares = [w.resigned() for w in workers]
    assert sum(shares) == PACKAGES and all(shares), shares  # spread over both, each package once
    assert codes == [0, 0]


@pytest.mark.parametrize("point", ["resign.blob_written", "resign.committed"])
def test_a_worker_killed_mid_run_leaves_nothing_half_done(deployment: SigningFeed, tmp_path: Path, point: str) -> None:
    feed = deployment
    old, versions, before = _prepare(feed)
    env = worker_environment(feed)
    doomed = start_worker(env | {CRASH_ENV: f"{point}:4"}, tmp_path / "doomed.log")
    try:
        done = _rotate(feed, old, versions, before)
        doomed.process.wait(timeout=120)
    finally:
        doomed.stop()
    assert doomed.process.returncode == -9, doomed.log_path.read_text()[-2000:]  # SIGKILL at the checkpoint
    interrupted = rotation.run_report(feed.ctx, done.run_id)
    assert not interrupted.completed and interrupted.resigned < PACKAGES
    for version in versions:  # meanwhile every served package is whole and signed once, old or new
        row, data = feed.served(version)
        carried = signatures_of(data, tmp_path)
        assert carried.repository_signatures == 1 and carried.repository_cert == row.repo_cert_sha256
        assert row.repo_cert_sha256 in (old, done.new)
    time.sleep(LEASE_SECONDS + 1)  # the killed worker's leases expire; a fresh worker's start-up sweep finds them
    fresh = start_worker(env, tmp_path / "fresh.log")
    try:
        _wait(feed, done.run_id, [doomed, fresh])
    finally:
        assert fresh.stop() == 0
    _check_outcome(feed, done, tmp_path)


def test_the_fault_hook_refuses_unknown_points(tmp_path: Path) -> None:
    env = {"NUSEAL_DATA": str(tmp_path / "data"), "NUSEAL_PUBLIC_URL": "https://feed.example.test",
           CRASH_ENV: "resign.nowhere"}  # fmt: skip
    with pytest.raises(AssertionError, match=r"unknown crash point 'resign\.nowhere'"):
        start_worker(env, tmp_path / "w.log")
