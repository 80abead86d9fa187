"""Rotation and revocation of repository certificates: re-signing every served package that carries one
(server.md §B.8).

- ``retire``: the certificate stops signing at once but stays published; every served package carrying it is
  re-signed with the active certificate; only when none is left is it removed from RepositorySignatures, so
  clients never see a package whose repository certificate is not listed.
- ``revoke`` (key compromise): the certificate is unpublished at once (clients stop trusting its signatures),
  then its packages are re-signed as fast as the workers go.

A run (``resign_runs``) is worked through in batches (:func:`process_batch`) by any number of workers: each batch
takes a lease on up to ``resign_batch_size`` versions (:mod:`nuseal.server.services.leases`: one conditional UPDATE,
``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so no two workers hold the same version. Per version: read the served
bytes, replace only the repository signature (``sign_for_feed``: the author signature is kept), store the new bytes
under a new content-addressed key, then switch the row in one transaction that also counts it, *only if* the lease
is still ours, the row still serves the bytes we started from and the signing certificate is still the active one
(so a version is never re-signed twice over, whatever crashes or duplicate deliveries happen), then delete the old
blob. Every step is safe to repeat after SIGKILL: a crash before the switch leaves an unreferenced blob (never
served) and a lease that expires; a crash after it leaves an old blob to delete later. A version the run cannot
re-sign is recorded with the reason and keeps its old signature (a retired certificate then stays published); a new
``retire``/``revoke`` of the certificate starts a new run that tries it again.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final, cast

from sqlalchemy import CursorResult, exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nuseal.codes import NuCode
from nuseal.errors import NusealError, SigningError
from nuseal.server import faults
from nuseal.server.db.models import (
    PackageRegistration,
    PackageVersion,
    RepositoryCertificate,
    RepositoryCertificateState,
    ResignFailure,
    ResignReason,
    ResignRun,
    ResignRunState,
    SignatureKindColumn,
    VersionStatus,
)
from nuseal.server.services import audit, feed_state, leases
from nuseal.server.services.context import ServiceContext
from nuseal.server.services.errors import ConflictError
from nuseal.server.services.permissions import Actor, Operator
from nuseal.server.services.repository_certificates import (
    CERTIFICATE_RETIRE,
    CERTIFICATE_REVOKE,
    CERTIFICATE_UNLIST,
    active_certificate,
    find_certificate,
    signs_now,
)
from nuseal.server.services.repository_keys import Keyring, RepositoryCert
from nuseal.server.services.repository_signing import (
    RepositorySigningError,
    check_feed_url,
    sign_for_feed,
    trial_sign,
)
from nuseal.server.storage import BlobNotFoundError, PutResult, StorageError

_log = logging.getLogger(__name__)

VERSION_RESIGN: Final = "package:version:resign"
RUN_COMPLETE: Final = "repository:resign:complete"
SYSTEM: Final = Operator("system")
#: Signing errors that are about the package itself (zip64, too many entries): recorded as that package's failure.
_PACKAGE_SIGNING_CODES: Final = frozenset({NuCode.NU3006, NuCode.NU3039})


class NoActiveCertificateError(NusealError):
    """There is no active repository certificate to re-sign with (activate one)."""


def package_blob_key(lower_id: str, lower_version: str, sha256: str) -> str:
    """Where a package's served bytes live: content-addressed, so new bytes never overwrite served ones."""
    return f"packages/{lower_id}/{lower_version}/{sha256[:12]}.nupkg"


# --- reports ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunFailure:
    package_id: str
    version: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"id": self.package_id, "version": self.version, "reason": self.reason}


@dataclass(frozen=True)
class RunReport:
    """A run's progress, or its final report once ``state`` is ``completed``."""

    run_id: int
    certificate_sha256: str
    reason: str
    state: str
    total: int
    resigned: int
    failed: int
    remaining: int
    started_at: datetime
    finished_at: datetime | None
    certificate_listed: bool
    active_certificate: str | None
    failures: tuple[RunFailure, ...] = field(default=())

    @property
    def completed(self) -> bool:
        return self.state == ResignRunState.COMPLETED.value

    @property
    def done(self) -> int:
        return self.resigned + self.failed

    def duration(self, now: datetime) -> timedelta:
        return (self.finished_at or now) - self.started_at

    def to_dict(self, now: datetime) -> dict[str, Any]:
        return {
            "run": self.run_id, "certificate": self.certificate_sha256, "reason": self.reason, "state": self.state,
            "total": self.total, "resigned": self.resigned, "failed": self.failed, "remaining": self.remaining,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "duration_seconds": round(self.duration(now).total_seconds(), 3),
            "certificate_listed": self.certificate_listed, "active_certificate": self.active_certificate,
            "failures": [f.to_dict() for f in self.failures],
        }  # fmt: skip


