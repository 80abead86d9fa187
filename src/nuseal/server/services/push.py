"""Pushing a package (``PackagePublish/2.0.0`` ``PUT``): one service call made of named steps.

    parse -> fast checks -> access and conflicts -> verify -> signer rules -> persist -> publish

Each step is a function; :func:`push_package` runs them in order and the first refusal stops the push with
:class:`PushRejected` (400, carrying :class:`~nuseal.findings.Finding` objects), :class:`~.errors.ConflictError`
(409) or :class:`~.permissions.AccessDenied` (the API answers 401 on push, as nuget.org does). Nothing is
written before every check has passed: the uploaded file is a local temporary file (the API layer received it,
counting bytes), so a refused package never reaches the blob store or the database.

- **parse**: the zip's central directory (``nuseal.package.zipformat``), the root nuspec
  (``nuseal.package.nuspec.parse_manifest``: strict, bounded, no DTD).
- **fast checks** (nuget.org's synchronous upload checks, §A.6, with its texts): Zip64 refused, entry count
  (65534 signed, fewer unsigned, leaving room for a repository signature without Zip64), duplicate entries,
  several nuspecs, entries dated in the future or with doubled slashes, the manifest rules of nuget.org's
  ``ManifestValidator`` (id characters and length, version readable by old clients, URLs, dependencies).
- **access and conflicts**: the API key's account against the matrix (``PUSH_NEW_ID`` for a new id, whose
  first pusher becomes its owner; ``PUSH_NEW_VERSION`` otherwise), then 409 for a version that exists
  (case-insensitive id; ``1.0.0+a`` is ``1.0.0+b``), unless it failed validation: nuget.org lets a failed
  version be pushed again and so do we (the failed row is replaced).
- **verify**: a signed package is verified by the library's engine under the feed policy
  (``feed_push_setup`` with the feed's trust roots and revocation mode); a refusal carries the NU codes (a
  tampered package: NU3008). Unsigned packages are accepted for now.
- **signer rules**: issue 10 (governance) slots its ``judge_push`` here; today this step accepts everything.
- **persist**: the upload is staged under ``incoming/`` and one transaction writes the registration (new id),
  its first owner, the version row (status ``validating``, metadata, findings), the audit event
  ``package:version:push``.
- **publish** (:func:`complete`): the staged blob is published under its final content-addressed key and the
  nuspec next to it, then a second transaction points the row at them, makes it ``available`` and bumps the
  feed serial. Until that commit the version is not served (only ``available`` rows with a blob key are).

Crash safety: a process dying between persist and publish leaves a ``validating`` row whose upload still sits in
``incoming/`` (or already under its final key, which no row points at: an orphan is never served).
:func:`resume_interrupted` (run when ``nuseal serve`` starts, for rows older than a grace period) finishes such
pushes from what the store holds, or marks them ``failed`` when the upload is gone. Until repository signing
exists the push is validated synchronously, so a 201 push is ``available`` at once; the asynchronous pipeline
of issue 11 will take over ``publish`` as its job and leave the 201 at ``validating``.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import re
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, Final, cast
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nuseal.codes import IssueCode
from nuseal.enums import RevocationMode, SignatureKind
from nuseal.errors import NusealError, PackageFormatError
from nuseal.findings import Finding, Severity
from nuseal.package import zipformat
from nuseal.package.nuspec import ZIP_ERRORS, Manifest, NuspecFile, nuspec_in_archive, parse_manifest
from nuseal.server.db.models import (
    Account,
    PackageRegistration,
    PackageVersion,
    SignatureKindColumn,
    VersionStatus,
)
from nuseal.server.services import audit, feed_state, packages
from nuseal.server.services.context import ServiceContext
from nuseal.server.services.errors import ConflictError, DomainError, InvalidInputError
from nuseal.server.services.permissions import Action, Principal, authorize
from nuseal.server.storage import PutResult, StagedBlob, StorageError
from nuseal.server.storage.base import HashingReader
from nuseal.trust.policy_builder import feed_push_setup
from nuseal.verify.batch import accepted, verify_guarded
from nuseal.verify.setup import VerificationSetup
from nuseal.versioning import NuGetVersion
from nuseal.x509.roots import trust_store_from_files

_log = logging.getLogger(__name__)

VERSION_PUSH: Final = "package:version:push"
#: nuget.org's ``maxPackageEntryCount`` (``ushort.MaxValue - 1``): signed packages may have this many entries,
#: unsigned ones fewer, so a repository signature still fits without Zip64.
MAX_PACKAGE_ENTRIES: Final = 65534
#: nuget.org's ``MaxPackageVersionLength`` (the version column) and NuGet's ``MaxPackageIdLength``.
MAX_VERSION_LENGTH: Final = 64
MAX_ID_LENGTH: Final = 100
#: Zip entries dated later than now + this are refused (nuget.org allows one day of clock skew).
FUTURE_ENTRY_SLACK: Final = timedelta(days=1)
#: A ``validating`` row older than this at start-up belongs to a push that died (pushes take seconds).
RESUME_GRACE: Final = timedelta(minutes=10)

# nuget.org's texts (Strings.resx / CoreStrings.resx of NuGetGallery).
FAILED_TO_READ: Final = "Failed to read the package file. Ensure it is a valid NuGet package with a valid manifest."
INVALID_NUSPEC: Final = ("The NuGet package contains an invalid .nuspec file. The error encountered was: '{0}'. "
                         "Correct the error and try again.")
INVALID_NUSPEC_MULTIPLE: Final = ("The NuGet package contains an invalid .nuspec file. The errors encountered "
                                  "were: '{0}'. Correct the errors and try again.")
ZIP64: Final = "Zip64 packages are not supported."
TOO_MANY_ENTRIES: Final = "The package contains too many files and/or folders."
DUPLICATED_ENTRIES: Final = "The package contains one or more duplicated files in the same folder."
TOO_MANY_NUSPECS: Final = ("The package contains multiple nuspec files. Please make sure only one nuspec file is "
                           "present in the package.")
ENTRY_IN_FUTURE: Final = ("The package is invalid and cannot be published. One or more files, such as '{0}' have a "
                          "date in the future.")
ENTRY_DOUBLE_SLASH: Final = ("The package is invalid and cannot be published. The package entry for '{0}' has a  "
                             "double forward slashes in path, which is causing a file name collision during "
                             "extraction.")
ENTRY_DOUBLE_BACKSLASH: Final = ("The package is invalid and cannot be published. The package entry for '{0}' has a "
                                 "  double back slashes in path.")
ID_TOO_LONG: Final = ("The package manifest contains an ID that is too long. Package IDs can be no longer than 100 "
                      "characters.")
INVALID_ID: Final = ("The package manifest contains an invalid ID: '{0}', because it must start with a letter, "
                     "number or underscore ( _ ), can only contain letters, numbers, underscores ( _ ), dots ( . ), "
                     "or dashes ( - ), and cannot contain consecutive dots ( . ) or dashes ( - ).")
INVALID_VERSION: Final = "The package manifest contains an invalid Version: '{0}'"
INVALID_URL: Final = "The package manifest contains an invalid URL"
DUPLICATE_DEPENDENCY: Final = "The package manifest contains a duplicate dependency: {0} {1}"
INVALID_DEPENDENCY: Final = "The package manifest contains an invalid Dependency: '{0} {1}'"
INVALID_DEPENDENCY_VERSION: Final = "The package manifest contains an invalid Dependency Version: '{0}'"
UNSUPPORTED_LICENSE_TYPE: Final = "Unsupported license type '{0}'."
EXISTS: Final = "A package with ID '{0}' and version '{1}' already exists and cannot be modified."

# NuGetGallery's PackageIdValidator: ASCII for new ids; dependencies may name older ids with any word character.
_NEW_ID = re.compile(r"^[A-Za-z0-9_]+(?:[.-][A-Za-z0-9_]+)*$")
_ANY_ID = re.compile(r"^\w+(?:[.-]\w+)*$")
# NuGetGallery's IsValidVersionForLegacyClients: a SemVer 1 version whose release label starts with a letter.
_LEGACY_VERSION = re.compile(r"^\d+(?:\.\d+){0,3}(?:-[a-z][0-9a-z-]*)?$", re.IGNORECASE)


class PushRejected(InvalidInputError):
    """The package is refused (HTTP 400); ``findings`` are the errors, the message lists them one per line."""

    def __init__(self, findings: Sequence[Finding]) -> None:
        if not findings:
            raise ValueError("a rejection needs at least one finding")
        super().__init__("\n".join(f"{f.code.value}: {f.message}" for f in findings))
        self.findings = tuple(findings)


class PushStorageFailed(DomainError):
    """The package passed every check but could not be stored or published (HTTP 503; the version is ``failed``
    and may be pushed again)."""


def _error(code: IssueCode, message: str) -> Finding:
    return Finding(code, Severity.ERROR, message)


# --- step 1: parse ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ZipEntry:
    name: str
    modified: datetime | None  # the DOS time, read as UTC; None when the date fields are not a date


@dataclass(frozen=True)
class ParsedPackage:
    """What the fast checks and the rest of the push need to know about the uploaded file."""

    path: Path
    size: int
    entries: tuple[ZipEntry, ...]
    signed: bool
    zip64: bool
    nuspec: NuspecFile
    manifest: Manifest

    @property
    def version(self) -> NuGetVersion:
        return self.manifest.version

    @property
    def lower_id(self) -> str:
        return self.manifest.id.lower()

    @property
    def lower_version(self) -> str:
        return self.manifest.version.lower

    @property
    def is_semver2(self) -> bool:
        """nuget.org's ``SemVerLevelKey.ForPackage``: a SemVer 2 version, or a dependency bound that is one."""
        if self.version.is_semver2:
            return True
        return any(bound is not None and bound.is_semver2
                   for group in self.manifest.dependency_groups for dependency in group.dependencies
                   for bound in (dependency.range.min_version, dependency.range.max_version))


