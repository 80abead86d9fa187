"""Rotation (retire) and revocation: re-signing served packages in leased batches, on both backends.

Every test checks the packages themselves: the served bytes carry exactly one repository signature, from the
active certificate, the author signature is the pushed one, and NuGet's content hash (what lock files pin) did not
change."""

from __future__ import annotations

import io
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from tests.support.repository_signing import (
    OPERATOR,
    SERVICE_INDEX,
    SigningFeed,
    nuget_content_hash,
    signatures_of,
)

from nuseal.enums import SignatureKind
from nuseal.server.db.models import AuditEvent, PackageVersion, RepositoryCertificate, ResignFailure
from nuseal.server.services import audit, rotation
from nuseal.server.services import repository_certificates as repo
from nuseal.server.services.errors import ConflictError


def _drain(feed: SigningFeed, run_id: int, *, limit: int | None = None) -> rotation.RunReport:
    for _ in range(100):
        result = rotation.process_batch(feed.ctx, feed.keyring, run_id, service_index_url=SERVICE_INDEX, limit=limit)
        if result.completed or not result.more:
            break
    return rotation.run_report(feed.ctx, run_id)


def _publish_some(feed: SigningFeed, count: int, *, prefix: str = "Contoso.Lib") -> list[int]:
    return [feed.publish(f"{prefix}{i}", "1.0.0", owners=("alice", "Bob"), author_signed=i % 2 == 0)
            for i in range(count)]  # fmt: skip


def _active(feed: SigningFeed) -> RepositoryCertificate:
    with feed.ctx.db.reading() as session:
        row = repo.active_certificate(session)
    assert row is not None
    return row


def _resign_events(feed: SigningFeed) -> dict[str, int]:
    with feed.ctx.db.reading() as session:
        rows = session.execute(select(AuditEvent.subject, func.count()).where(
            AuditEvent.action == rotation.VERSION_RESIGN).group_by(AuditEvent.subject))  # fmt: skip
        return {str(subject): int(count) for subject, count in rows}


def test_retire_re_signs_every_package_then_unlists_the_certificate(feed: SigningFeed, tmp_path: Path) -> None:
    old = _active(feed).sha256
    versions = _publish_some(feed, 6)
    before = {v: feed.served(v) for v in versions}
    new = feed.add_certificate()
    report = rotation.retire(feed.ctx, OPERATOR, old)
    assert (report.total, report.remaining, report.state, report.certificate_listed) == (6, 6, "running", True)
    assert report.active_certificate == new
    final = _drain(feed, report.run_id, limit=4)
    assert (final.state, final.resigned, final.failed, final.remaining) == ("completed", 6, 0, 0)
    assert not final.certificate_listed
    info = repo.get_certificate(feed.ctx, old)
    assert (info.state, info.listed, info.served_packages) == ("retired", False, 0)
    for version_id in versions:
        row, data = feed.served(version_id)
        old_row, old_data = before[version_id]
        carried = signatures_of(data, tmp_path)
        was = signatures_of(old_data, tmp_path)
        assert row.repo_cert_sha256 == new and carried.repository_cert == new and carried.repository_signatures == 1
        assert carried.primary == was.primary and carried.author_signature_value == was.author_signature_value
        assert carried.owners == ("alice", "Bob") and carried.service_index_url == SERVICE_INDEX
        assert row.package_blob != old_row.package_blob and row.package_sha512 != old_row.package_sha512
        assert feed.ctx.blobs.stat(old_row.package_blob or "") is None  # the old bytes are gone
        assert nuget_content_hash(data, tmp_path) == nuget_content_hash(old_data, tmp_path)
    assert set(_resign_events(feed).values()) == {1} and len(_resign_events(feed)) == 6
    actions = [e.action for e in audit.list_events(feed.ctx)]
    assert actions[-2:] == [repo.CERTIFICATE_UNLIST, rotation.RUN_COMPLETE]


def test_retire_keeps_the_certificate_listed_while_packages_carry_it(feed: SigningFeed) -> None:
    old = _active(feed).sha256
    _publish_some(feed, 3)
    feed.add_certificate()
    report = rotation.retire(feed.ctx, OPERATOR, old)
    result = rotation.process_batch(feed.ctx, feed.keyring, report.run_id, service_index_url=SERVICE_INDEX, limit=2)
    assert (result.claimed, result.resigned, result.remaining, result.completed) == (2, 2, 1, False)
    info = repo.get_certificate(feed.ctx, old)
    assert info.state == "retired" and info.listed and info.served_packages == 1
    again = rotation.retire(feed.ctx, OPERATOR, old)  # resumes the same run
    assert again.run_id == report.run_id and again.resigned == 2