def _carriers(session: Session, sha256: str) -> int:
    """Served versions whose repository signature is made with ``sha256``."""
    return int(session.scalar(
        select(func.count()).select_from(PackageVersion)
        .where(PackageVersion.status == VersionStatus.AVAILABLE.value, PackageVersion.repo_cert_sha256 == sha256)
    ) or 0)  # fmt: skip


def _eligible(run: ResignRun) -> Any:
    """Versions the run still has to re-sign: served, carrying the certificate, not failed in this run."""
    failed = exists().where(ResignFailure.run_id == run.id, ResignFailure.version_id == PackageVersion.id)
    return (PackageVersion.status == VersionStatus.AVAILABLE.value,
            PackageVersion.repo_cert_sha256 == run.certificate_sha256, ~failed)  # fmt: skip


def _remaining(session: Session, run: ResignRun) -> int:
    return int(session.scalar(select(func.count()).select_from(PackageVersion).where(*_eligible(run))) or 0)


def _report(session: Session, run: ResignRun, *, with_failures: bool = True) -> RunReport:
    certificate = session.get(RepositoryCertificate, run.certificate_sha256)
    active = active_certificate(session)
    failures: tuple[RunFailure, ...] = ()
    if with_failures and run.failed:
        rows = session.execute(
            select(PackageRegistration.package_id, PackageVersion.version, ResignFailure.reason)
            .join(PackageVersion, PackageVersion.id == ResignFailure.version_id)
            .join(PackageRegistration, PackageRegistration.id == PackageVersion.registration_id)
            .where(ResignFailure.run_id == run.id)
            .order_by(PackageRegistration.lower_id, PackageVersion.id)
        )
        failures = tuple(RunFailure(str(i), str(v), str(r)) for i, v, r in rows)
    return RunReport(
        run.id, run.certificate_sha256, run.reason, run.state, run.total, run.resigned, run.failed,
        _remaining(session, run), run.started_at, run.finished_at,
        certificate is not None and certificate.listed, active.sha256 if active else None, failures,
    )  # fmt: skip


def run_report(ctx: ServiceContext, run_id: int) -> RunReport:
    with ctx.db.reading() as session:
        run = session.get(ResignRun, run_id)
        if run is None:
            raise ConflictError(f"no re-signing run {run_id}")
        return _report(session, run)


def running_runs(ctx: ServiceContext) -> list[int]:
    with ctx.db.reading() as session:
        return list(session.scalars(
            select(ResignRun.id).where(ResignRun.state == ResignRunState.RUNNING.value).order_by(ResignRun.id)
        ))  # fmt: skip


# --- starting a run -------------------------------------------------------------------------------------------


def _running_run(session: Session, sha256: str) -> ResignRun | None:
    return session.scalars(
        select(ResignRun).where(ResignRun.certificate_sha256 == sha256,
                                ResignRun.state == ResignRunState.RUNNING.value).with_for_update()
    ).first()  # fmt: skip


def _start_run(session: Session, actor: Actor, row: RepositoryCertificate, reason: ResignReason,
               now: datetime) -> ResignRun:  # fmt: skip
    run = _running_run(session, row.sha256)
    if run is not None:  # resume: retire/revoke again attaches to the run in progress
        if reason is ResignReason.REVOKE and run.reason != reason.value:
            run.reason = reason.value
        return run
    carriers = _carriers(session, row.sha256)
    run = ResignRun(certificate_sha256=row.sha256, reason=reason.value, state=ResignRunState.RUNNING.value,
                    started_by=actor.label, started_at=now, total=carriers, resigned=0, failed=0)  # fmt: skip
    session.add(run)
    session.flush()
    return run


