"""The job queue on huey: re-signing runs through worker threads on the embedded SQLite queue and on Redis, a
duplicate delivery does nothing, and work a crashed worker left is picked up by the start-up sweep."""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from tests.support.redis_server import RedisServer
from tests.support.repository_signing import OPERATOR, SigningFeed, signatures_of

from nuseal.server.jobs.queue import JobQueue, QueueError, open_huey
from nuseal.server.jobs.workers import EmbeddedWorkers
from nuseal.server.services import repository_certificates as repo
from nuseal.server.services import rotation
from nuseal.server.settings import ServerSettings, load_settings


@pytest.fixture
def queue(request: pytest.FixtureRequest, feed: SigningFeed) -> Iterator[JobQueue]:
    """The embedded SQLite queue in the data folder with SQLite, a Redis database of its own with PostgreSQL + S3
    (the two deployments: embedded and at scale)."""
    if feed.ctx.db.dialect == "sqlite":
        settings = feed.ctx.settings
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        number = 1 + zlib.crc32(request.node.nodeid.encode()) % 15
        server.client(number).flushdb()
        settings = _with_queue(feed.ctx.settings, server.url(number))
    yield JobQueue(open_huey(settings))


def _with_queue(settings: ServerSettings, url: str) -> ServerSettings:
    from dataclasses import replace

    return replace(settings, queue_url=url)


def _active(feed: SigningFeed) -> str:
    with feed.ctx.db.reading() as session:
        row = repo.active_certificate(session)
    assert row is not None
    return row.sha256


def _wait_for(feed: SigningFeed, run_id: int, timeout: float = 120.0) -> rotation.RunReport:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        report = rotation.run_report(feed.ctx, run_id)
        if report.completed:
            return report
        time.sleep(0.1)
    pytest.fail(f"run {run_id} did not complete in {timeout} s: {rotation.run_report(feed.ctx, run_id)}")


def test_worker_threads_work_through_a_run(feed: SigningFeed, queue: JobQueue, tmp_path: Path) -> None:
    old = _active(feed)
    versions = [feed.publish(f"Contoso.Lib{i}", "1.0.0", author_signed=i % 3 == 0) for i in range(10)]
    new = feed.add_certificate()
    workers = EmbeddedWorkers(queue, feed.runtime, threads=2)
    workers.start()
    try:
        run = rotation.retire(feed.ctx, OPERATOR, old)
        queue.enqueue_resign(run.run_id, copies=3)
        report = _wait_for(feed, run.run_id)
    finally:
        workers.stop()
    assert (report.resigned, report.failed, report.certificate_listed) == (10, 0, False)
    for version in versions:
        carried = signatures_of(feed.served(version)[1], tmp_path)
        assert (carried.repository_cert, carried.repository_signatures) == (new, 1)
    assert queue.pending() == 0


def test_a_duplicate_delivery_changes_nothing(feed: SigningFeed, queue: JobQueue) -> None:
    old = _active(feed)
    versions = [feed.publish(f"Contoso.Lib{i}", "1.0.0") for i in range(3)]
    feed.add_certificate()
    run = rotation.retire(feed.ctx, OPERATOR, old)
    queue.bind(feed.runtime)
    queue._resign_batch(run.run_id)  # a worker runs the task...
    done = [(row.package_blob, data) for row, data in map(feed.served, versions)]
    queue._resign_batch(run.run_id)  # ...and the same message is delivered again
    assert [(row.package_blob, data) for row, data in map(feed.served, versions)] == done
    assert rotation.run_report(feed.ctx, run.run_id).resigned == 3


def test_the_start_up_sweep_picks_up_what_a_killed_worker_held(feed: SigningFeed, queue: JobQueue) -> None:
    old = _active(feed)
    for i in range(4):
        feed.publish(f"Contoso.Lib{i}", "1.0.0")
    feed.add_certificate()
    run = rotation.retire(feed.ctx, OPERATOR, old)
    assert len(rotation.claim(feed.ctx, run.run_id, "killed-worker", 10)) == 4  # its message died with it
    feed.clock.advance(timedelta(seconds=feed.ctx.settings.job_lease_seconds + 1))
    workers = EmbeddedWorkers(queue, feed.runtime, threads=1)
    workers.start()  # no message in the queue: only the sweep can find the work
    try:
        assert _wait_for(feed, run.run_id).resigned == 4
    finally:
        workers.stop()


def test_a_run_waiting_for_a_certificate_does_not_fail_the_task(feed: SigningFeed, queue: JobQueue) -> None:
    old = _active(feed)
    feed.publish("Contoso.Lib", "1.0.0")
    run = rotation.revoke(feed.ctx, OPERATOR, old)
    queue.bind(feed.runtime)
    queue._resign_batch(run.run_id)  # logs and returns: activating a certificate enqueues the run again
    assert rotation.run_report(feed.ctx, run.run_id).remaining == 1


def test_bad_queue_urls(tmp_path: Path) -> None:
    with pytest.raises(QueueError, match=r"expected sqlite:////ABSOLUTE/queue\.db"):
        open_huey(load_settings({"data_dir": tmp_path, "queue_url": "sqlite:///relative.db"}))
