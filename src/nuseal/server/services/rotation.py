"""Rotation and revocation of repository certificates: re-signing every served package that carries one
(server.md §B.8).

- ``retire``: the certificate stops signing at once but stays published; every served package carrying it is
  re-signed with the active certificate; only when none is left is it removed from RepositorySignatures, so
  clients never see a package whose repository certificate is not listed.
- ``revoke`` (key compromise): the certificate is unpublished at once (clients stop trusting its signatures),
  then its packages are re-signed as fast as the workers go.

A run (``resign_runs``) is worked through in batches (:func:`process_batch`) by any number of workers: each batch
takes a lease on up to ``resign_batch_size`` versions (:mod:`nuseal.server.services.leases`: one conditional UPDATE,
``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so no two workers hold the same version. The versions of a batch are
signed at once on the keyring's threads (their TSA round trips and blob transfers overlap): read the served bytes,
replace only the repository signature (``sign_for_feed``: the author signature is kept), store the new bytes under a
new content-addressed key. Then one transaction switches every row of the batch, counts them and writes one audit
event per package, each row *only if* the lease is still ours, the row still serves the bytes we started from and the
signing certificate is still the active one (so a version is never re-signed twice over, whatever crashes or
duplicate deliveries happen); the old blobs are deleted after it. Every step is safe to repeat after SIGKILL: a crash
before the switch leaves unreferenced blobs (never served) and leases that expire; a crash after it leaves old blobs
to delete later. A version the run cannot re-sign is recorded with the reason (in the same transaction) and keeps its
old signature (a retired certificate then stays published); a new ``retire``/``revoke`` of the certificate starts a
new run that tries it again. An outage in the middle of a batch (TSA, storage) switches what was done, gives the
rest back at once and raises, so the task is retried.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final, cast

from sqlalchemy import Table, bindparam, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nuseal.codes import NuCode
from nuseal.errors import NusealError, SigningError
from nuseal.server import faults
from nuseal.server.db.models import (
    Account,
    AuditEvent,
    PackageOwner,
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
from nuseal.server.storage import BlobNotFoundError, PutResult, StorageError, digests_of

_log = logging.getLogger(__name__)

VERSION_RESIGN: Final = "package:version:resign"
RUN_COMPLETE: Final = "repository:resign:complete"
SYSTEM: Final = Operator("system")
#: Signing errors that are about the package itself (zip64, too many entries): recorded as that package's failure.
_PACKAGE_SIGNING_CODES: Final = frozenset({NuCode.NU3006, NuCode.NU3039})


class NoActiveCertificateError(NusealError):
    """There is no active repository certificate to re-sign with (activate one)."""


def package_blob_key(lower_id: str, lower_version: str, sha256: str) -> str:
    """Where a package's served bytes live: content-addressed, so new bytes never overwrite served ones. The full
    SHA-256 (keys written before 2026-12-02 carry 12 hex digits and stay valid: each version's key is in the
    database): only identical bytes can meet at a key, so the S3 store writes a re-signed package without a HEAD
    first (docs/decisions.md)."""
    return f"packages/{lower_id}/{lower_version}/{sha256}.nupkg"


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


@dataclass(frozen=True)
class _Job:
    """One leased version as the batch read it: what to sign and what the switch must still find."""

    version_id: int
    old_blob: str
    size: int | None
    lower_id: str
    lower_version: str
    subject: str  # "Id/Version", for the audit event
    owners: tuple[str, ...]


@dataclass(frozen=True)
class _Signed:
    job: _Job
    key: str  # the new blob, already published
    sha512: str
    size: int


@dataclass(frozen=True)
class _Failed:
    job: _Job
    reason: str


_Outcome = _Signed | _Failed


def _load_jobs(ctx: ServiceContext, version_ids: Sequence[int], token: str, old_certificate: str) -> list[_Job]:
    """The leased versions still to re-sign, with their owners: two queries for the whole batch."""
    if not version_ids:
        return []
    with ctx.db.reading() as session:
        rows = session.execute(
            select(PackageVersion.id, PackageVersion.registration_id, PackageVersion.package_blob,
                   PackageVersion.package_size, PackageVersion.version, PackageVersion.lower_version,
                   PackageRegistration.package_id, PackageRegistration.lower_id)
            .join(PackageRegistration, PackageRegistration.id == PackageVersion.registration_id)
            .where(PackageVersion.id.in_(list(version_ids)), leases.owned_by(token),
                   PackageVersion.status == VersionStatus.AVAILABLE.value,
                   PackageVersion.repo_cert_sha256 == old_certificate, PackageVersion.package_blob.is_not(None))
            .order_by(PackageVersion.id)
        ).all()  # fmt: skip
        registrations = {row.registration_id for row in rows}
        owners: dict[int, list[str]] = {}
        if registrations:
            for registration_id, name in session.execute(
                select(PackageOwner.registration_id, Account.name)
                .join(Account, Account.id == PackageOwner.account_id)
                .where(PackageOwner.registration_id.in_(registrations))
            ):  # fmt: skip
                owners.setdefault(int(registration_id), []).append(str(name))
    return [_Job(int(r.id), str(r.package_blob), r.package_size, str(r.lower_id), str(r.lower_version),
                 f"{r.package_id}/{r.version}", tuple(owners.get(int(r.registration_id), ())))
            for r in rows]  # fmt: skip


def process_batch(
    ctx: ServiceContext, keyring: Keyring, run_id: int, *, service_index_url: str, limit: int | None = None
) -> BatchResult:
    """Re-sign one batch of the run: claim, re-sign each version, switch them all in one transaction, complete the
    run when nothing is left.

    The versions of a batch are signed by the keyring's threads at once (their timestamp requests, downloads and
    uploads overlap), each new blob is published before the commit, and one transaction then switches every row
    that is still ours (one conditional UPDATE and one audit event per package) and records the failures; the old
    blobs are deleted after it. A crash anywhere loses nothing: before the commit, the leases expire and the
    versions are signed again (the blobs already written are orphans, never served); after it, only old blobs are
    left to delete.

    Raises (after switching what was done and giving the other leases back) when this process cannot sign or a
    service is unreachable: the task is retried and no package is marked failed for it.
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
    error: BaseException | None = None
    committed: set[int] = set()
    counts = {"resigned": 0, "failed": 0}
    try:
        jobs = _load_jobs(ctx, claimed, token, certificate_sha256)
        outcomes, error = _sign_all(ctx, keyring, cert, jobs, service_index_url)
        if outcomes:
            committed = _switch_batch(ctx, run_id, token, outcomes, cert.sha256, certificate_sha256)
            faults.checkpoint("resign.committed")
            # After the commit, outside the transaction: a crash here leaves unreferenced blobs, never missing ones.
            _delete_all(ctx, [o.job.old_blob if o.job.version_id in committed else o.key
                                       for o in outcomes if isinstance(o, _Signed)])  # fmt: skip
            faults.checkpoint("resign.old_blob_deleted")
            counts["resigned"] = sum(1 for o in outcomes if isinstance(o, _Signed) and o.job.version_id in committed)
            counts["failed"] = sum(1 for o in outcomes if isinstance(o, _Failed) and o.job.version_id in committed)
    finally:
        # Whatever this batch did not switch or record goes back at once (the switch released its own).
        leases.release(ctx, token, [i for i in claimed if i not in committed])
    if error is not None:
        raise error
    skipped = len(claimed) - counts["resigned"] - counts["failed"]
    with ctx.db.reading() as session:
        run = session.get(ResignRun, run_id)
        remaining = _remaining(session, run) if run is not None else 0
    completed = remaining == 0 and finalize(ctx, run_id)
    return BatchResult(len(claimed), counts["resigned"], counts["failed"], skipped, remaining, completed)