def _dos_time(header: zipformat.CentralDirectoryHeader) -> datetime | None:
    # DOS times have no zone (.NET reads them as local time); UTC here, the one day of slack covers any zone.
    date, time = header.dos_date, header.dos_time
    try:
        return datetime(1980 + (date >> 9), (date >> 5) & 0xF, date & 0x1F, time >> 11, (time >> 5) & 0x3F,
                        min((time & 0x1F) * 2, 59), tzinfo=UTC)
    except ValueError:
        return None


def parse(path: Path) -> ParsedPackage:
    """Read the uploaded file's zip structure and manifest; :class:`PushRejected` when either is unreadable."""
    try:
        with path.open("rb") as handle:
            layout = zipformat.read_layout(handle)
            zip64 = zipformat.is_zip64(handle, layout)
        with zipfile.ZipFile(path) as archive:
            nuspec = nuspec_in_archive(archive, "the package")
    except PackageFormatError as exc:
        raise PushRejected([_error(IssueCode.INVALID_PACKAGE_FILE, f"{FAILED_TO_READ} ({exc.message})")]) from None
    except ZIP_ERRORS as exc:
        raise PushRejected([_error(IssueCode.INVALID_PACKAGE_FILE, f"{FAILED_TO_READ} ({exc})")]) from None
    try:
        manifest = parse_manifest(nuspec.data, nuspec.entry_name)
    except PackageFormatError as exc:
        raise PushRejected([_error(IssueCode.INVALID_NUSPEC, INVALID_NUSPEC.format(exc.message))]) from None
    entries = tuple(ZipEntry(h.name.decode("utf-8", errors="replace"), _dos_time(h)) for h in layout.headers)
    return ParsedPackage(path=path, size=layout.file_size, entries=entries,
                         signed=zipformat.has_signature_entry(layout), zip64=zip64, nuspec=nuspec, manifest=manifest)


