"""The validation job of the push pipeline (server.md §B.1-B.5): from ``validating`` to ``available`` or ``failed``.

A push that passed the checks of :mod:`.push_checks` is stored as ``validating`` (the pushed bytes under
``upload_blob``, nothing served) and a job message is enqueued after its commit. :func:`validate_version` is that
job; every step is safe to repeat after SIGKILL, and the database is the source of truth:

1. **lease** the version (:mod:`.leases`: one conditional UPDATE; a second delivery or a second worker finds it
   taken and does nothing);
2. **read** the pushed bytes back and check them against the SHA-512 the push recorded;
3. **reject** what nuget.org's ProcessSignature job rejects first: Zip64 (``PackageIsZip64``) and author
   countersignatures (``AuthorCounterSignaturesNotSupported``), with nuget.org's texts;
4. **strip** repository signatures that are not this feed's (§B.2 step 4): one whose ``nuget-v3-service-index-url``
   is not this feed's service index, or whose certificate is not listed in RepositorySignatures, is removed
   (``nuseal.sign.removal``); one that names this feed with a listed certificate is left to ``sign_for_feed``,
   which keeps it only when it is made with the active certificate and verifies, and replaces it otherwise;
5. **judge** the package (without any repository signature) again with the push's own code: verification under
   the feed policy (:func:`.push_checks.verify`) and the signer rules (:func:`.signing_rules.judge_in_session`);
6. **sign** with the active repository certificate (:func:`.repository_signing.sign_for_feed`: a countersignature
   on an author-signed package, a primary signature on an unsigned one; proof-of-receipt, the service index, the
   owners sorted case-insensitively, a timestamp from the certificate's TSA; the result re-verified by the
   library and the author signature checked byte for byte);
7. **publish**: the signed bytes go under a new content-addressed key (never served before the commit), the nuspec
   next to it; then ONE transaction judges the signer rules once more on what it reads (a certificate removed
   meanwhile is seen), checks that the signing certificate is still the active one (``signs_now``, the rotation
   fence) and flips the row to ``available`` only if the lease is still ours (fencing) and the row still
   ``validating``; the feed serial is bumped in the same transaction.

Refusals end ``failed`` with the findings (the status API shows them; the pushed bytes stay under ``upload_blob``
for the operator; a new push of the version replaces the row). Problems that are not the package's (the TSA or
the store down, no active certificate) release the lease and raise: the queue retries, and the sweep
(:func:`stuck_versions`, every minute and at every worker start) re-enqueues any ``validating`` row nobody holds,
so a lost message or a killed worker never loses a package. A crash before the commit leaves an unreferenced
blob (never served); after it, only an old lease that the commit already cleared.

Without repository signing (the feed's service index is not https, so NuGet would refuse a repository signature
naming it; see ``repository_signing.http_signing_warning``) steps 1-5 run and the pushed bytes, stripped of
foreign repository signatures, are published as they are.
"""

from __future__ import annotations

import enum
import hashlib
import io
import logging
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from nuseal.cms.parse import load_primary_signature
from nuseal.codes import IssueCode, NuCode
from nuseal.enums import SignatureKind
from nuseal.errors import NusealError, PackageFormatError, SignatureEntryError, SignatureFormatError, SigningError
from nuseal.findings import Finding, Severity
from nuseal.package.hashing import file_sha512_base64
from nuseal.server import faults
from nuseal.server.db.models import PackageVersion, SignatureKindColumn, VersionStatus
from nuseal.server.services import audit, feed_state, leases, push_checks, signing_rules
from nuseal.server.services.context import ServiceContext
from nuseal.server.services.errors import InvalidInputError
from nuseal.server.services.permissions import Operator, Principal
from nuseal.server.services.push_checks import ParsedPackage, PushRejected
from nuseal.server.services.repository_certificates import listed_certificates, signs_now
from nuseal.server.services.repository_keys import Keyring, RepositoryCert
from nuseal.server.services.repository_signing import RepositorySigningError, sign_for_feed
from nuseal.server.services.rotation import package_blob_key, signing_certificate
from nuseal.server.storage import BlobNotFoundError, PutResult, StorageError
from nuseal.sign.removal import remove_signature
from nuseal.sign.repository import read_signature
from nuseal.x509 import certs