def retire(ctx: ServiceContext, actor: Actor, fingerprint: str) -> RunReport:
    """Retire a (non-active) certificate: re-sign its packages with the active one, unpublish it when none is left.

    Starts a run, or returns the one in progress (a second ``retire`` resumes). With nothing to re-sign, the
    certificate is unpublished at once and the run is completed.
    """
    now = ctx.now()
    with ctx.db.transaction() as session:
        row = find_certificate(session, fingerprint)
        session.refresh(row, with_for_update=True)
        if row.state == RepositoryCertificateState.ACTIVE.value:
            raise ConflictError(f"repository certificate {row.sha256} is the active one: activate another "
                                "certificate first, then retire this one")  # fmt: skip
        if row.state == RepositoryCertificateState.REVOKED.value:
            raise ConflictError(f"repository certificate {row.sha256} is revoked: its packages are re-signed by "
                                "the revocation (see 'repo-cert revoke')")  # fmt: skip
        if row.state == RepositoryCertificateState.LISTED.value:
            row.state = RepositoryCertificateState.RETIRED.value
            row.retired_at = now
            audit.record(session, actor, CERTIFICATE_RETIRE, row.sha256, at=now,
                         before={"state": RepositoryCertificateState.LISTED.value, "listed": True},
                         after={"state": row.state, "listed": row.listed})  # fmt: skip
        run = _start_run(session, actor, row, ResignReason.RETIRE, now)
        _complete_if_done(session, run, now)
        return _report(session, run)


def revoke(ctx: ServiceContext, actor: Actor, fingerprint: str) -> RunReport:
    """Revoke a certificate (key compromise): unpublish it now, then re-sign its packages with the active one.

    Revoking the active certificate leaves the feed without one: new signatures wait until another is activated.
    """
    now = ctx.now()
    with ctx.db.transaction() as session:
        row = find_certificate(session, fingerprint)
        session.refresh(row, with_for_update=True)
        if row.state != RepositoryCertificateState.REVOKED.value:
            before = {"state": row.state, "listed": row.listed}
            row.state = RepositoryCertificateState.REVOKED.value
            row.revoked_at = now
            row.unlisted_at = row.unlisted_at or now
            audit.record(session, actor, CERTIFICATE_REVOKE, row.sha256, at=now, before=before,
                         after={"state": row.state, "listed": row.listed})  # fmt: skip
        run = _start_run(session, actor, row, ResignReason.REVOKE, now)
        _complete_if_done(session, run, now)
        return _report(session, run)


# --- completing a run ------------------------------------------------------------------------------------------


def _complete_if_done(session: Session, run: ResignRun, now: datetime) -> bool:
    """Complete the run when nothing is left to re-sign; a retired certificate no package carries is unpublished."""
    if run.state != ResignRunState.RUNNING.value or _remaining(session, run) > 0:
        return False
    run.state = ResignRunState.COMPLETED.value
    run.finished_at = now
    certificate = session.get(RepositoryCertificate, run.certificate_sha256)
    assert certificate is not None  # a foreign key
    unlisted = False
    if (certificate.state == RepositoryCertificateState.RETIRED.value and certificate.unlisted_at is None
            and _carriers(session, certificate.sha256) == 0):
        certificate.unlisted_at = now
        unlisted = True
        audit.record(session, SYSTEM, CERTIFICATE_UNLIST, certificate.sha256, at=now,
                     before={"listed": True}, after={"listed": False})  # fmt: skip
    audit.record(session, SYSTEM, RUN_COMPLETE, certificate.sha256, at=now,
                 after={"run": run.id, "reason": run.reason, "total": run.total, "resigned": run.resigned,
                        "failed": run.failed, "unlisted": unlisted})  # fmt: skip
    return True


def finalize(ctx: ServiceContext, run_id: int) -> bool:
    """Complete the run if nothing is left (idempotent); True when this call completed it."""
    faults.checkpoint("resign.finalizing")
    with ctx.db.transaction() as session:
        run = session.get(ResignRun, run_id, with_for_update=True)
        return run is not None and _complete_if_done(session, run, ctx.now())


# --- working through a run ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchResult:
    claimed: int = 0
    resigned: int = 0
    failed: int = 0
    skipped: int = 0  # changed under us (lease lost, row switched, unpublished): nothing done, nothing counted
    remaining: int = 0
    completed: bool = False  # the run is complete after this batch

    @property
    def more(self) -> bool:
        return self.remaining > 0 and not self.completed


@dataclass
class _Verified:
    """Per process: the certificates whose trial signature passed (a broken setup fails once, not per package)."""

    done: set[str] = field(default_factory=set)


_verified = _Verified()