# --- step 2: fast checks ----------------------------------------------------------------------------------------


def _entry_findings(parsed: ParsedPackage, now: datetime) -> Iterator[Finding]:
    count = len(parsed.entries)
    if count > MAX_PACKAGE_ENTRIES or (not parsed.signed and count >= MAX_PACKAGE_ENTRIES):
        yield _error(IssueCode.PACKAGE_CONTAINS_TOO_MANY_ENTRIES, TOO_MANY_ENTRIES)
    normalized = [entry.name.replace("\\", "/").lower() for entry in parsed.entries if not entry.name.endswith("/")]
    if len(normalized) != len(set(normalized)):
        yield _error(IssueCode.INVALID_PACKAGE_ENTRY, DUPLICATED_ENTRIES)
    if sum(1 for name in normalized if name.endswith(".nuspec")) > 1:
        yield _error(IssueCode.INVALID_NUSPEC, TOO_MANY_NUSPECS)
    latest = now + FUTURE_ENTRY_SLACK
    future = next((e for e in parsed.entries if e.modified is not None and e.modified > latest), None)
    if future is not None:
        yield _error(IssueCode.INVALID_PACKAGE_ENTRY, ENTRY_IN_FUTURE.format(future.name))
    doubled = next((e for e in parsed.entries if "//" in e.name), None)
    if doubled is not None:
        yield _error(IssueCode.INVALID_PACKAGE_ENTRY, ENTRY_DOUBLE_SLASH.format(doubled.name))
    backslashes = next((e for e in parsed.entries if "\\\\" in e.name), None)
    if backslashes is not None:
        yield _error(IssueCode.INVALID_PACKAGE_ENTRY, ENTRY_DOUBLE_BACKSLASH.format(backslashes.name))