def _sign_all(ctx: ServiceContext, keyring: Keyring, cert: RepositoryCert, jobs: Sequence[_Job],
              service_index_url: str) -> tuple[list[_Outcome], BaseException | None]:  # fmt: skip
    """Sign and publish every job on the keyring's threads; the outcomes, and the first error that is not a
    package's own (the jobs it stopped are left out: their leases are given back).

    The new blobs are written without waiting for the disk (``put_new(durable=False)``) and made durable here
    before returning, so before the commit that serves them: each blob's ``sync`` is handed to the sync threads as
    soon as its package is signed, so the waits for the disk overlap each other and the signing of the rest of the
    batch instead of following it one after the other."""
    outcomes: list[_Outcome] = []
    error: BaseException | None = None
    syncs: list[Future[None]] = []
    with tempfile.TemporaryDirectory(prefix="nuseal-resign-", dir=_scratch_dir(jobs)) as folder:
        if keyring.shareable(cert):
            pool = keyring.executor()
            futures = [pool.submit(_sign_one, ctx, keyring, cert, job, service_index_url, Path(folder))
                       for job in jobs]  # fmt: skip
        else:  # a token session belongs to the thread that opened it: sign here, one after the other
            futures = [_run_here(_sign_one, ctx, keyring, cert, job, service_index_url, Path(folder)) for job in jobs]
        for future in futures:
            try:
                outcome = future.result()
            except BaseException as exc:  # a service is down or this process cannot sign: raised after the commit
                error = error or exc
                continue
            outcomes.append(outcome)
            if isinstance(outcome, _Signed):
                syncs.append(_sync_threads().submit(ctx.blobs.sync, [outcome.key]))
    failure: BaseException | None = None
    for pending in syncs:  # every one is waited for: nothing is still writing when the batch goes on
        try:
            pending.result()
        except BaseException as exc:  # StorageError, OSError: the blob is not durable
            failure = failure or exc
    if failure is not None:
        # Not durable: switch none of them (orphans, never served); their leases go back and the task is retried.
        return [o for o in outcomes if isinstance(o, _Failed)], error or failure
    faults.checkpoint("resign.synced")
    return outcomes, error


