"""Pushing a package (``PackagePublish/2.0.0`` ``PUT``): the checks, then persist and publish, as named steps.

    check (push_checks: parse -> package checks -> access -> signing fast stage -> verify -> signing full stage)
      -> persist (the signer rules judged again inside its transaction) -> publish

:func:`push_package` runs them in order. The checks are :func:`.push_checks.check_push`, the same call the dry run
(``POST /api/v1/packages/check``) makes; the first refusal stops the push with :class:`PushRejected` (400, carrying
:class:`~nuseal.findings.Finding` objects), :class:`~.errors.ConflictError` (409) or
:class:`~.permissions.AccessDenied` (the API answers 401 on push, as nuget.org does). Nothing of the package is
written before every check has passed: the uploaded file is a local temporary file (the API layer received it,
counting bytes), so a refused package's bytes never reach the blob store.

- **persist**: the upload is staged under ``incoming/`` and one transaction share-locks the registration and the
  accounts whose certificates count (:mod:`.row_locks`), authorizes and checks conflicts again, judges the signer
  rules once more on what it reads (:func:`.signing_rules.judge_in_session`: a certificate removed while the push
  was being verified is seen here, and a removal arriving now waits for this commit), then writes the
  registration (new id), its first owner, the version row (status ``validating``, metadata, warnings) and the
  audit event ``package:version:push``. A judgement that fails here refuses the push like the checks do.
- **publish** (:func:`complete`): the staged blob is published under its final content-addressed key and the
  nuspec next to it, then a second transaction points the row at them, makes it ``available`` and bumps the
  feed serial. Until that commit the version is not served (only ``available`` rows with a blob key are).

Refused pushes (decision, docs/server.md "Refused pushes"): a refusal by the signing steps (fast stage,
verification, full stage) of a push the key's account may make is recorded as a ``failed`` version row carrying
the findings, with no blob (the refused bytes are never stored; only their size and SHA-512 are kept), and the
audit event ``package:version:refuse``. The status API shows it; the feed never serves it; a later push of the
same version replaces it (as any failed version). A new id's registration is created for it, owned by the
account pushed for, as for any push. Refusals before that (not a package, nuget.org's package checks, access,
conflict) record nothing.

Crash safety: a process dying between persist and publish leaves a ``validating`` row whose upload still sits in
``incoming/`` (or already under its final key, which no row points at: an orphan is never served).
:func:`resume_interrupted` (run when ``nuseal serve`` starts, for rows older than a grace period) finishes such
pushes from what the store holds, or marks them ``failed`` when the upload is gone. Until repository signing
exists the push is validated synchronously, so a 201 push is ``available`` at once; the asynchronous pipeline
of issue 11 will take over ``publish`` as its job and leave the 201 at ``validating`` (its job can judge with
:func:`.signing_rules.judge_in_session` in its own transaction).
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, Final, cast

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nuseal.codes import IssueCode
from nuseal.errors import NusealError
from nuseal.findings import Finding, Severity
from nuseal.package.nuspec import Manifest, nuspec_in_archive
from nuseal.server.db.models import Account, PackageRegistration, PackageVersion, VersionStatus
from nuseal.server.services import audit, feed_state, packages, signing_rules
from nuseal.server.services.context import ServiceContext
from nuseal.server.services.errors import ConflictError, DomainError
from nuseal.server.services.permissions import AccessDenied, Principal
from nuseal.server.services.push_checks import (
    ParsedPackage,
    PushCheck,
    PushRejected,
    Stage,
    Verification,
    authorize_push,
    check_push,
    conflict_message,
    is_conflict,
)
from nuseal.server.storage import PutResult, StagedBlob, StorageError
from nuseal.server.storage.base import HashingReader

_log = logging.getLogger(__name__)

VERSION_PUSH: Final = "package:version:push"
VERSION_REFUSE: Final = "package:version:refuse"
#: A ``validating`` row older than this at start-up belongs to a push that died (pushes take seconds).
RESUME_GRACE: Final = timedelta(minutes=10)


class PushStorageFailed(DomainError):
    """The package passed every check but could not be stored or published (HTTP 503; the version is ``failed``
    and may be pushed again)."""


def _error(code: IssueCode, message: str) -> Finding:
    return Finding(code, Severity.ERROR, message)


# --- persist ------------------------------------------------------------------------------------------------------


def package_key(lower_id: str, lower_version: str, sha256: str) -> str:
    """Final, content-addressed key of a package's bytes (a re-sign writes a new key)."""
    return f"packages/{lower_id}/{lower_version}/{sha256[:12]}.nupkg"