_log = logging.getLogger(__name__)

VERSION_VALIDATED: Final = "package:version:validate"
SYSTEM: Final = Operator("system")


ZIP64: Final = "Zip64 packages are not supported."
AUTHOR_COUNTERSIGNATURES: Final = "Author countersignatures are not supported."
UPLOAD_GONE: Final = "The pushed package is no longer in the store: push it again."
UPLOAD_CHANGED: Final = "The stored upload does not match what was pushed: push it again."


class Outcome(str, enum.Enum):
    AVAILABLE = "available"
    FAILED = "failed"
    SKIPPED = "skipped"  # not ours to do (taken, finished, deleted): nothing done
    RETRY = "retry"  # the active certificate changed while signing: run again (nothing published)


@dataclass(frozen=True)
class FeedSigning:
    """What a worker signs with: its keyring (keys and timestampers) and the service index its signatures name."""

    keyring: Keyring
    service_index_url: str


def signing_possible(service_index_url: str) -> bool:
    """NuGet takes a repository signature only when its service index URL is https."""
    return service_index_url.startswith("https://")


def nuspec_key(lower_id: str, lower_version: str, sha256: str) -> str:
    return f"packages/{lower_id}/{lower_version}/{sha256[:12]}.nuspec"


def _error(code: IssueCode | NuCode, message: str) -> Finding:
    return Finding(code, Severity.ERROR, message)


class _Refused(Exception):
    """The package is refused with these findings (the version ends ``failed``)."""

    def __init__(self, findings: Sequence[Finding]) -> None:
        super().__init__("; ".join(f.message for f in findings))
        self.findings = tuple(findings)


# --- the job --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    version_id: int
    token: str
    upload_blob: str
    upload_sha512: str | None
    package_id: str
    lower_id: str
    lower_version: str
    subject: str
    owners: tuple[str, ...]
    principal: Principal | None  # None when the pushing account was deleted since


def validate_version(ctx: ServiceContext, version_id: int, *, signing: FeedSigning | None) -> Outcome:
    """Run the job on one version (see the module docstring); ``signing`` None publishes without repository
    signing (a feed whose service index is not https, or a unit test). Raises (after giving the lease back) when a
    service it needs fails: the caller retries."""
    token = leases.new_token()
    if not leases.take_version(ctx, version_id, token, PackageVersion.status == VersionStatus.VALIDATING.value):
        return Outcome.SKIPPED
    try:
        job = _load(ctx, version_id, token)
        if job is None:
            return Outcome.SKIPPED
        faults.checkpoint("validate.leased")
        with tempfile.TemporaryDirectory(prefix="nuseal-validate-", dir=_scratch(ctx)) as folder:
            return _run(ctx, job, Path(folder), signing)
    except BaseException:
        try:
            leases.release(ctx, token, [version_id])
        except Exception:  # the database is what failed: the lease expires on its own
            _log.exception("could not release the lease on version %s", version_id)
        raise


def _scratch(ctx: ServiceContext) -> Path:
    folder = ctx.settings.data_dir / "tmp"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _load(ctx: ServiceContext, version_id: int, token: str) -> _Job | None:
    with ctx.db.reading() as session:
        row = session.get(PackageVersion, version_id)
        if (row is None or row.lease_owner != token or row.status != VersionStatus.VALIDATING.value
                or row.upload_blob is None):
            return None
        registration = row.registration
        principal = None
        if row.pushed_by_id is not None and row.pushed_for_id is not None:
            principal = Principal(row.pushed_by_id, row.pushed_for_id, "validation")
        return _Job(version_id, token, row.upload_blob, row.upload_sha512, registration.package_id,
                    registration.lower_id, row.lower_version, f"{registration.package_id}/{row.version}",
                    tuple(o.name for o in registration.owners), principal)  # fmt: skip


