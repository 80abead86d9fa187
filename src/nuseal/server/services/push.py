"""Pushing a package (``PackagePublish/2.0.0`` ``PUT``): the checks, then persist and hand over, as named steps.

    check (push_checks: parse -> package checks -> access -> signing fast stage -> verify -> signing full stage)
      -> persist (the signer rules judged again inside its transaction; the version is ``validating``)
      -> enqueue the validation job (:mod:`.validation`), after the commit

:func:`push_package` runs them in order. The checks are :func:`.push_checks.check_push`, the same call the dry run
(``POST /api/v1/packages/check``) makes; the first refusal stops the push with :class:`PushRejected` (400, carrying
:class:`~nuseal.findings.Finding` objects), :class:`~.errors.ConflictError` (409) or
:class:`~.permissions.AccessDenied` (the API answers 401 on push, as nuget.org does). Nothing of the package is
written before every check has passed: the uploaded file is a local temporary file (the API layer received it,
counting bytes), so a refused package's bytes never reach the blob store.

- **persist**: the upload is staged, then published under its own content-addressed key
  (:func:`upload_key`, ``uploads/...``: never served), and one transaction share-locks the registration and the
  accounts whose certificates count (:mod:`.row_locks`), authorizes and checks conflicts again, judges the signer
  rules once more on what it reads (:func:`.signing_rules.judge_in_session`: a certificate removed while the push
  was being verified is seen here, and a removal arriving now waits for this commit), then writes the
  registration (new id), its first owner, the version row (status ``validating``, ``upload_blob`` = the pushed
  bytes, metadata, warnings) and the audit event ``package:version:push``. A judgement that fails here refuses
  the push like the checks do.
- **enqueue**: the version id goes to the job queue after the commit. The validation job leases the version,
  checks, strips, judges and repository-signs it, and only then makes it ``available`` (see :mod:`.validation`).
  A lost message or a crash costs time, never the package: the periodic sweep re-enqueues every ``validating``
  version nobody holds. The push answers 201 at ``validating`` (nuget.org answers 201 Created while its
  asynchronous validation runs); clients that need the package poll ``GET /api/v1/packages/{id}/{version}``.

Refused pushes (decision, docs/server.md "Refused pushes"): a refusal by the signing steps (fast stage,
verification, full stage) of a push the key's account may make is recorded as a ``failed`` version row carrying
the findings, with no blob (the refused bytes are never stored; only their size and SHA-512 are kept), and the
audit event ``package:version:refuse``. The status API shows it; the feed never serves it; a later push of the
same version replaces it (as any failed version). A new id's registration is created for it, owned by the
account pushed for, as for any push. Refusals before that (not a package, nuget.org's package checks, access,
conflict) record nothing.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nuseal.codes import IssueCode
from nuseal.findings import Finding, Severity
from nuseal.package.hashing import file_sha512_base64
from nuseal.package.nuspec import Manifest
from nuseal.server import faults
from nuseal.server.db.models import Account, PackageRegistration, PackageVersion, VersionStatus
from nuseal.server.services import audit, packages, signing_rules, validation
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
from nuseal.server.services.validation import Outcome
from nuseal.server.storage import PutResult, StagedBlob, StorageError

_log = logging.getLogger(__name__)

VERSION_PUSH: Final = "package:version:push"
VERSION_REFUSE: Final = "package:version:refuse"


class PushStorageFailed(DomainError):
    """The package passed every check but could not be stored or published (HTTP 503; the version is ``failed``
    and may be pushed again)."""


def _error(code: IssueCode, message: str) -> Finding:
    return Finding(code, Severity.ERROR, message)


# --- persist ------------------------------------------------------------------------------------------------------


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

    @property
    def upload_key(self) -> str:
        return self.staged.key


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
    staged = _publish_upload(ctx, parsed, staged)
    faults.checkpoint("push.staged")
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
        for key in dict.fromkeys((staged.key, *replaced)):
            _delete_quietly(ctx, key)
        raise refused
    return Persisted(version_id, staged, created, replaced, judgement.warnings)


def upload_key(lower_id: str, lower_version: str, sha256: str) -> str:
    """Where the pushed bytes are kept (never served: the feed serves ``package_blob``). Each push gets its own
    key (content prefix + a random part): two pushes of the same bytes race for one version, and the loser
    deletes its upload after its 409, which must not be the winner's."""
    return f"uploads/{lower_id}/{lower_version}/{sha256[:12]}-{secrets.token_hex(6)}.nupkg"


def _publish_upload(ctx: ServiceContext, parsed: ParsedPackage, staged: StagedBlob) -> StagedBlob:
    """Move the staged upload under :func:`upload_key` before the version row points at it (an orphan if the
    transaction fails, deleted then); :class:`PushStorageFailed` when the store fails."""
    key = upload_key(parsed.lower_id, parsed.lower_version, staged.sha256)
    try:
        if ctx.blobs.publish(staged, key) is PutResult.CONFLICT:
            raise StorageError(f"another upload already holds the key '{key}'")
    except (StorageError, OSError) as exc:
        _delete_quietly(ctx, staged.key)
        raise PushStorageFailed(f"{parsed.manifest.id}/{parsed.version.normalized} could not be stored; push it "
                                f"again: {exc}") from None
    return StagedBlob(key, staged.size, staged.sha256, staged.sha512)


def record_refusal(ctx: ServiceContext, actor: Principal, check: PushCheck) -> None:
    """Record a push the signing steps refused as a ``failed`` version with its findings and no blob (see the
    module's docstring), in one transaction with its audit event. Nothing is recorded when the version was
    pushed meanwhile or the key's account may no longer push it: the refusal stands, unrecorded."""
    assert check.stage in (Stage.FAST, Stage.FULL)
    parsed = check.parsed
    at = ctx.now()
    sha512 = file_sha512_base64(parsed.path)
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
    version_id: int = 0


def push_package(ctx: ServiceContext, actor: Principal, upload: Path, *,
                 enqueue: Callable[[int], None] | None = None) -> PushOutcome:
    """Run every step on the uploaded file at ``upload`` (a local file the caller deletes afterwards).

    An accepted push ends ``validating``; ``enqueue(version_id)`` is called after the commit to hand it to the
    validation job (:mod:`.validation`; a failure to enqueue is logged: the sweep finds the version). Without
    ``enqueue`` the job runs here, in this thread, without repository signing (embedding and unit tests)."""
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
        if key != persisted.upload_key:
            _delete_quietly(ctx, key)
    faults.checkpoint("push.persisted")
    status = VersionStatus.VALIDATING.value
    if enqueue is not None:
        try:
            enqueue(persisted.version_id)
        except Exception:  # the queue is down: the version stays validating and the sweep enqueues it again
            _log.exception("could not enqueue the validation of version %s", persisted.version_id)
    else:
        outcome = validation.validate_version(ctx, persisted.version_id, signing=None)
        status = outcome.value if outcome in (Outcome.AVAILABLE, Outcome.FAILED) else status
    return PushOutcome(parsed.manifest.id, parsed.version.normalized, parsed.version.full, status,
                       persisted.warnings, persisted.created_registration, persisted.version_id)