def nuspec_key(lower_id: str, lower_version: str, data: bytes) -> str:
    return f"packages/{lower_id}/{lower_version}/{hashlib.sha256(data).hexdigest()[:12]}.nuspec"


def manifest_metadata(manifest: Manifest) -> dict[str, Any]:
    """The version row's ``metadata`` JSON: what registration and search documents are built from."""
    license_ = manifest.license
    repository = manifest.repository
    return {
        "original_version": manifest.original_version,
        "title": manifest.title, "description": manifest.description, "summary": manifest.summary,
        "authors": manifest.authors, "owners": manifest.owners, "tags": list(manifest.tags),
        "project_url": manifest.project_url, "license_url": manifest.license_url,
        "license_expression": license_.value if license_ is not None and license_.type == "expression" else None,
        "license_file": license_.value if license_ is not None and license_.type == "file" else None,
        "icon_url": manifest.icon_url, "icon": manifest.icon, "readme": manifest.readme,
        "require_license_acceptance": manifest.require_license_acceptance,
        "development_dependency": manifest.development_dependency,
        "min_client_version": manifest.min_client_version,
        "dependency_groups": [
            {"target_framework": group.target_framework,
             "dependencies": [{"id": d.id, "range": d.range.normalized, "include": list(d.include),
                               "exclude": list(d.exclude)} for d in group.dependencies]}
            for group in manifest.dependency_groups
        ],
        "package_types": [{"name": t.name, "version": t.version} for t in manifest.package_types],
        "release_notes": manifest.release_notes, "language": manifest.language, "copyright": manifest.copyright,
        "repository": None if repository is None else {
            "type": repository.type, "url": repository.url, "branch": repository.branch, "commit": repository.commit,
        },
    }  # fmt: skip


@dataclass(frozen=True)
class Persisted:
    version_id: int
    staged: StagedBlob
    created_registration: bool
    replaced_blobs: tuple[str, ...] = field(default=())
    warnings: tuple[Finding, ...] = field(default=())


def _take_version(session: Session, actor: Principal, parsed: ParsedPackage, at: datetime
                  ) -> tuple[PackageRegistration, bool, tuple[str, ...]]:
    """In the caller's transaction: the registration, share-locked (created for a new id, owned by the account
    pushed for), after authorizing the push and checking conflicts; a failed row of this version is deleted
    (nuget.org hard-deletes it first) and its blob keys returned, for deleting once the transaction commits."""
    registration, existing = authorize_push(session, actor, parsed, lock=True)
    if registration is not None and is_conflict(existing):
        raise ConflictError(conflict_message(registration.package_id, parsed))
    created = False
    if registration is None:
        owner = session.get(Account, actor.account_id)
        if owner is None:  # pragma: no cover - the key's account was deleted between authorize and here
            raise ConflictError("the account the API key acts for no longer exists")
        try:
            registration = packages.register(session, parsed.manifest.id, owner, at=at)
            created = True
        except ConflictError:  # created concurrently by another push: this push is a new version of it
            registration, existing = authorize_push(session, actor, parsed, lock=True)
            if registration is None or is_conflict(existing):
                raise ConflictError(conflict_message(parsed.manifest.id, parsed)) from None
    replaced: tuple[str, ...] = ()
    if existing is not None:
        replaced = tuple(k for k in (existing.package_blob, existing.upload_blob, existing.nuspec_blob) if k)
        session.delete(existing)
        session.flush()
    return registration, created, replaced


def _version_row(registration: PackageRegistration, actor: Principal, parsed: ParsedPackage,
                 verification: Verification, at: datetime, *, findings: Sequence[Finding],
                 staged: StagedBlob | None, upload_sha512: str | None = None) -> PackageVersion:
    """A ``validating`` row for a staged upload, or a ``failed`` row (no blob) for a refused one."""
    return PackageVersion(
        registration_id=registration.id, version=parsed.version.normalized,
        lower_version=parsed.lower_version, full_version=parsed.version.full,
        is_prerelease=parsed.version.is_prerelease, is_semver2=parsed.is_semver2, listed=True,
        status=(VersionStatus.VALIDATING if staged is not None else VersionStatus.FAILED).value,
        pushed_at=at, pushed_by_id=actor.user_id, pushed_for_id=actor.account_id,
        package_blob=None, package_sha512=None, package_size=staged.size if staged is not None else parsed.size,
        upload_blob=staged.key if staged is not None else None,
        upload_sha512=staged.sha512 if staged is not None else upload_sha512, nuspec_blob=None,
        package_metadata=manifest_metadata(parsed.manifest), findings=[f.to_dict() for f in findings],
        author_cert_sha256=verification.author_cert_sha256, repo_cert_sha256=None,
        signature_kind=verification.signature_kind.value, published_at=None,
    )  # fmt: skip