#: Threads that make new blobs durable (they wait on the disk, holding no GIL): enough to keep a batch's fsyncs
#: overlapping each other; one pool per process, started on first use and kept.
SYNC_THREADS: Final = 8
_sync_pool: list[ThreadPoolExecutor] = []
_sync_pool_lock = threading.Lock()


def _sync_threads() -> ThreadPoolExecutor:
    with _sync_pool_lock:
        if not _sync_pool:
            _sync_pool.append(ThreadPoolExecutor(SYNC_THREADS, thread_name_prefix="nuseal-sync"))
        return _sync_pool[0]


def _forget_sync_threads() -> None:
    """In a forked child: the parent's sync threads do not exist there, so a new pool is started on first use."""
    global _sync_pool_lock
    _sync_pool.clear()
    _sync_pool_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_sync_threads)


def _run_here(function: Callable[..., _Outcome], *args: Any) -> Future[_Outcome]:
    done: Future[_Outcome] = Future()
    try:
        done.set_result(function(*args))
    except BaseException as exc:
        done.set_exception(exc)
    return done


#: Packages up to this size are re-signed in a memory-backed folder when there is one (no disk writes at all). Each
#: signing thread holds at most two copies at a time, so this stays small even where /dev/shm is (64 MB in a container).
SMALL_PACKAGE_BYTES: Final = 1024 * 1024
_SHM: Final = Path("/dev/shm")


def _scratch_dir(jobs: Sequence[_Job]) -> str | None:
    """``/dev/shm`` for a batch of small packages (the copies are throw-away: the blob store is the durable one),
    else the default temporary folder."""
    small = all(job.size is not None and job.size <= SMALL_PACKAGE_BYTES for job in jobs)
    return str(_SHM) if small and _SHM.is_dir() and os.access(_SHM, os.W_OK) else None