def _run(ctx: ServiceContext, job: _Job, folder: Path, signing: FeedSigning | None) -> Outcome:
    pushed = folder / "pushed.nupkg"
    try:
        _download(ctx, job.upload_blob, pushed, job.upload_sha512)
        parsed, verification, to_sign, stripped = _examine(ctx, job, pushed, folder, signing)
    except _Refused as refused:
        return _fail(ctx, job, refused.findings)
    cert: RepositoryCert | None = None
    if signing is not None and signing_possible(signing.service_index_url):
        cert = signing_certificate(ctx, signing.keyring, signing.service_index_url)
    faults.checkpoint("validate.judged")
    served = to_sign
    action = "none"
    if cert is not None:
        assert signing is not None
        served = folder / "signed.nupkg"
        try:
            done = sign_for_feed(to_sign, served, owners=job.owners, service_index_url=signing.service_index_url,
                                 repo_cert=cert, timestamper=signing.keyring.timestamper(cert), now=ctx.now())
        except RepositorySigningError as exc:
            return _fail(ctx, job, exc.findings or (_error(IssueCode.REPOSITORY_SIGNING_FAILED, str(exc)),))
        except SigningError as exc:
            if exc.code not in (NuCode.NU3006, NuCode.NU3039):  # not the package's fault: retried
                raise
            return _fail(ctx, job, (_error(exc.code, exc.message),))
        action = done.action.value
        faults.checkpoint("validate.signed")
    return _publish(ctx, job, _Judged(parsed, verification), served, cert, stripped, action)


def _download(ctx: ServiceContext, key: str, path: Path, sha512: str | None) -> None:
    try:
        with ctx.blobs.open(key) as reader, path.open("wb") as out:
            shutil.copyfileobj(reader, out)
    except BlobNotFoundError:
        raise _Refused([_error(IssueCode.PACKAGE_STORAGE_FAILED, UPLOAD_GONE)]) from None
    if sha512 is not None and file_sha512_base64(path) != sha512:
        raise _Refused([_error(IssueCode.PACKAGE_STORAGE_FAILED, UPLOAD_CHANGED)])


def _parse(path: Path) -> ParsedPackage:
    try:
        return push_checks.parse(path)
    except PushRejected as exc:
        raise _Refused(exc.findings) from None


def _repository_signer(path: Path) -> tuple[str | None, str | None]:
    """The (service index URL, certificate SHA-256) of the package's repository signature (primary or the one
    countersignature); ``(None, None)`` when it cannot be read (stripped like a foreign one)."""
    try:
        raw = read_signature(path)
        primary = load_primary_signature(raw) if raw is not None else None
        if primary is None:
            return None, None
        signer = primary if primary.kind is SignatureKind.REPOSITORY else primary.countersignature()
    except (PackageFormatError, SignatureEntryError, SignatureFormatError):
        return None, None
    if signer is None:
        return None, None
    certificate = signer.signer_certificate
    sha256 = certs.fingerprint(certificate).lower() if certificate is not None else None
    return signer.service_index_url, sha256


def _examine(ctx: ServiceContext, job: _Job, pushed: Path, folder: Path, signing: FeedSigning | None
             ) -> tuple[ParsedPackage, push_checks.Verification, Path, tuple[str, ...]]:  # fmt: skip
    """Steps 3-5: the package as judged and its verification, the file to sign, the repository signatures
    stripped."""
    parsed = _parse(pushed)
    refusals: list[Finding] = []
    if parsed.zip64:
        refusals.append(_error(IssueCode.PACKAGE_IS_ZIP64, ZIP64))
    if parsed.signature.author_countersignature:
        refusals.append(_error(IssueCode.AUTHOR_COUNTER_SIGNATURES_NOT_SUPPORTED, AUTHOR_COUNTERSIGNATURES))
    if refusals:
        raise _Refused(refusals)
    to_sign, judged = pushed, pushed
    stripped: tuple[str, ...] = ()
    if parsed.repository_primary is not None or parsed.repository_countersignature is not None:
        url, sha256 = _repository_signer(pushed)
        with ctx.db.reading() as session:
            listed = {row.sha256 for row in listed_certificates(session)}
        ours = signing is not None and url == signing.service_index_url and sha256 in listed
        judged = folder / "without-repository-signatures.nupkg"
        try:
            remove_signature(pushed, repository_only=True, dst=judged, now=ctx.now())
        except (NusealError, OSError) as exc:
            raise _Refused([_error(IssueCode.REPOSITORY_SIGNING_FAILED,
                                   f"The package's repository signature cannot be removed: {exc}")]) from None
        if not judged.exists():  # nothing was removable (an unreadable countersignature): judged as pushed
            judged = pushed
        if not ours:
            to_sign = judged
            stripped = (f"repository signature by {sha256 or 'an unknown certificate'} for "
                        f"{url or 'no service index'}",)
        parsed = _parse(judged)
    return parsed, _judge(ctx, job, parsed), to_sign, stripped