def _insert(session: Session, row: PackageVersion, registration: PackageRegistration, parsed: ParsedPackage) -> None:
    package_id = registration.package_id  # read now: a failed flush rolls back and expires every loaded object
    session.add(row)
    try:
        session.flush()
    except IntegrityError:  # the same version pushed concurrently
        raise ConflictError(conflict_message(package_id, parsed)) from None


def _refusal_event(session: Session, actor: Principal, registration: PackageRegistration, row: PackageVersion,
                   stage: Stage, findings: Sequence[Finding], *, created: bool, replaced: bool, at: datetime) -> None:
    audit.record(session, actor, VERSION_REFUSE, f"{registration.package_id}/{row.version}", at=at, after={
        "version": row.full_version, "status": row.status, "stage": stage.value, "size": row.package_size,
        "sha512": row.upload_sha512, "signature_kind": row.signature_kind,
        "findings": [f.code.value for f in findings if f.is_error], "new_id": created,
        "replaced_failed_version": replaced,
    })  # fmt: skip


def persist(ctx: ServiceContext, actor: Principal, parsed: ParsedPackage, verification: Verification) -> Persisted:
    """Stage the upload, then one transaction: the locks, access and conflicts again, the signer rules judged on
    what the transaction reads, the registration and first owner (new id), the version row (``validating``), the
    audit event. The staged blob is removed again if the transaction fails; a judgement that refuses the push
    records the refusal (a ``failed`` row, no blob), removes the staged blob and raises :class:`PushRejected`."""
    at = ctx.now()
    with parsed.path.open("rb") as handle:
        staged = ctx.blobs.stage(handle, max_bytes=ctx.settings.max_package_bytes)
    refused: PushRejected | None = None
    try:
        with ctx.db.transaction() as session:
            registration, created, replaced = _take_version(session, actor, parsed, at)
            judgement, _ = signing_rules.judge_in_session(session, actor, registration.package_id, parsed.signature,
                                                          verification.verdict, lock=True)  # fmt: skip
            if judgement.errors:
                refused = PushRejected(judgement.errors, Stage.FAST if judgement.fast else Stage.FULL)
                row = _version_row(registration, actor, parsed, verification, at, staged=None,
                                   findings=(*judgement.errors, *judgement.warnings), upload_sha512=staged.sha512)
                _insert(session, row, registration, parsed)
                _refusal_event(session, actor, registration, row, refused.stage, judgement.errors, created=created,
                               replaced=bool(replaced), at=at)  # fmt: skip
            else:
                row = _version_row(registration, actor, parsed, verification, at, staged=staged,
                                   findings=judgement.warnings)
                _insert(session, row, registration, parsed)
                audit.record(session, actor, VERSION_PUSH, f"{registration.package_id}/{row.version}", at=at, after={
                    "version": row.full_version, "status": row.status, "size": staged.size, "sha512": staged.sha512,
                    "signature_kind": row.signature_kind, "new_id": created, "replaced_failed_version": bool(replaced),
                })  # fmt: skip
            version_id = row.id
    except BaseException:
        _delete_quietly(ctx, staged.key)
        raise
    if refused is not None:
        for key in (staged.key, *replaced):
            _delete_quietly(ctx, key)
        raise refused
    return Persisted(version_id, staged, created, replaced, judgement.warnings)


def _sha512(path: Path) -> str:
    digest = hashlib.sha512()
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return base64.b64encode(digest.digest()).decode("ascii")