def signing_certificate(ctx: ServiceContext, keyring: Keyring, service_index_url: str) -> RepositoryCert:
    """The active certificate opened through ``keyring``, after one trial signature per process.

    :class:`NoActiveCertificateError`, ``RepositoryKeyError`` or ``RepositorySigningError`` when this process cannot
    sign: those are the worker's configuration, never a package's failure.
    """
    check_feed_url(service_index_url)
    with ctx.db.reading() as session:
        row = active_certificate(session)
        if row is None:
            raise NoActiveCertificateError("there is no active repository certificate: 'nuseal admin repo-cert "
                                           "activate FINGERPRINT' one")  # fmt: skip
        cert = keyring.certificate(row)
    if cert.sha256 not in _verified.done:
        trial_sign(service_index_url=service_index_url, repo_cert=cert, timestamper=keyring.timestamper(cert),
                   now=ctx.now())  # fmt: skip
        _verified.done.add(cert.sha256)
    return cert


def claim(ctx: ServiceContext, run_id: int, token: str, limit: int) -> list[int]:
    """Lease up to ``limit`` versions of the run for ``token``: ids of the versions this call got."""
    now = ctx.now()
    with ctx.db.transaction() as session:
        run = session.get(ResignRun, run_id)
        if run is None or run.state != ResignRunState.RUNNING.value:
            return []
        return leases.take(session, _eligible(run), token=token, now=now, seconds=ctx.settings.job_lease_seconds,
                           limit=limit)  # fmt: skip


def process_batch(
    ctx: ServiceContext, keyring: Keyring, run_id: int, *, service_index_url: str, limit: int | None = None
) -> BatchResult:
    """Re-sign one batch of the run: claim, re-sign each version, complete the run when nothing is left.

    Raises (after giving the leases back) when this process cannot sign or a service is unreachable: the task
    is retried and no package is marked failed for it.
    """
    with ctx.db.reading() as session:
        run = session.get(ResignRun, run_id)
        if run is None or run.state != ResignRunState.RUNNING.value:
            return BatchResult(completed=run is not None)
        certificate_sha256 = run.certificate_sha256
    cert = signing_certificate(ctx, keyring, service_index_url)
    token = leases.new_token()
    claimed = claim(ctx, run_id, token, limit or ctx.settings.resign_batch_size)
    faults.checkpoint("resign.claimed")
    counts = {"resigned": 0, "failed": 0, "skipped": 0}
    pending = list(claimed)
    try:
        with tempfile.TemporaryDirectory(prefix="nuseal-resign-") as folder:
            for version_id in claimed:
                outcome = _resign_one(ctx, keyring, cert, run_id, certificate_sha256, version_id, token,
                                      service_index_url, Path(folder))  # fmt: skip
                counts[outcome] += 1
                pending.remove(version_id)
    finally:
        leases.release(ctx, token, pending)
    with ctx.db.reading() as session:
        run = session.get(ResignRun, run_id)
        remaining = _remaining(session, run) if run is not None else 0
    completed = remaining == 0 and finalize(ctx, run_id)
    return BatchResult(len(claimed), counts["resigned"], counts["failed"], counts["skipped"], remaining, completed)


def _resign_one(ctx: ServiceContext, keyring: Keyring, cert: RepositoryCert, run_id: int, old_certificate: str,
                version_id: int, token: str, service_index_url: str, folder: Path) -> str:  # fmt: skip
    with ctx.db.reading() as session:
        row = session.get(PackageVersion, version_id)
        if (row is None or row.lease_owner != token or row.status != VersionStatus.AVAILABLE.value
                or row.repo_cert_sha256 != old_certificate or row.package_blob is None):
            return "skipped"
        registration = row.registration
        owners = [owner.name for owner in registration.owners]
        old_blob, lower_id, lower = row.package_blob, registration.lower_id, row.lower_version
        subject = f"{registration.package_id}/{row.version}"
    src, dst = folder / f"{version_id}.nupkg", folder / f"{version_id}.signed.nupkg"
    try:
        _download(ctx, old_blob, src)
        sign_for_feed(src, dst, owners=owners, service_index_url=service_index_url, repo_cert=cert,
                      timestamper=keyring.timestamper(cert), now=ctx.now())  # fmt: skip
    except (RepositorySigningError, BlobNotFoundError) as exc:
        _fail(ctx, run_id, version_id, token, str(exc))
        return "failed"
    except SigningError as exc:
        if exc.code not in _PACKAGE_SIGNING_CODES:
            raise
        _fail(ctx, run_id, version_id, token, str(exc))
        return "failed"
    faults.checkpoint("resign.signed")
    with dst.open("rb") as data:
        staged = ctx.blobs.stage(data)
    key = package_blob_key(lower_id, lower, staged.sha256)
    if ctx.blobs.publish(staged, key) is PutResult.CONFLICT:
        raise StorageError(f"blob '{key}' exists with other bytes (a 48-bit prefix collision): not overwritten")
    faults.checkpoint("resign.blob_written")
    committed = _switch(ctx, run_id, version_id, token, old_blob, key, staged.sha512, staged.size, cert.sha256,
                        old_certificate, subject)  # fmt: skip
    faults.checkpoint("resign.committed")
    # After the commit, outside the transaction: a crash here leaves an unreferenced blob, never a missing one.
    _delete_quietly(ctx, old_blob if committed else key)
    faults.checkpoint("resign.old_blob_deleted")
    src.unlink(missing_ok=True)
    dst.unlink(missing_ok=True)
    return "resigned" if committed else "skipped"