def _is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _manifest_errors(manifest: Manifest) -> Iterator[str]:
    """nuget.org's ``ManifestValidator`` rules, in its order and with its texts."""
    if len(manifest.id) > MAX_ID_LENGTH:
        yield ID_TOO_LONG
    elif manifest.id.lower() == "$id$" or not _NEW_ID.match(manifest.id):
        yield INVALID_ID.format(manifest.id)
    for url in (manifest.icon_url, manifest.project_url, manifest.license_url):
        if url and not _is_http_url(url):
            yield INVALID_URL
    version = manifest.version
    if not version.is_semver2 and not _LEGACY_VERSION.match(version.normalized):
        yield INVALID_VERSION.format(version.full)
    if len(version.full) > MAX_VERSION_LENGTH:
        yield INVALID_VERSION.format(version.full) + f" (longer than {MAX_VERSION_LENGTH} characters)"
    for group in manifest.dependency_groups:
        seen: set[str] = set()
        for dependency in group.dependencies:
            if dependency.id.lower() in seen:
                yield DUPLICATE_DEPENDENCY.format(group.target_framework or "any", dependency.id)
            seen.add(dependency.id.lower())
            if not _ANY_ID.match(dependency.id):
                yield INVALID_DEPENDENCY.format(dependency.id, str(dependency.range))
            bounds = {b for b in (dependency.range.min_version, dependency.range.max_version) if b is not None}
            for bound in sorted(bounds):
                if bound.has_metadata:
                    yield INVALID_DEPENDENCY_VERSION.format(bound.full)
                elif not bound.is_semver2 and not _LEGACY_VERSION.match(bound.normalized):
                    yield INVALID_VERSION.format(bound.full)
    if manifest.license is not None and manifest.license.type not in ("expression", "file"):
        yield UNSUPPORTED_LICENSE_TYPE.format(manifest.license.type)


def fast_checks(parsed: ParsedPackage, now: datetime) -> None:
    """nuget.org's synchronous checks; :class:`PushRejected` with every problem found."""
    findings: list[Finding] = []
    if parsed.zip64:
        findings.append(_error(IssueCode.PACKAGE_IS_ZIP64, ZIP64))
    findings.extend(_entry_findings(parsed, now))
    errors = list(dict.fromkeys(_manifest_errors(parsed.manifest)))
    if errors:
        text = (INVALID_NUSPEC if len(errors) == 1 else INVALID_NUSPEC_MULTIPLE).format("', '".join(errors))
        findings.append(_error(IssueCode.INVALID_NUSPEC, text))
    if findings:
        raise PushRejected(findings)


# --- step 3: access and conflicts -------------------------------------------------------------------------------


def _registration(session: Session, lower_id: str) -> PackageRegistration | None:
    return session.scalars(select(PackageRegistration).where(PackageRegistration.lower_id == lower_id)).one_or_none()