def record_refusal(ctx: ServiceContext, actor: Principal, check: PushCheck) -> None:
    """Record a push the signing steps refused as a ``failed`` version with its findings and no blob (see the
    module's docstring), in one transaction with its audit event. Nothing is recorded when the version was
    pushed meanwhile or the key's account may no longer push it: the refusal stands, unrecorded."""
    assert check.stage in (Stage.FAST, Stage.FULL)
    parsed = check.parsed
    at = ctx.now()
    sha512 = _sha512(parsed.path)
    try:
        with ctx.db.transaction() as session:
            registration, created, replaced = _take_version(session, actor, parsed, at)
            row = _version_row(registration, actor, parsed, check.verification, at, staged=None,
                               findings=(*check.findings, *check.warnings), upload_sha512=sha512)
            _insert(session, row, registration, parsed)
            _refusal_event(session, actor, registration, row, check.stage, check.findings, created=created,
                           replaced=bool(replaced), at=at)  # fmt: skip
    except (ConflictError, AccessDenied):
        return
    for key in replaced:
        _delete_quietly(ctx, key)


def _delete_quietly(ctx: ServiceContext, key: str) -> None:
    try:
        ctx.blobs.delete(key)
    except (StorageError, OSError):  # an unreferenced blob is never served; it is only logged
        _log.exception("could not delete blob %s", key)


# --- publish --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pending:
    id: int
    lower_id: str
    lower_version: str
    status: str
    upload_blob: str | None
    upload_sha512: str | None
    subject: str


def _pending(ctx: ServiceContext, version_id: int) -> _Pending | None:
    with ctx.db.reading() as session:
        row = session.get(PackageVersion, version_id)
        if row is None:
            return None
        registration = row.registration
        return _Pending(row.id, registration.lower_id, row.lower_version, row.status, row.upload_blob,
                        row.upload_sha512, f"{registration.package_id}/{row.version}")


def complete(ctx: ServiceContext, version_id: int, staged: StagedBlob, nuspec: bytes) -> str:
    """Publish the staged upload and the nuspec under their final keys, then make the version ``available``
    (and bump the feed serial) in one transaction. Returns the new status. A storage failure marks the version
    ``failed`` and raises :class:`PushStorageFailed`."""
    pending = _pending(ctx, version_id)
    if pending is None or pending.status != VersionStatus.VALIDATING.value:
        return pending.status if pending is not None else VersionStatus.FAILED.value
    final = package_key(pending.lower_id, pending.lower_version, staged.sha256)
    manifest_key = nuspec_key(pending.lower_id, pending.lower_version, nuspec)
    try:
        if ctx.blobs.publish(staged, final) is PutResult.CONFLICT:
            raise StorageError(f"another package already holds the key '{final}'")
        if ctx.blobs.put(manifest_key, io.BytesIO(nuspec)) is PutResult.CONFLICT:
            raise StorageError(f"another nuspec already holds the key '{manifest_key}'")
    except (StorageError, OSError) as exc:
        mark_failed(ctx, version_id, f"The package could not be stored: {exc}")
        raise PushStorageFailed(f"{pending.subject} could not be stored; it is marked failed and may be pushed "
                                f"again: {exc}") from None
    at = ctx.now()
    with ctx.db.transaction() as session:
        row = session.get(PackageVersion, version_id)
        if row is None or row.status != VersionStatus.VALIDATING.value:  # deleted or finished meanwhile
            return row.status if row is not None else VersionStatus.FAILED.value
        row.package_blob, row.upload_blob, row.nuspec_blob = final, final, manifest_key
        row.package_sha512, row.package_size = staged.sha512, staged.size
        row.status, row.published_at = VersionStatus.AVAILABLE.value, at
        feed_state.bump(session)
    return VersionStatus.AVAILABLE.value


def mark_failed(ctx: ServiceContext, version_id: int, message: str) -> None:
    """Mark a ``validating`` version ``failed`` with a ``PackageStorageFailed`` finding (it may be pushed again)."""
    finding = _error(IssueCode.PACKAGE_STORAGE_FAILED, message)
    try:
        with ctx.db.transaction() as session:
            row = session.get(PackageVersion, version_id)
            if row is not None and row.status == VersionStatus.VALIDATING.value:
                row.status = VersionStatus.FAILED.value
                row.findings = [*row.findings, finding.to_dict()]
    except Exception:  # the database is what failed: the row stays validating and resume_interrupted retries
        _log.exception("could not mark version %s failed", version_id)


# --- the whole push ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PushOutcome:
    """What the API answers a successful push with."""

    package_id: str
    version: str  # normalized
    full_version: str
    status: str
    warnings: tuple[Finding, ...]
    created_registration: bool