def _download(ctx: ServiceContext, key: str, path: Path) -> None:
    with ctx.blobs.open(key) as reader, path.open("wb") as out:
        shutil.copyfileobj(reader, out)


def _switch(ctx: ServiceContext, run_id: int, version_id: int, token: str, old_blob: str, new_blob: str,
            sha512: str, size: int, new_certificate: str, old_certificate: str, subject: str) -> bool:  # fmt: skip
    """Serve the new bytes, in one transaction that also counts them; False (nothing changed) unless the lease is
    still ours, the row still serves ``old_blob``, and the signing certificate is still the active one."""
    now = ctx.now()
    with ctx.db.transaction() as session:
        if not signs_now(session, new_certificate):
            # Rotated again meanwhile: give the version back; the next batch signs it with the new active one.
            leases.release_in(session, token, [version_id])
            return False
        switched = cast(CursorResult[Any], session.execute(
            update(PackageVersion)
            .where(PackageVersion.id == version_id, leases.owned_by(token),
                   PackageVersion.package_blob == old_blob, PackageVersion.status == VersionStatus.AVAILABLE.value)
            .values(package_blob=new_blob, package_sha512=sha512, package_size=size,
                    repo_cert_sha256=new_certificate, signature_kind=SignatureKindColumn.REPOSITORY.value,
                    lease_owner=None, lease_until=None)
            .execution_options(synchronize_session=False)
        ))  # fmt: skip
        if switched.rowcount != 1:
            return False
        feed_state.bump(session)  # the served bytes changed: every server process's cached blob ref is stale
        session.execute(update(ResignRun).where(ResignRun.id == run_id)
                        .values(resigned=ResignRun.resigned + 1).execution_options(synchronize_session=False))
        audit.record(session, SYSTEM, VERSION_RESIGN, subject, at=now,
                     before={"certificate": old_certificate, "blob": old_blob},
                     after={"certificate": new_certificate, "blob": new_blob, "sha512": sha512, "run": run_id})
    return True


def _fail(ctx: ServiceContext, run_id: int, version_id: int, token: str, reason: str) -> None:
    """Record that the run could not re-sign the version (once) and give the version back."""
    now = ctx.now()
    with ctx.db.transaction() as session:
        try:
            with session.begin_nested():
                session.add(ResignFailure(run_id=run_id, version_id=version_id, reason=reason[:4000], at=now))
        except IntegrityError:
            pass  # another worker (lease expired under a slow one) recorded it already
        else:
            session.execute(update(ResignRun).where(ResignRun.id == run_id)
                            .values(failed=ResignRun.failed + 1).execution_options(synchronize_session=False))
        leases.release_in(session, token, [version_id])
    _log.warning("re-signing failed", extra={"fields": {"run": run_id, "version_id": version_id, "reason": reason}})


def _delete_quietly(ctx: ServiceContext, key: str) -> None:
    try:
        ctx.blobs.delete(key)
    except (StorageError, OSError):  # an orphan is harmless (never served); log it for clean-up
        _log.exception("could not delete blob %s", key)


# --- the sweep ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepResult:
    """What the periodic sweep found: runs with work nobody holds (enqueue a batch), runs it completed."""

    to_continue: tuple[int, ...]
    completed: tuple[int, ...]


def sweep(ctx: ServiceContext) -> SweepResult:
    """Find the work a crashed worker left (expired leases) or a lost queue message dropped, and finished runs."""
    now = ctx.now()
    to_continue: list[int] = []
    completed: list[int] = []
    for run_id in running_runs(ctx):
        if finalize(ctx, run_id):
            completed.append(run_id)
            continue
        with ctx.db.reading() as session:
            run = session.get(ResignRun, run_id)
            if run is None:
                continue
            if session.scalar(select(func.count()).select_from(PackageVersion).where(*_eligible(run),
                                                                                     leases.free(now))):
                to_continue.append(run_id)
    return SweepResult(tuple(to_continue), tuple(completed))
