"""Re-signing in batches, on both backends: one write transaction switches a whole batch, and a crash or an outage
in the middle of a batch loses nothing and signs nothing twice (every package ends with exactly one re-sign event,
served bytes are always whole)."""

from __future__ import annotations

import hashlib
import os
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select
from tests.support.repository_signing import OPERATOR, SERVICE_INDEX, SigningFeed, signatures_of

from nuseal.server.db.models import AuditEvent, PackageVersion
from nuseal.server.services import leases, repository_signing, rotation
from nuseal.server.services import repository_certificates as repo
from nuseal.server.storage import StorageError
from nuseal.server.storage.filesystem import FilesystemBlobStore
from nuseal.server.storage.s3 import S3BlobStore


class SimulatedCrash(BaseException):
    """Stands for SIGKILL: nothing after it runs (leases are not given back either)."""


def _start(feed: SigningFeed, count: int) -> tuple[str, str, list[int], int]:
    with feed.ctx.db.reading() as session:
        active = repo.active_certificate(session)
        assert active is not None
    versions = [feed.publish(f"Contoso.Batch{i}", "1.0.0", owners=("alice",), author_signed=i % 2 == 0)
                for i in range(count)]  # fmt: skip
    new = feed.add_certificate()
    return active.sha256, new, versions, rotation.retire(feed.ctx, OPERATOR, active.sha256).run_id


def _drain(feed: SigningFeed, run_id: int, limit: int | None = None) -> rotation.RunReport:
    for _ in range(50):
        result = rotation.process_batch(feed.ctx, feed.keyring, run_id, service_index_url=SERVICE_INDEX, limit=limit)
        if result.completed or not result.more or not result.claimed:
            break
    return rotation.run_report(feed.ctx, run_id)


def _events(feed: SigningFeed) -> dict[str, int]:
    with feed.ctx.db.reading() as session:
        rows = session.execute(select(AuditEvent.subject, func.count())
                               .where(AuditEvent.action == rotation.VERSION_RESIGN).group_by(AuditEvent.subject))
        return {str(subject): int(count) for subject, count in rows}


def _check_done(feed: SigningFeed, versions: list[int], new: str, tmp_path: Path) -> None:
    assert rotation.running_runs(feed.ctx) == []  # the run completed
    assert _events(feed) == {f"Contoso.Batch{i}/1.0.0": 1 for i in range(len(versions))}  # none lost, none twice
    for version in versions:
        row, data = feed.served(version)
        carried = signatures_of(data, tmp_path)
        assert (row.repo_cert_sha256, carried.repository_cert, carried.repository_signatures) == (new, new, 1)
        assert row.lease_owner is None


def _commits(feed: SigningFeed) -> list[int]:
    counter = [0]

    def count(_connection: Any) -> None:
        counter[0] += 1

    event.listen(feed.ctx.db.engine, "commit", count)
    return counter


def test_a_batch_is_switched_in_one_transaction_whatever_its_size(feed: SigningFeed, tmp_path: Path) -> None:
    _, new, versions, run_id = _start(feed, 7)
    commits = _commits(feed)
    small = rotation.process_batch(feed.ctx, feed.keyring, run_id, service_index_url=SERVICE_INDEX, limit=2)
    small_commits = commits[0]
    commits[0] = 0
    large = rotation.process_batch(feed.ctx, feed.keyring, run_id, service_index_url=SERVICE_INDEX, limit=5)
    assert (small.resigned, large.resigned, large.remaining, large.completed) == (2, 5, 0, True)
    # claim + switch (+ the completion for the last one): the same number of commits for 2 and for 5 packages
    assert small_commits == 2 and commits[0] == 3
    _check_done(feed, versions, new, tmp_path)


def test_new_blobs_are_named_by_their_full_sha256_and_s3_makes_two_requests_per_package(
    feed: SigningFeed, tmp_path: Path
) -> None:
    _, new, versions, run_id = _start(feed, 4)
    sent: list[str] = []
    on_s3 = isinstance(feed.ctx.blobs, S3BlobStore)
    if on_s3:
        feed.ctx.blobs._client.meta.events.register("before-send.s3.*",
                                                    lambda request, **_: sent.append(request.method))  # fmt: skip
    result = rotation.process_batch(feed.ctx, feed.keyring, run_id, service_index_url=SERVICE_INDEX, limit=4)
    assert (result.resigned, result.completed) == (4, True)
    batch_requests = list(sent)
    for version in versions:
        row, data = feed.served(version)
        assert row.package_blob == f"packages/contoso.batch{versions.index(version)}/1.0.0/" \
                                   f"{hashlib.sha256(data).hexdigest()}.nupkg"  # fmt: skip
    if on_s3:
        # The source GET and one PutObject per package (no HEAD: only these bytes can be at a key that names their
        # full SHA-256), then the old blobs in one DeleteObjects (a POST).
        assert sorted(batch_requests) == sorted(["GET", "PUT"] * 4 + ["POST"]), " ".join(batch_requests)
    _check_done(feed, versions, new, tmp_path)