def _existing(session: Session, registration: PackageRegistration, lower_version: str) -> PackageVersion | None:
    return session.scalars(select(PackageVersion).where(
        PackageVersion.registration_id == registration.id, PackageVersion.lower_version == lower_version,
    )).one_or_none()  # fmt: skip


def _authorize_and_check_conflict(session: Session, actor: Principal, parsed: ParsedPackage
                                  ) -> tuple[PackageRegistration | None, PackageVersion | None]:
    """The registration (``None`` for a new id) and the failed version this push replaces, if any."""
    registration = _registration(session, parsed.lower_id)
    if registration is None:
        authorize(session, actor, Action.PUSH_NEW_ID, package_id=parsed.manifest.id)
        return None, None
    authorize(session, actor, Action.PUSH_NEW_VERSION, package_id=registration.package_id)
    existing = _existing(session, registration, parsed.lower_version)
    if existing is not None and existing.status != VersionStatus.FAILED.value:
        raise ConflictError(EXISTS.format(parsed.manifest.id, parsed.version.normalized))
    return registration, existing


def check_access(ctx: ServiceContext, actor: Principal, parsed: ParsedPackage) -> None:
    """The key's account may push this id (first pusher of a new id, or acting for an owner) and the version is
    new (or failed before); :class:`AccessDenied` or :class:`ConflictError` otherwise. Checked again in
    :func:`persist`, inside its transaction, against concurrent pushes."""
    with ctx.db.reading() as session:
        _authorize_and_check_conflict(session, actor, parsed)


# --- step 4: verify ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verification:
    """What verification found: warnings to keep (errors reject) and what the package is signed with."""

    findings: tuple[Finding, ...] = ()
    signature_kind: SignatureKindColumn = SignatureKindColumn.UNSIGNED
    author_cert_sha256: str | None = None


@functools.lru_cache(maxsize=8)
def _setup(trust_roots: Path | None, timestamp_roots: Path | None, mode: RevocationMode) -> VerificationSetup:
    return feed_push_setup(trust_store_from_files(trust_roots, timestamp_roots), revocation_mode=mode)


def verification_setup(ctx: ServiceContext) -> VerificationSetup:
    """The feed policy with the feed's trust roots and revocation mode (loaded once per process)."""
    settings = ctx.settings
    return _setup(settings.trust_roots, settings.timestamp_roots, settings.revocation_mode)


def verify(ctx: ServiceContext, parsed: ParsedPackage) -> Verification:
    """Verify a signed package under the feed policy; :class:`PushRejected` with its errors (NU codes) if it is
    not accepted. Unsigned packages pass (the signer rules of issue 10 decide about them)."""
    if not parsed.signed:
        return Verification()
    setup = verification_setup(ctx)
    with setup.open() as trust:
        verdict = verify_guarded(parsed.path, policy=setup.policy, trust=trust, now=ctx.now())
    if not accepted(verdict):
        errors = verdict.errors or tuple(f for f in (verdict.error_finding,) if f is not None)
        raise PushRejected(errors or [_error(IssueCode.VERIFICATION_FAILED, "The package signature is not valid.")])
    primary = next((s for s in verdict.signatures if s.placement == "primary"), None)
    kind = SignatureKindColumn.AUTHOR
    if primary is not None and primary.kind is SignatureKind.REPOSITORY:
        kind = SignatureKindColumn.REPOSITORY
    sha256 = primary.certificate.sha256.lower() if primary is not None and primary.certificate else None
    return Verification(verdict.warnings, kind, sha256 if kind is SignatureKindColumn.AUTHOR else None)


# --- step 5: signer rules ---------------------------------------------------------------------------------------


def signer_rules(ctx: ServiceContext, actor: Principal, parsed: ParsedPackage,
                 verification: Verification) -> tuple[Finding, ...]:
    """Issue 10 (required signer, registered certificates) calls its ``judge_push`` here and raises
    :class:`PushRejected` with its findings; until then every package passes with no finding."""
    return ()


# --- step 6: persist --------------------------------------------------------------------------------------------


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