def _sign_one(ctx: ServiceContext, keyring: Keyring, cert: RepositoryCert, job: _Job, service_index_url: str,
              folder: Path) -> _Outcome:  # fmt: skip
    dst = folder / f"{job.version_id}.signed.nupkg"
    copy: Path | None = None
    try:
        served = ctx.blobs.local_path(job.old_blob)
        if served is not None:
            # Signed straight from the served file, which is only read (a blob is never written after it is
            # published): no copy to make and delete. A blob deleted before or while it is read is a missing blob,
            # as when it was downloaded first.
            src = served
            try:
                _sign_file(src, dst, job, cert, keyring, service_index_url, ctx.now())
            except FileNotFoundError:
                if src.is_file():
                    raise  # something else is missing (the scratch folder): not this package's failure
                raise BlobNotFoundError(f"no blob '{job.old_blob}' in {ctx.blobs.describe()}") from None  # as open()
        else:
            src = copy = folder / f"{job.version_id}.nupkg"
            _download(ctx, job.old_blob, copy)
            _sign_file(src, dst, job, cert, keyring, service_index_url, ctx.now())
    except (RepositorySigningError, BlobNotFoundError) as exc:
        return _Failed(job, str(exc))
    except SigningError as exc:
        if exc.code not in _PACKAGE_SIGNING_CODES:
            raise
        return _Failed(job, str(exc))
    finally:
        if copy is not None:  # never the served file
            copy.unlink(missing_ok=True)
    faults.checkpoint("resign.signed")
    try:
        if dst.stat().st_size <= SMALL_PACKAGE_BYTES:
            # In memory: hashed once here, written straight to its content-addressed key (no staged copy to copy
            # and delete: two S3 requests instead of four).
            data = dst.read_bytes()
            staged = digests_of(data)
            key = package_blob_key(job.lower_id, job.lower_version, staged.sha256)
            result = ctx.blobs.put_new(key, data, staged, durable=False)  # durable with the batch: _sign_all
        else:
            with dst.open("rb") as stream:
                staged = ctx.blobs.stage(stream)
            key = package_blob_key(job.lower_id, job.lower_version, staged.sha256)
            result = ctx.blobs.publish(staged, key)
    finally:
        dst.unlink(missing_ok=True)
    if result is PutResult.CONFLICT:
        raise StorageError(f"blob '{key}' exists with other bytes (a 48-bit prefix collision): not overwritten")
    faults.checkpoint("resign.blob_written")
    return _Signed(job, key, staged.sha512, staged.size)


def _sign_file(src: Path, dst: Path, job: _Job, cert: RepositoryCert, keyring: Keyring, service_index_url: str,
               now: datetime) -> None:  # fmt: skip
    sign_for_feed(src, dst, owners=job.owners, service_index_url=service_index_url, repo_cert=cert,
                  timestamper=keyring.timestamper(cert), now=now)  # fmt: skip


def _download(ctx: ServiceContext, key: str, path: Path) -> None:
    with ctx.blobs.open(key) as reader, path.open("wb") as out:
        shutil.copyfileobj(reader, out)


#: The switch of one version, run for the whole batch at once (executemany); the transaction read and locked the
#: rows first, and the WHERE clause repeats the lease (fencing), so nothing changes for a version no longer ours.
_VERSIONS = cast(Table, PackageVersion.__table__)
_AUDIT_EVENTS = cast(Table, AuditEvent.__table__)
_SWITCH_ONE = (
    update(_VERSIONS)
    .where(_VERSIONS.c.id == bindparam("version_id"), _VERSIONS.c.lease_owner == bindparam("token"),
           _VERSIONS.c.package_blob == bindparam("old_blob"))
    .values(package_blob=bindparam("new_blob"), package_sha512=bindparam("sha512"), package_size=bindparam("size"),
            repo_cert_sha256=bindparam("certificate"), signature_kind=SignatureKindColumn.REPOSITORY.value,
            lease_owner=None, lease_until=None)
)  # fmt: skip