def test_retire_refuses_the_active_certificate_and_unlists_an_unused_one_at_once(feed: SigningFeed) -> None:
    active = _active(feed).sha256
    with pytest.raises(ConflictError, match="is the active one: activate another certificate first"):
        rotation.retire(feed.ctx, OPERATOR, active)
    unused = feed.add_certificate(activate=False)
    report = rotation.retire(feed.ctx, OPERATOR, unused)
    assert (report.state, report.total, report.certificate_listed) == ("completed", 0, False)


def test_revoke_unlists_at_once_then_re_signs(feed: SigningFeed, tmp_path: Path) -> None:
    old = _active(feed).sha256
    versions = _publish_some(feed, 3)
    new = feed.add_certificate()
    report = rotation.revoke(feed.ctx, OPERATOR, old)
    assert report.state == "running" and not report.certificate_listed  # clients stop trusting it now
    assert repo.get_certificate(feed.ctx, old).state == "revoked"
    final = _drain(feed, report.run_id)
    assert (final.state, final.resigned) == ("completed", 3)
    assert {signatures_of(feed.served(v)[1], tmp_path).repository_cert for v in versions} == {new}
    with pytest.raises(ConflictError, match="is revoked"):
        rotation.retire(feed.ctx, OPERATOR, old)
    with pytest.raises(ConflictError, match="is revoked: it cannot sign again"):
        repo.activate(feed.ctx, OPERATOR, old)


def test_revoking_the_active_certificate_waits_for_another_one(feed: SigningFeed) -> None:
    old = _active(feed).sha256
    _publish_some(feed, 2)
    report = rotation.revoke(feed.ctx, OPERATOR, old)
    assert report.active_certificate is None
    with pytest.raises(rotation.NoActiveCertificateError, match="no active repository certificate"):
        rotation.process_batch(feed.ctx, feed.keyring, report.run_id, service_index_url=SERVICE_INDEX)
    assert rotation.run_report(feed.ctx, report.run_id).remaining == 2  # nothing was marked failed
    feed.add_certificate()
    assert _drain(feed, report.run_id).resigned == 2


def test_a_package_that_cannot_be_re_signed_is_reported_and_keeps_the_certificate_listed(
    feed: SigningFeed, tmp_path: Path
) -> None:
    old = _active(feed).sha256
    good, bad = _publish_some(feed, 2)
    row, _ = feed.served(bad)
    assert row.package_blob is not None
    feed.ctx.blobs.delete(row.package_blob)
    feed.ctx.blobs.put(row.package_blob, io.BytesIO(b"this is not a zip file"))
    feed.add_certificate()
    final = _drain(feed, rotation.retire(feed.ctx, OPERATOR, old).run_id)
    assert (final.state, final.resigned, final.failed) == ("completed", 1, 1)
    assert final.certificate_listed  # a served package still carries it: no gap for clients
    (failure,) = final.failures
    assert (failure.package_id, failure.version) == ("Contoso.Lib1", "1.0.0")
    assert "cannot read the package signature" in failure.reason
    assert feed.served(good)[0].repo_cert_sha256 != old and feed.served(bad)[0].repo_cert_sha256 == old
    retry = rotation.retire(feed.ctx, OPERATOR, old)  # a new run tries the failed package again
    assert retry.run_id != final.run_id and retry.total == 1
    assert _drain(feed, retry.run_id).failed == 1


def test_two_workers_on_one_run_never_sign_a_package_twice(feed: SigningFeed) -> None:
    old = _active(feed).sha256
    versions = _publish_some(feed, 12)
    feed.add_certificate()
    run_id = rotation.retire(feed.ctx, OPERATOR, old).run_id
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def worker() -> None:
        try:
            barrier.wait()
            _drain(feed, run_id, limit=3)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors
    final = rotation.run_report(feed.ctx, run_id)
    assert (final.state, final.resigned, final.failed) == ("completed", 12, 0)
    assert _resign_events(feed) == {f"Contoso.Lib{i}/1.0.0": 1 for i in range(12)}
    assert all(feed.served(v)[0].lease_owner is None for v in versions)