def test_a_crash_before_the_commit_loses_nothing_and_signs_nothing_twice(
    feed: SigningFeed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new, versions, run_id = _start(feed, 5)
    before = {v: feed.served(v)[0].package_blob for v in versions}

    def crash(*_args: object, **_kwargs: object) -> set[int]:
        raise SimulatedCrash

    with monkeypatch.context() as patch:
        patch.setattr(rotation, "_switch_batch", crash)
        patch.setattr(leases, "release", lambda *_a, **_k: None)  # a killed process gives nothing back
        with pytest.raises(SimulatedCrash):
            rotation.process_batch(feed.ctx, feed.keyring, run_id, service_index_url=SERVICE_INDEX, limit=4)
    # The four new blobs were published, but the database still serves the old bytes, leased to the dead worker.
    rows = [feed.served(v)[0] for v in versions]
    assert [r.package_blob for r in rows] == [before[v] for v in versions]
    assert {r.repo_cert_sha256 for r in rows} == {old}
    assert sum(r.lease_owner is not None for r in rows) == 4 and _events(feed) == {}
    assert rotation.run_report(feed.ctx, run_id).resigned == 0
    # Only the fifth is free until the leases expire; then everything is re-signed, each package once.
    assert _drain(feed, run_id, limit=4).resigned == 1
    feed.clock.advance(timedelta(seconds=feed.ctx.settings.job_lease_seconds + 1))
    final = _drain(feed, run_id, limit=4)
    assert (final.state, final.resigned, final.failed) == ("completed", 5, 0)
    _check_done(feed, versions, new, tmp_path)


def test_a_crash_after_the_commit_leaves_only_old_blobs(
    feed: SigningFeed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, new, versions, run_id = _start(feed, 4)
    before = {v: feed.served(v)[0].package_blob or "" for v in versions}

    def crash(*_args: object, **_kwargs: object) -> None:
        raise SimulatedCrash

    with monkeypatch.context() as patch:
        patch.setattr(rotation, "_delete_all", crash)
        patch.setattr(leases, "release", lambda *_a, **_k: None)
        with pytest.raises(SimulatedCrash):
            rotation.process_batch(feed.ctx, feed.keyring, run_id, service_index_url=SERVICE_INDEX, limit=4)
    assert all(feed.ctx.blobs.stat(key) is not None for key in before.values())  # orphans, never served
    assert rotation.run_report(feed.ctx, run_id).resigned == 4
    final = _drain(feed, run_id)  # nothing left to sign: the run just completes
    assert (final.state, final.resigned) == ("completed", 4)
    _check_done(feed, versions, new, tmp_path)


def test_an_outage_in_the_middle_of_a_batch_keeps_what_was_done(
    feed: SigningFeed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, new, versions, run_id = _start(feed, 5)
    unlucky = versions[2]
    real = rotation._sign_one

    def flaky(ctx: Any, keyring: Any, cert: Any, job: Any, *rest: Any) -> Any:
        if job.version_id == unlucky:
            raise StorageError("the blob store is unreachable (simulated)")
        return real(ctx, keyring, cert, job, *rest)

    with monkeypatch.context() as patch:
        patch.setattr(rotation, "_sign_one", flaky)
        with pytest.raises(StorageError, match="unreachable"):
            rotation.process_batch(feed.ctx, feed.keyring, run_id, service_index_url=SERVICE_INDEX, limit=5)
    report = rotation.run_report(feed.ctx, run_id)
    assert (report.resigned, report.failed, report.remaining) == (4, 0, 1)  # the outage is no package's failure
    row, _ = feed.served(unlucky)
    assert row.lease_owner is None and row.repo_cert_sha256 != new  # given back at once, not waiting for expiry
    assert _drain(feed, run_id).resigned == 5
    _check_done(feed, versions, new, tmp_path)


def test_a_batch_makes_its_new_blobs_durable_once_before_the_commit(
    feed: SigningFeed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, new, versions, run_id = _start(feed, 4)
    blobs = feed.ctx.blobs
    calls: list[tuple[str, Any]] = []
    real_put_new, real_sync, real_switch = blobs.put_new, blobs.sync, rotation._switch_batch

    def put_new(key: str, data: bytes, digests: Any, *, durable: bool = True) -> Any:
        calls.append(("put_new", durable))
        return real_put_new(key, data, digests, durable=durable)

    def sync(keys: Any) -> None:
        real_sync(keys)
        calls.append(("sync", sorted(keys)))  # recorded once durable

    def switch(*args: Any) -> set[int]:
        calls.append(("switch", None))
        return real_switch(*args)

    with monkeypatch.context() as patch:
        patch.setattr(blobs, "put_new", put_new)
        patch.setattr(blobs, "sync", sync)
        patch.setattr(rotation, "_switch_batch", switch)
        rotation.process_batch(feed.ctx, feed.keyring, run_id, service_index_url=SERVICE_INDEX, limit=4)
    served = sorted(str(feed.served(v)[0].package_blob) for v in versions)
    # Four writes that do not wait for the disk; each blob is made durable (on the sync threads, as soon as its
    # package is signed), and every one of them is durable before the one switch that serves them.
    assert sorted(c for c in calls if c[0] == "put_new") == [("put_new", False)] * 4
    synced = sorted(key for name, keys in calls if name == "sync" for key in keys)
    assert synced == served
    assert calls[-1] == ("switch", None) and calls.count(("switch", None)) == 1
    _check_done(feed, versions, new, tmp_path)


def test_blobs_that_cannot_be_made_durable_are_not_served(
    feed: SigningFeed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new, versions, run_id = _start(feed, 3)
    before = {v: feed.served(v)[0].package_blob for v in versions}

    def failing(keys: Any) -> None:
        raise StorageError("cannot make the blobs durable (simulated: disk full)")

    with monkeypatch.context() as patch:
        patch.setattr(feed.ctx.blobs, "sync", failing)
        with pytest.raises(StorageError, match="durable"):
            rotation.process_batch(feed.ctx, feed.keyring, run_id, service_index_url=SERVICE_INDEX, limit=3)
    rows = [feed.served(v)[0] for v in versions]
    assert [r.package_blob for r in rows] == [before[v] for v in versions]  # still the old bytes
    assert {r.repo_cert_sha256 for r in rows} == {old} and all(r.lease_owner is None for r in rows)  # given back
    report = rotation.run_report(feed.ctx, run_id)
    assert (report.resigned, report.failed, _events(feed)) == (0, 0, {})  # an outage is no package's failure
    assert _drain(feed, run_id).resigned == 3
    _check_done(feed, versions, new, tmp_path)


def test_one_blob_that_cannot_be_made_durable_keeps_the_whole_batch_unserved(
    feed: SigningFeed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new, versions, run_id = _start(feed, 4)
    before = {v: feed.served(v)[0].package_blob for v in versions}
    real_sync = feed.ctx.blobs.sync
    synced: list[str] = []
    lock = threading.Lock()

    def third_fails(keys: Any) -> None:
        with lock:  # called from the sync threads
            synced.extend(keys)
            third = len(synced) == 3
        if third:
            raise StorageError("cannot make the blob durable (simulated: I/O error)")
        real_sync(keys)

    with monkeypatch.context() as patch:
        patch.setattr(feed.ctx.blobs, "sync", third_fails)
        with pytest.raises(StorageError, match="durable"):
            rotation.process_batch(feed.ctx, feed.keyring, run_id, service_index_url=SERVICE_INDEX, limit=4)
    assert len(synced) == 4  # the others were still waited for before giving up
    rows = [feed.served(v)[0] for v in versions]
    assert [r.package_blob for r in rows] == [before[v] for v in versions]  # none switched, not even the durable ones
    assert {r.repo_cert_sha256 for r in rows} == {old} and all(r.lease_owner is None for r in rows)
    assert _drain(feed, run_id).resigned == 4
    _check_done(feed, versions, new, tmp_path)


@pytest.mark.parametrize("when", ["before", "while"])
def test_a_served_blob_that_vanished_is_that_package_s_failure(
    feed: SigningFeed, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    """The folder store's packages are signed from the served file itself: one deleted before or while it is read
    is recorded as a missing blob (as when every blob was downloaded first), and never deleted by the batch."""
    _, new, versions, run_id = _start(feed, 3)
    gone = versions[1]
    row, _ = feed.served(gone)
    key = str(row.package_blob)
    real = rotation._sign_file

    def vanishing(src: Path, *rest: Any) -> None:
        if src.name == key.rsplit("/", 1)[1] or (when == "while" and src.name.startswith(f"{gone}.")):
            feed.ctx.blobs.delete(key)
        real(src, *rest)

    if when == "before":
        feed.ctx.blobs.delete(key)
    monkeypatch.setattr(rotation, "_sign_file", vanishing if when == "while" else real)
    result = rotation.process_batch(feed.ctx, feed.keyring, run_id, service_index_url=SERVICE_INDEX, limit=3)
    downloaded = not isinstance(feed.ctx.blobs, FilesystemBlobStore)
    if when == "while" and downloaded:  # S3: the copy was read, the object's deletion comes too late to matter
        assert (result.resigned, result.failed) == (3, 0)
        return
    assert (result.resigned, result.failed) == (2, 1)
    report = rotation.run_report(feed.ctx, run_id)
    [failure] = report.failures
    assert failure.reason == f"no blob '{key}' in {feed.ctx.blobs.describe()}"
    for version in versions:
        if version != gone:
            assert feed.served(version)[0].repo_cert_sha256 == new
    assert feed.ctx.blobs.stat(key) is None


def test_the_author_signature_check_sees_any_change(feed: SigningFeed, tmp_path: Path) -> None:
    src = feed.build("Contoso.Author", "1.0.0", author_signed=True)
    with feed.ctx.db.reading() as session:
        row = repo.active_certificate(session)
        assert row is not None
        cert = feed.keyring.certificate(row)
    from nuseal.sign.repository import read_signature

    dst = tmp_path / "signed.nupkg"
    repository_signing.sign_for_feed(src, dst, owners=["alice"], service_index_url=SERVICE_INDEX, repo_cert=cert,
                                     timestamper=feed.keyring.timestamper(cert), now=feed.clock())  # fmt: skip
    before, after = read_signature(src), read_signature(dst)
    assert before is not None and after is not None and before != after
    repository_signing._check_author_signature_intact(before, after)  # countersigned: the author's part is intact
    from nuseal.cms.countersign import strip_repository_countersignatures

    for signature in (strip_repository_countersignatures(before), after):  # the DER walker reads what asn1crypto does
        assert repository_signing._author_parts(signature) == repository_signing._author_parts_asn1(signature)
    other = read_signature(feed.build("Contoso.Other", "1.0.0", author_signed=True))
    assert other is not None
    with pytest.raises(repository_signing.RepositorySigningError, match="author signature changed"):
        repository_signing._check_author_signature_intact(before, other)
    with pytest.raises(repository_signing.RepositorySigningError, match="author signature changed"):
        repository_signing._check_author_signature_intact(before, b"\x30\x03garbage")


def test_versions_stay_whole_while_a_batch_is_signed(
    feed: SigningFeed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The served row only ever names a blob that exists and carries exactly one repository signature."""
    old, new, versions, run_id = _start(feed, 3)
    seen: list[tuple[str | None, str | None]] = []
    real = rotation._switch_batch

    def watching(*args: Any, **kwargs: Any) -> set[int]:
        for version in versions:  # the new blobs are published, the rows not switched yet
            row, data = feed.served(version)
            seen.append((row.repo_cert_sha256, signatures_of(data, tmp_path).repository_cert))
        return real(*args, **kwargs)

    monkeypatch.setattr(rotation, "_switch_batch", watching)
    _drain(feed, run_id, limit=3)
    assert seen == [(old, old)] * 3
    with feed.ctx.db.reading() as session:
        assert session.scalar(select(func.count()).select_from(PackageVersion)
                              .where(PackageVersion.repo_cert_sha256 == new)) == 3  # fmt: skip


def test_a_forked_child_starts_its_own_sync_threads() -> None:
    pool = rotation._sync_threads()
    assert pool.submit(lambda: 1).result(timeout=5) == 1  # the parent's threads are running
    pid = os.fork()
    if pid == 0:  # the parent's threads do not exist here: a pool that thinks they do would never run anything
        try:
            fresh = rotation._sync_threads()
            os._exit(0 if fresh is not pool and fresh.submit(lambda: 2).result(timeout=5) == 2 else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