def push_package(ctx: ServiceContext, actor: Principal, upload: Path) -> PushOutcome:
    """Run every step on the uploaded file at ``upload`` (a local file the caller deletes afterwards)."""
    check = check_push(ctx, actor, upload)
    if check.stage is Stage.CONFLICT:
        raise ConflictError(check.findings[0].message)
    if check.stage is not None:
        if check.stage is not Stage.PACKAGE:
            record_refusal(ctx, actor, check)
        raise check.rejection()
    parsed = check.parsed
    persisted = persist(ctx, actor, parsed, check.verification)
    for key in persisted.replaced_blobs:
        _delete_quietly(ctx, key)
    status = complete(ctx, persisted.version_id, persisted.staged, parsed.nuspec.data)
    return PushOutcome(parsed.manifest.id, parsed.version.normalized, parsed.version.full, status,
                       persisted.warnings, persisted.created_registration)


# --- recovery of pushes interrupted between persist and publish -------------------------------------------------


@dataclass(frozen=True)
class Resumed:
    subject: str
    status: str


def _hash_blob(ctx: ServiceContext, key: str) -> StagedBlob:
    """Size and digests of a stored blob, as staging computes them."""
    with ctx.blobs.open(key) as raw:
        reader = HashingReader(cast(BinaryIO, raw), max_bytes=None, key=key)
        while reader.read(1024 * 1024):
            pass
    return reader.staged(key)


def _find_upload(ctx: ServiceContext, pending: _Pending) -> StagedBlob | None:
    """The pushed bytes: still staged, or already published under a final key no row points at yet."""
    candidates = [pending.upload_blob] if pending.upload_blob else []
    candidates += [k for k in ctx.blobs.list_keys(f"packages/{pending.lower_id}/{pending.lower_version}/")
                   if k.endswith(".nupkg")]
    for key in candidates:
        if ctx.blobs.stat(key) is None:
            continue
        blob = _hash_blob(ctx, key)
        if blob.sha512 == pending.upload_sha512:
            return blob
    return None


def _nuspec_of(ctx: ServiceContext, key: str) -> bytes:
    with tempfile.TemporaryDirectory(dir=_scratch(ctx)) as folder:
        local = Path(folder) / "package.nupkg"
        with ctx.blobs.open(key) as reader, local.open("wb") as out:
            for chunk in reader.iter_chunks():
                out.write(chunk)
        with zipfile.ZipFile(local) as archive:
            return nuspec_in_archive(archive, key).data


def _scratch(ctx: ServiceContext) -> Path:
    folder = ctx.settings.data_dir / "tmp"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def resume_interrupted(ctx: ServiceContext, *, older_than: timedelta = RESUME_GRACE) -> list[Resumed]:
    """Finish every push that stopped between persist and publish (``validating`` rows pushed before
    ``now - older_than``): publish what the store holds and make the version available, or mark it ``failed``
    when the uploaded bytes are gone."""
    cutoff = ctx.now() - older_than
    with ctx.db.reading() as session:
        ids = list(session.scalars(select(PackageVersion.id).where(
            PackageVersion.status == VersionStatus.VALIDATING.value, PackageVersion.pushed_at < cutoff,
        ).order_by(PackageVersion.id)))  # fmt: skip
    results: list[Resumed] = []
    for version_id in ids:
        pending = _pending(ctx, version_id)
        if pending is None or pending.status != VersionStatus.VALIDATING.value:
            continue
        try:
            blob = _find_upload(ctx, pending)
            if blob is None:
                mark_failed(ctx, version_id, "The push was interrupted and its upload is gone: push it again.")
                results.append(Resumed(pending.subject, VersionStatus.FAILED.value))
                continue
            nuspec = _nuspec_of(ctx, blob.key)
            if blob.key.startswith("incoming/"):
                status = complete(ctx, version_id, blob, nuspec)
            else:  # already published: complete() finds the final key taken by the same bytes
                status = complete(ctx, version_id, _restage(ctx, blob), nuspec)
        except (NusealError, OSError, zipfile.BadZipFile) as exc:
            _log.error("could not resume the push of %s: %s", pending.subject, exc)
            mark_failed(ctx, version_id, f"The push was interrupted and could not be resumed: {exc}")
            status = VersionStatus.FAILED.value
        _log.info("resumed the interrupted push of %s: %s", pending.subject, status)
        results.append(Resumed(pending.subject, status))
    return results


def _restage(ctx: ServiceContext, published: StagedBlob) -> StagedBlob:
    """A staged copy of an already published blob, so :func:`complete` can run unchanged (publishing it finds
    the same bytes under the final key and only removes the copy)."""
    with ctx.blobs.open(published.key) as reader:
        return ctx.blobs.stage(cast(BinaryIO, reader))