def _switch_batch(ctx: ServiceContext, run_id: int, token: str, outcomes: Sequence[_Outcome], new_certificate: str,
                  old_certificate: str) -> set[int]:  # fmt: skip
    """In one transaction: serve the new bytes of every signed version that is still ours (lease held, row still
    serving the blob we started from, still available, signing certificate still the active one), record the
    failures, count both, one audit event per package; the ids of the versions switched or recorded. Versions not
    switched change nothing."""
    now = ctx.now()
    done: set[int] = set()
    with ctx.db.transaction() as session:
        signed = [o for o in outcomes if isinstance(o, _Signed)]
        if signed and not signs_now(session, new_certificate):
            # Rotated again meanwhile: give the versions back; the next batch signs them with the new active one.
            leases.release_in(session, token, [o.job.version_id for o in signed])
            signed = []
        if signed:
            # Lock the rows (PostgreSQL; SQLite's write transaction is exclusive) and keep those still ours.
            current = {int(i): blob for i, blob in session.execute(
                select(PackageVersion.id, PackageVersion.package_blob)
                .where(PackageVersion.id.in_([o.job.version_id for o in signed]), leases.owned_by(token),
                       PackageVersion.status == VersionStatus.AVAILABLE.value)
                .with_for_update()
            )}  # fmt: skip
            signed = [o for o in signed if current.get(o.job.version_id) == o.job.old_blob]
        if signed:
            session.connection().execute(_SWITCH_ONE, [
                {"version_id": o.job.version_id, "token": token, "old_blob": o.job.old_blob, "new_blob": o.key,
                 "sha512": o.sha512, "size": o.size, "certificate": new_certificate} for o in signed
            ])  # fmt: skip
            # audit.record's row, written for the whole batch in one statement (one event per package).
            session.connection().execute(insert(_AUDIT_EVENTS), [
                {"at": now, "actor": SYSTEM.label, "action": VERSION_RESIGN, "subject": o.job.subject,
                 "before": {"certificate": old_certificate, "blob": o.job.old_blob},
                 "after": {"certificate": new_certificate, "blob": o.key, "sha512": o.sha512, "run": run_id}}
                for o in signed
            ])  # fmt: skip
            feed_state.bump(session)  # the served bytes changed: every server process's cached blob ref is stale
            done.update(o.job.version_id for o in signed)
        failed = 0
        for outcome in outcomes:
            if isinstance(outcome, _Failed) and _record_failure(session, run_id, token, outcome, now):
                done.add(outcome.job.version_id)
                failed += 1
        resigned = len(done) - failed
        if resigned or failed:
            session.execute(update(ResignRun).where(ResignRun.id == run_id)
                            .values(resigned=ResignRun.resigned + resigned, failed=ResignRun.failed + failed)
                            .execution_options(synchronize_session=False))  # fmt: skip
    return done


def _record_failure(session: Session, run_id: int, token: str, failed: _Failed, now: datetime) -> bool:
    """Record (once) that the run could not re-sign the version and give it back; False when the lease was lost or
    another worker recorded it already."""
    job = failed.job
    held = session.scalar(select(func.count()).select_from(PackageVersion)
                          .where(PackageVersion.id == job.version_id, leases.owned_by(token)))  # fmt: skip
    if not held:
        return False
    leases.release_in(session, token, [job.version_id])
    try:
        with session.begin_nested():
            session.add(ResignFailure(run_id=run_id, version_id=job.version_id, reason=failed.reason[:4000], at=now))
    except IntegrityError:
        return False  # another worker (lease expired under a slow one) recorded it already
    _log.warning("re-signing failed", extra={"fields": {"run": run_id, "version_id": job.version_id,
                                                        "reason": failed.reason}})  # fmt: skip
    return True


def _switch(ctx: ServiceContext, run_id: int, version_id: int, token: str, old_blob: str, new_blob: str,
            sha512: str, size: int, new_certificate: str, old_certificate: str, subject: str) -> bool:  # fmt: skip
    """Switch one version (:func:`_switch_batch` for a batch of one); True when it now serves ``new_blob``."""
    lower_id, _, rest = new_blob.removeprefix("packages/").partition("/")
    job = _Job(version_id, old_blob, None, lower_id, rest.partition("/")[0], subject, ())
    done = _switch_batch(ctx, run_id, token, [_Signed(job, new_blob, sha512, size)], new_certificate,
                         old_certificate)  # fmt: skip
    return version_id in done


def _delete_all(ctx: ServiceContext, keys: Sequence[str]) -> None:
    """Delete the batch's old (or unused) blobs at once (S3: one DeleteObjects request)."""
    try:
        ctx.blobs.discard_many(keys)
    except (StorageError, OSError):  # an orphan is harmless (never served); log it for clean-up
        _log.exception("could not delete the %d blobs a re-signing batch left, first %s", len(keys),
                       keys[0] if keys else "-")  # fmt: skip


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