def _judge(ctx: ServiceContext, job: _Job, parsed: ParsedPackage) -> push_checks.Verification:
    """The feed policy and the signer rules, with the push's own code (verification, then the judgement)."""
    verification = push_checks.verify(ctx, parsed)
    with ctx.db.reading() as session:
        errors = _judgement_errors(session, job, parsed, verification)
    if errors:
        raise _Refused(errors)
    return verification


def _judgement_errors(session: Session, job: _Job, parsed: ParsedPackage,
                      verification: push_checks.Verification | None, *, lock: bool = False) -> tuple[Finding, ...]:
    if job.principal is None:
        return (_error(IssueCode.VERIFICATION_FAILED, "The account that pushed the package no longer exists."),)
    verdict = verification.verdict if verification is not None else None
    try:
        judgement, _ = signing_rules.judge_in_session(session, job.principal, job.package_id, parsed.signature,
                                                      verdict, lock=lock)  # fmt: skip
    except InvalidInputError as exc:
        return (_error(IssueCode.VERIFICATION_FAILED, exc.message),)
    return judgement.errors


# --- publish and fail -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Judged:
    parsed: ParsedPackage
    verification: push_checks.Verification


def _publish(ctx: ServiceContext, job: _Job, judged: _Judged, served: Path, cert: RepositoryCert | None,
             stripped: tuple[str, ...], action: str) -> Outcome:  # fmt: skip
    with served.open("rb") as data:
        staged = ctx.blobs.stage(data)
    key = package_blob_key(job.lower_id, job.lower_version, staged.sha256)
    if ctx.blobs.publish(staged, key) is PutResult.CONFLICT:
        raise StorageError(f"blob '{key}' exists with other bytes (a 48-bit prefix collision): not overwritten")
    nuspec = judged.parsed.nuspec.data
    manifest_key = nuspec_key(job.lower_id, job.lower_version, hashlib.sha256(nuspec).hexdigest())
    if ctx.blobs.put(manifest_key, io.BytesIO(nuspec)) is PutResult.CONFLICT:
        raise StorageError(f"blob '{manifest_key}' exists with other bytes: not overwritten")
    faults.checkpoint("validate.blob_written")
    outcome = _commit(ctx, job, judged, key, manifest_key, staged.sha512, staged.size, cert, stripped, action)
    if outcome is not Outcome.AVAILABLE and key != job.upload_blob and not _referenced(ctx, key):
        _delete_quietly(ctx, key)  # the version was not ours to publish after all
    faults.checkpoint("validate.committed")
    return outcome