def _register(session: Session, actor: Principal, parsed: ParsedPackage, at: datetime
              ) -> tuple[PackageRegistration, bool]:
    registration, _ = _authorize_and_check_conflict(session, actor, parsed)
    if registration is not None:
        return registration, False
    owner = session.get(Account, actor.account_id)
    if owner is None:  # pragma: no cover - the key's account was deleted between authorize and here
        raise ConflictError("the account the API key acts for no longer exists")
    try:
        return packages.register(session, parsed.manifest.id, owner, at=at), True
    except ConflictError:  # created concurrently by another push: this push is a new version of it
        registration, _ = _authorize_and_check_conflict(session, actor, parsed)
        assert registration is not None
        return registration, False


def persist(ctx: ServiceContext, actor: Principal, parsed: ParsedPackage, verification: Verification,
            findings: Sequence[Finding]) -> Persisted:
    """Stage the upload, then one transaction: registration and first owner (new id), the version row
    (``validating``), the audit event. The staged blob is removed again if the transaction fails."""
    at = ctx.now()
    with parsed.path.open("rb") as handle:
        staged = ctx.blobs.stage(handle, max_bytes=ctx.settings.max_package_bytes)
    try:
        with ctx.db.transaction() as session:
            registration, created = _register(session, actor, parsed, at)
            replaced: tuple[str, ...] = ()
            existing = _existing(session, registration, parsed.lower_version)
            if existing is not None:  # a failed version, pushed again (nuget.org hard-deletes it first)
                replaced = tuple(k for k in (existing.package_blob, existing.upload_blob, existing.nuspec_blob) if k)
                session.delete(existing)
                session.flush()
            row = PackageVersion(
                registration_id=registration.id, version=parsed.version.normalized,
                lower_version=parsed.lower_version, full_version=parsed.version.full,
                is_prerelease=parsed.version.is_prerelease, is_semver2=parsed.is_semver2, listed=True,
                status=VersionStatus.VALIDATING.value, pushed_at=at, pushed_by_id=actor.user_id,
                pushed_for_id=actor.account_id, package_blob=None, package_sha512=None, package_size=staged.size,
                upload_blob=staged.key, upload_sha512=staged.sha512, nuspec_blob=None,
                package_metadata=manifest_metadata(parsed.manifest), findings=[f.to_dict() for f in findings],
                author_cert_sha256=verification.author_cert_sha256, repo_cert_sha256=None,
                signature_kind=verification.signature_kind.value, published_at=None,
            )  # fmt: skip
            session.add(row)
            try:
                session.flush()
            except IntegrityError:  # the same version pushed concurrently
                raise ConflictError(EXISTS.format(parsed.manifest.id, parsed.version.normalized)) from None
            audit.record(session, actor, VERSION_PUSH, f"{registration.package_id}/{row.version}", at=at, after={
                "version": row.full_version, "status": row.status, "size": staged.size, "sha512": staged.sha512,
                "signature_kind": row.signature_kind, "new_id": created, "replaced_failed_version": bool(replaced),
            })  # fmt: skip
            version_id = row.id
    except BaseException:
        _delete_quietly(ctx, staged.key)
        raise
    return Persisted(version_id, staged, created, replaced)


def _delete_quietly(ctx: ServiceContext, key: str) -> None:
    try:
        ctx.blobs.delete(key)
    except (StorageError, OSError):  # an unreferenced blob is never served; it is only logged
        _log.exception("could not delete blob %s", key)


# --- step 7: publish --------------------------------------------------------------------------------------------


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
    parsed = parse(upload)
    fast_checks(parsed, ctx.now())
    check_access(ctx, actor, parsed)
    verification = verify(ctx, parsed)
    warnings = (*verification.findings, *signer_rules(ctx, actor, parsed, verification))
    persisted = persist(ctx, actor, parsed, verification, warnings)
    for key in persisted.replaced_blobs:
        _delete_quietly(ctx, key)
    status = complete(ctx, persisted.version_id, persisted.staged, parsed.nuspec.data)
    return PushOutcome(parsed.manifest.id, parsed.version.normalized, parsed.version.full, status, warnings,
                       persisted.created_registration)


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