def test_leases_keep_workers_apart_until_they_expire(feed: SigningFeed) -> None:
    old = _active(feed).sha256
    _publish_some(feed, 3)
    feed.add_certificate()
    run_id = rotation.retire(feed.ctx, OPERATOR, old).run_id
    crashed = rotation.claim(feed.ctx, run_id, "crashed-worker", 10)  # a worker that then dies
    assert len(crashed) == 3
    assert rotation.claim(feed.ctx, run_id, "other", 10) == []
    nothing = rotation.process_batch(feed.ctx, feed.keyring, run_id, service_index_url=SERVICE_INDEX)
    assert (nothing.claimed, nothing.remaining, nothing.completed) == (0, 3, False)
    assert rotation.sweep(feed.ctx).to_continue == ()  # held: nothing to hand out yet
    feed.clock.advance(timedelta(seconds=feed.ctx.settings.job_lease_seconds + 1))
    assert rotation.sweep(feed.ctx).to_continue == (run_id,)
    assert _drain(feed, run_id).resigned == 3
    assert rotation.sweep(feed.ctx) == rotation.SweepResult((), ())


def test_a_stale_worker_cannot_switch_a_version_it_no_longer_holds(feed: SigningFeed) -> None:
    old = _active(feed).sha256
    (version,) = _publish_some(feed, 1)
    new = feed.add_certificate()
    run_id = rotation.retire(feed.ctx, OPERATOR, old).run_id
    assert rotation.claim(feed.ctx, run_id, "slow", 1) == [version]
    row, _ = feed.served(version)
    feed.clock.advance(timedelta(seconds=feed.ctx.settings.job_lease_seconds + 1))
    assert _drain(feed, run_id).resigned == 1  # someone else took over and finished
    late = rotation._switch(feed.ctx, run_id, version, "slow", row.package_blob or "", "packages/x/y/late.nupkg",
                            "sha", 1, new, old, "Contoso.Lib0/1.0.0")  # fmt: skip
    assert late is False
    assert rotation.run_report(feed.ctx, run_id).resigned == 1
    assert feed.served(version)[0].package_blob != "packages/x/y/late.nupkg"


def test_a_version_signed_with_a_certificate_rotated_meanwhile_is_not_published(feed: SigningFeed) -> None:
    old = _active(feed).sha256
    (version,) = _publish_some(feed, 1)
    middle = feed.add_certificate()
    run_id = rotation.retire(feed.ctx, OPERATOR, old).run_id
    assert rotation.claim(feed.ctx, run_id, "worker", 1) == [version]
    row, _ = feed.served(version)
    feed.add_certificate()  # the operator rotates again while the worker signs with `middle`
    switched = rotation._switch(feed.ctx, run_id, version, "worker", row.package_blob or "", "packages/a/b/c.nupkg",
                                "sha", 1, middle, old, "Contoso.Lib0/1.0.0")  # fmt: skip
    assert switched is False and feed.served(version)[0].lease_owner is None  # given back at once
    final = _drain(feed, run_id)
    assert final.resigned == 1 and feed.served(version)[0].repo_cert_sha256 not in (old, middle)


def test_processing_a_finished_run_again_changes_nothing(feed: SigningFeed, tmp_path: Path) -> None:
    old = _active(feed).sha256
    versions = _publish_some(feed, 2)
    feed.add_certificate()
    run_id = rotation.retire(feed.ctx, OPERATOR, old).run_id
    _drain(feed, run_id)
    served = [feed.served(v) for v in versions]
    duplicate = rotation.process_batch(feed.ctx, feed.keyring, run_id, service_index_url=SERVICE_INDEX)
    assert (duplicate.claimed, duplicate.completed) == (0, True)
    assert [feed.served(v)[1] for v in versions] == [data for _, data in served]
    assert rotation.finalize(feed.ctx, run_id) is False
    with feed.ctx.db.reading() as session:
        assert session.scalar(select(func.count()).select_from(ResignFailure)) == 0
        assert session.scalar(select(func.count()).select_from(PackageVersion)
                              .where(PackageVersion.lease_owner.is_not(None))) == 0  # fmt: skip
    assert all(signatures_of(data, tmp_path).primary in (SignatureKind.AUTHOR, SignatureKind.REPOSITORY)
               for _, data in served)  # fmt: skip