def _commit(ctx: ServiceContext, job: _Job, judged: _Judged, key: str, manifest_key: str, sha512: str,
            size: int, cert: RepositoryCert | None, stripped: tuple[str, ...], action: str) -> Outcome:  # fmt: skip
    now = ctx.now()
    with ctx.db.transaction() as session:
        if cert is not None and not signs_now(session, cert.sha256):
            leases.release_in(session, job.token, [job.version_id])  # rotated meanwhile: sign again
            return Outcome.RETRY
        push_checks.find_registration(session, job.lower_id, lock=True)
        # The signer rules once more, on what this transaction reads (the verdict is the one computed before:
        # the package's bytes have not changed); a certificate unregistered meanwhile is seen here.
        errors = _judgement_errors(session, job, judged.parsed, judged.verification, lock=True)
        if errors:
            return _fail_in(session, job, errors, now)
        kind = SignatureKindColumn.REPOSITORY.value if cert is not None else (
            SignatureKindColumn.AUTHOR.value if judged.parsed.signature.primary is signing_rules.PrimarySignature.AUTHOR
            else SignatureKindColumn.UNSIGNED.value)  # fmt: skip
        switched = cast(CursorResult[Any], session.execute(
            update(PackageVersion)
            .where(PackageVersion.id == job.version_id, leases.owned_by(job.token),
                   PackageVersion.status == VersionStatus.VALIDATING.value)
            .values(status=VersionStatus.AVAILABLE.value, package_blob=key, nuspec_blob=manifest_key,
                    package_sha512=sha512, package_size=size, published_at=now, signature_kind=kind,
                    repo_cert_sha256=cert.sha256 if cert is not None else None,
                    lease_owner=None, lease_until=None)
            .execution_options(synchronize_session=False)
        ))  # fmt: skip
        if switched.rowcount != 1:
            return Outcome.SKIPPED
        feed_state.bump(session)
        audit.record(session, SYSTEM, VERSION_VALIDATED, job.subject, at=now, after={
            "status": VersionStatus.AVAILABLE.value, "blob": key, "sha512": sha512, "signature": action,
            "certificate": cert.sha256 if cert is not None else None, "stripped": list(stripped),
        })  # fmt: skip
    _log.info("validated", extra={"fields": {"package": job.subject, "outcome": "available", "signature": action}})
    return Outcome.AVAILABLE


def _fail(ctx: ServiceContext, job: _Job, findings: Sequence[Finding]) -> Outcome:
    with ctx.db.transaction() as session:
        return _fail_in(session, job, findings, ctx.now())


def _fail_in(session: Session, job: _Job, findings: Sequence[Finding], now: Any) -> Outcome:
    row = session.get(PackageVersion, job.version_id)
    if row is None or row.lease_owner != job.token or row.status != VersionStatus.VALIDATING.value:
        return Outcome.SKIPPED
    row.status = VersionStatus.FAILED.value
    row.findings = [*(row.findings or []), *(f.to_dict() for f in findings)]
    row.lease_owner, row.lease_until = None, None
    audit.record(session, SYSTEM, VERSION_VALIDATED, job.subject, at=now, after={
        "status": VersionStatus.FAILED.value, "findings": [f.code.value for f in findings],
    })  # fmt: skip
    _log.info("validated", extra={"fields": {"package": job.subject, "outcome": "failed",
                                             "findings": [f.code.value for f in findings]}})  # fmt: skip
    return Outcome.FAILED


def _referenced(ctx: ServiceContext, key: str) -> bool:
    """Whether a version serves ``key``: an unsigned feed publishes the pushed bytes under a content-addressed key,
    so a job that lost its lease may have computed the very key the new lease holder published."""
    with ctx.db.reading() as session:
        return session.scalar(select(PackageVersion.id).where(PackageVersion.package_blob == key).limit(1)) is not None


def _delete_quietly(ctx: ServiceContext, key: str) -> None:
    try:
        ctx.blobs.delete(key)
    except (StorageError, OSError):  # an unreferenced blob is never served; it is only logged
        _log.exception("could not delete blob %s", key)


# --- the sweep ------------------------------------------------------------------------------------------------


def stuck_versions(ctx: ServiceContext, limit: int = 1000) -> list[int]:
    """``validating`` versions nobody holds a lease on (a lost message, a killed worker): to enqueue again."""
    now = ctx.now()
    with ctx.db.reading() as session:
        return list(session.scalars(
            select(PackageVersion.id)
            .where(PackageVersion.status == VersionStatus.VALIDATING.value, leases.free(now))
            .order_by(PackageVersion.id).limit(limit)
        ))  # fmt: skip
