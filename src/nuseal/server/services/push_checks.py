"""Everything a push checks before anything is stored, in order, as ONE code path for the push
(:mod:`~nuseal.server.services.push`) and its dry run (:mod:`~nuseal.server.services.package_check`):

    parse -> package checks -> access and conflicts -> signing, fast stage -> verify -> signing, full stage

:func:`check_push` runs the steps and returns a :class:`PushCheck`: where the push would stop (``stage``) and
with which findings, or the warnings of an accepted push. The push persists an accepted one (judging the signer
rules once more inside its transaction) and records a refused one; the dry run only reports it.

- **parse**: the zip's central directory (``nuseal.package.zipformat``), the root nuspec
  (``nuseal.package.nuspec.parse_manifest``: strict, bounded, no DTD) and the signature's facts as reading (not
  verifying) it tells: the primary signature's kind, its certificate, its countersignatures
  (``nuseal.cms.parse``). A file that is not a package stops here (:class:`PushRejected`).
- **package checks** (nuget.org's synchronous upload checks, §A.6, with its texts): Zip64 refused, entry count
  (65534 signed, fewer unsigned, leaving room for a repository signature without Zip64), duplicate entries,
  several nuspecs, entries dated in the future or with doubled slashes, the manifest rules of nuget.org's
  ``ManifestValidator`` (id characters and length, version readable by old clients, URLs, dependencies).
- **access and conflicts**: the API key's account against the matrix (``PUSH_NEW_ID`` for a new id, whose
  first pusher becomes its owner; ``PUSH_NEW_VERSION`` otherwise; ``AccessDenied`` is raised), then a conflict
  for a version that exists (case-insensitive id; ``1.0.0+a`` is ``1.0.0+b``) unless it failed: nuget.org lets
  a failed version be pushed again and so do we. The signing requirements are read here too.
- **signing, fast stage** (:func:`~.signing_rules.fast_checks`, nuget.org's ``ValidateSignatureFilePresenceAsync``):
  only whether ``.signature.p7s`` is present, against IsSigningRequired / IsSigningAllowed, with nuget.org's texts.
- **verify**: the author signature of a signed package is verified by the library under the feed policy
  (``feed_push_setup``: a trusted author signature, exactly one timestamp, the feed's trust roots, revocation as
  configured with bounded timeouts, no countersignature verified). Repository signatures, primary or
  countersignature, are accepted and not judged here, as on nuget.org: the validation job strips those that are not
  this feed's (:mod:`~nuseal.server.services.validation`) and signs with the feed's own.
- **signing, full stage** (:func:`~.signing_rules.judge_push`): the library's findings (NU codes), author
  countersignatures, signature kinds, and the signing certificate registered to an account the signer rules
  accept; plus the warnings (the signed-to-unsigned transition, for ``X-NuGet-Warning``).
"""

from __future__ import annotations

import enum
import functools
import re
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO, Final
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from nuseal.cms.parse import load_primary_signature
from nuseal.codes import IssueCode, NuCode
from nuseal.enums import RevocationMode, SignatureKind
from nuseal.errors import PackageFormatError, SignatureEntryError, SignatureFormatError
from nuseal.findings import Finding, Severity
from nuseal.package import zipformat
from nuseal.package.nuspec import ZIP_ERRORS, Manifest, NuspecFile, nuspec_in_archive, parse_manifest
from nuseal.server.db.models import PackageRegistration, PackageVersion, SignatureKindColumn, VersionStatus
from nuseal.server.services import signing_rules
from nuseal.server.services.context import ServiceContext
from nuseal.server.services.errors import InvalidInputError
from nuseal.server.services.permissions import Action, Principal, authorize
from nuseal.server.services.signing_rules import (
    EarlierVersion,
    PrimarySignature,
    PushedFile,
    Pusher,
    PushJudgement,
    SigningRequirements,
)
from nuseal.trust.policy_builder import feed_push_setup
from nuseal.verify.batch import verify_guarded
from nuseal.verify.result import PackageVerdict
from nuseal.verify.setup import DEFAULT_REVOCATION_TIMEOUT, VerificationSetup
from nuseal.versioning import NuGetVersion
from nuseal.x509 import certs
from nuseal.x509.roots import trust_store_from_files

#: nuget.org's ``maxPackageEntryCount`` (``ushort.MaxValue - 1``): signed packages may have this many entries,
#: unsigned ones fewer, so a repository signature still fits without Zip64.
MAX_PACKAGE_ENTRIES: Final = 65534
#: nuget.org's ``MaxPackageVersionLength`` (the version column) and NuGet's ``MaxPackageIdLength``.
MAX_VERSION_LENGTH: Final = 64
MAX_ID_LENGTH: Final = 100
#: Zip entries dated later than now + this are refused (nuget.org allows one day of clock skew).
FUTURE_ENTRY_SLACK: Final = timedelta(days=1)

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



class Stage(str, enum.Enum):
    """Where a push stops: its place in the order of the checks."""

    PACKAGE = "package"  # not a package nuget.org would take (zip, manifest): nothing is recorded
    CONFLICT = "conflict"  # the version exists (409)
    FAST = "fast"  # the signing rules' fast stage (presence of a signature), before verification
    FULL = "full"  # verification under the feed policy and the signing rules' full stage


def finding_text(finding: Finding) -> str:
    """How a finding reads to a person: nuget.org's message alone for its issue codes (its exact texts), the NU
    code and the message for the library's findings (as nuget.org shows ``ClientSigningVerificationFailure``)."""
    return finding.message if isinstance(finding.code, IssueCode) else f"{finding.code.value}: {finding.message}"


def reason_of(findings: Sequence[Finding]) -> str:
    """nuget.org's text(s) on one line: what NuGet clients show of a refused push (the HTTP reason phrase)."""
    return " ".join(finding_text(f) for f in findings)


class PushRejected(InvalidInputError):
    """The package is refused (HTTP 400); ``findings`` are the errors, the message lists them one per line as
    ``CODE: message``; ``stage`` says where the push stopped; :attr:`reason` is the text NuGet clients show."""

    def __init__(self, findings: Sequence[Finding], stage: Stage = Stage.PACKAGE) -> None:
        if not findings:
            raise ValueError("a rejection needs at least one finding")
        super().__init__("\n".join(f"{f.code.value}: {f.message}" for f in findings))
        self.findings = tuple(findings)
        self.stage = stage

    @property
    def reason(self) -> str:
        return reason_of(self.findings)


def _error(code: IssueCode, message: str) -> Finding:
    return Finding(code, Severity.ERROR, message)


# --- step 1: parse ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ZipEntry:
    name: str
    modified: datetime | None  # the DOS time, read as UTC; None when the date fields are not a date


@dataclass(frozen=True)
class ParsedPackage:
    """What the checks and the rest of the push need to know about the uploaded file."""

    path: Path
    size: int
    entries: tuple[ZipEntry, ...]
    signed: bool
    zip64: bool
    nuspec: NuspecFile
    manifest: Manifest
    #: The signature's facts, as reading it tells (what the signer rules judge).
    signature: PushedFile
    #: The repository signature's service index URL ("" when it has none), when the primary signature or a
    #: countersignature is a repository one.
    repository_primary: str | None = None
    repository_countersignature: str | None = None

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


_KINDS: Final = {
    SignatureKind.AUTHOR: PrimarySignature.AUTHOR,
    SignatureKind.REPOSITORY: PrimarySignature.REPOSITORY,
    SignatureKind.UNKNOWN: PrimarySignature.UNKNOWN,
}


@dataclass(frozen=True)
class _Signature:
    primary: PrimarySignature = PrimarySignature.NONE
    author_certificate: str | None = None
    author_countersignature: bool = False
    problem: Finding | None = None
    repository_primary: str | None = None
    repository_countersignature: str | None = None


def _read_signature(handle: BinaryIO, layout: zipformat.ArchiveLayout) -> _Signature:
    """The facts of ``.signature.p7s`` (read, not verified); an unreadable signature is a fact too (the
    verification reports it with its NU code)."""
    try:
        entry = zipformat.find_signature_entry(handle, layout)
        signature = load_primary_signature(zipformat.read_signature_bytes(handle, entry))
        countersignature = signature.countersignature()
    except (SignatureEntryError, SignatureFormatError) as exc:
        problem = Finding(exc.code or NuCode.NU3003, Severity.ERROR, exc.message, "primary")
        return _Signature(PrimarySignature.UNREADABLE, problem=problem)
    certificate = signature.signer_certificate
    author = signature.kind is SignatureKind.AUTHOR
    return _Signature(
        primary=_KINDS[signature.kind],
        author_certificate=certs.fingerprint(certificate).lower() if certificate is not None and author else None,
        author_countersignature=SignatureKind.AUTHOR in signature.countersignature_kinds,
        repository_primary=(signature.service_index_url or "") if signature.kind is SignatureKind.REPOSITORY else None,
        repository_countersignature=None if countersignature is None else countersignature.service_index_url or "",
    )  # fmt: skip


def parse(path: Path) -> ParsedPackage:
    """Read the uploaded file's zip structure, manifest and signature; :class:`PushRejected` when it is not a
    package (no readable zip, no readable root nuspec)."""
    signature = _Signature()
    try:
        with path.open("rb") as handle:
            layout = zipformat.read_layout(handle)
            zip64 = zipformat.is_zip64(handle, layout)
            signed = zipformat.has_signature_entry(layout)
            if signed:
                signature = _read_signature(handle, layout)
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
    facts = PushedFile(manifest.version.normalized, signed, signature.primary, signature.author_certificate,
                       signature.author_countersignature, signature.problem)  # fmt: skip
    return ParsedPackage(path=path, size=layout.file_size, entries=entries, signed=signed, zip64=zip64,
                         nuspec=nuspec, manifest=manifest, signature=facts,
                         repository_primary=signature.repository_primary,
                         repository_countersignature=signature.repository_countersignature)  # fmt: skip

# --- step 2: package checks -------------------------------------------------------------------------------------


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


def package_checks(parsed: ParsedPackage, now: datetime) -> tuple[Finding, ...]:
    """nuget.org's synchronous package checks: every problem found (empty when there is none)."""
    findings: list[Finding] = []
    if parsed.zip64:
        findings.append(_error(IssueCode.PACKAGE_IS_ZIP64, ZIP64))
    findings.extend(_entry_findings(parsed, now))
    errors = list(dict.fromkeys(_manifest_errors(parsed.manifest)))
    if errors:
        text = (INVALID_NUSPEC if len(errors) == 1 else INVALID_NUSPEC_MULTIPLE).format("', '".join(errors))
        findings.append(_error(IssueCode.INVALID_NUSPEC, text))
    return tuple(findings)


# --- step 3: access and conflicts -------------------------------------------------------------------------------


def find_registration(session: Session, lower_id: str, *, lock: bool = False) -> PackageRegistration | None:
    """The registration of an id; ``lock``: share-locked (:mod:`.row_locks`) until the transaction ends."""
    query = select(PackageRegistration).where(PackageRegistration.lower_id == lower_id)
    return session.scalars(query.with_for_update(read=True) if lock else query).one_or_none()


def find_existing(session: Session, registration: PackageRegistration, lower_version: str) -> PackageVersion | None:
    return session.scalars(select(PackageVersion).where(
        PackageVersion.registration_id == registration.id, PackageVersion.lower_version == lower_version,
    )).one_or_none()  # fmt: skip


def authorize_push(session: Session, actor: Principal, parsed: ParsedPackage, *, lock: bool = False
                   ) -> tuple[PackageRegistration | None, PackageVersion | None]:
    """The registration (``None`` for a new id; share-locked with ``lock``, before anything about it is read)
    and the version row of this version, if any; ``AccessDenied`` when the key's account may not push this id."""
    registration = find_registration(session, parsed.lower_id, lock=lock)
    if registration is None:
        authorize(session, actor, Action.PUSH_NEW_ID, package_id=parsed.manifest.id)
        return None, None
    authorize(session, actor, Action.PUSH_NEW_VERSION, package_id=registration.package_id)
    return registration, find_existing(session, registration, parsed.lower_version)


def conflict_message(package_id: str, parsed: ParsedPackage) -> str:
    """nuget.org's 409 text, naming the id as the feed knows it (the case of its first push)."""
    return EXISTS.format(package_id, parsed.version.normalized)


def is_conflict(existing: PackageVersion | None) -> bool:
    """A version row blocks a push unless it failed (nuget.org lets a failed version be pushed again)."""
    return existing is not None and existing.status != VersionStatus.FAILED.value


@dataclass(frozen=True)
class Access:
    """What the access step found: the package as the feed knows it and the signing requirements now."""

    package_id: str  # the registration's id (case of the first push), or the pushed id for a new one
    new_package: bool
    conflict: bool
    pusher: Pusher
    requirements: SigningRequirements
    earlier: tuple[EarlierVersion, ...]


def check_access(ctx: ServiceContext, actor: Principal, parsed: ParsedPackage) -> Access:
    """The key's account may push this id (``AccessDenied`` otherwise), whether the version exists, and the
    signing requirements, read in one transaction. Checked again when the push persists, inside its
    transaction, against concurrent pushes and governance changes."""
    with ctx.db.reading() as session:
        registration, existing = authorize_push(session, actor, parsed)
        pusher, account = signing_rules.pusher_of(session, actor)
        requirements, earlier, new = signing_rules.requirements_for_push(session, parsed.manifest.id, account)
        package_id = registration.package_id if registration is not None else parsed.manifest.id
        return Access(package_id, new, is_conflict(existing), pusher, requirements, earlier)


# --- step 5: verify (steps 4 and 6 are the signer rules' fast_checks and judge_push) -----------------------------


@dataclass(frozen=True)
class Verification:
    """The library's verdict on a signed package under the feed policy (None: unsigned, or not verified because
    the package was refused before), and what the package is signed with."""

    verdict: PackageVerdict | None = None
    signature_kind: SignatureKindColumn = SignatureKindColumn.UNSIGNED
    author_cert_sha256: str | None = None


@functools.lru_cache(maxsize=8)
def _setup(trust_roots: Path | None, timestamp_roots: Path | None, mode: RevocationMode,
           timeout: float) -> VerificationSetup:  # fmt: skip
    return feed_push_setup(trust_store_from_files(trust_roots, timestamp_roots), revocation_mode=mode,
                           revocation_timeout=timeout)  # fmt: skip


def verification_setup(ctx: ServiceContext) -> VerificationSetup:
    """The feed policy with the feed's trust roots and revocation mode (loaded once per process); every
    revocation request is bounded by the library's timeout (``DEFAULT_REVOCATION_TIMEOUT`` seconds)."""
    settings = ctx.settings
    return _setup(settings.trust_roots, settings.timestamp_roots, settings.revocation_mode, DEFAULT_REVOCATION_TIMEOUT)


def verify(ctx: ServiceContext, parsed: ParsedPackage) -> Verification:
    """Verify the author signature of a signed package under the feed policy as of now (unsigned packages have
    nothing to verify: the signer rules decide about them). The verdict is judged by the signer rules' full stage,
    not here.

    Repository signatures are the validation job's (§B.2 step 4: it strips those that are not this feed's) and are
    not judged at push, as on nuget.org: a repository primary signature leaves nothing to verify (the signer rules
    judge such a package as unsigned), and the feed policy never verifies a repository countersignature, so an
    author signature is judged the same with or without one.
    """
    if not parsed.signed:
        return Verification()
    kind = SignatureKindColumn.AUTHOR if parsed.signature.primary is PrimarySignature.AUTHOR else \
        SignatureKindColumn.REPOSITORY if parsed.signature.primary is PrimarySignature.REPOSITORY else \
        SignatureKindColumn.UNSIGNED  # fmt: skip
    if parsed.signature.primary is PrimarySignature.REPOSITORY:
        return Verification(None, kind, None)
    setup = verification_setup(ctx)
    with setup.open() as trust:
        verdict = verify_guarded(parsed.path, policy=setup.policy, trust=trust, now=ctx.now())
    return Verification(verdict, kind, parsed.signature.author_certificate)


# --- all of it ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PushCheck:
    """What the checks found: ``stage`` None means the push is accepted (with ``warnings``), otherwise it stops
    there with ``findings`` (its errors)."""

    parsed: ParsedPackage
    stage: Stage | None
    findings: tuple[Finding, ...] = ()
    warnings: tuple[Finding, ...] = ()
    access: Access | None = None  # None when the package checks refused it
    verification: Verification = field(default_factory=Verification)
    judgement: PushJudgement | None = None

    @property
    def accepted(self) -> bool:
        return self.stage is None

    def rejection(self) -> PushRejected:
        assert self.stage is not None and self.stage is not Stage.CONFLICT and self.findings
        return PushRejected(self.findings, self.stage)


def check_push(ctx: ServiceContext, actor: Principal, path: Path) -> PushCheck:
    """Run every check a push runs, in the push's order, storing nothing. Raises :class:`PushRejected` when the
    file is not a package and ``AccessDenied`` when the key's account may not push it; every other outcome is
    the returned :class:`PushCheck`."""
    parsed = parse(path)
    problems = package_checks(parsed, ctx.now())
    if problems:
        return PushCheck(parsed, Stage.PACKAGE, problems)
    access = check_access(ctx, actor, parsed)
    if access.conflict:
        conflict = Finding(IssueCode.PACKAGE_ALREADY_EXISTS, Severity.ERROR,
                           conflict_message(access.package_id, parsed), "package")  # fmt: skip
        return PushCheck(parsed, Stage.CONFLICT, (conflict,), access=access)
    fast = signing_rules.fast_checks(access.requirements, parsed.signature, access.pusher)
    if fast:
        return PushCheck(parsed, Stage.FAST, fast, access=access)
    verification = verify(ctx, parsed)
    judgement = signing_rules.judge_push(access.requirements, parsed.signature, access.pusher, access.earlier,
                                         verification.verdict)  # fmt: skip
    if judgement.errors:
        return PushCheck(parsed, Stage.FULL, judgement.errors, access=access, verification=verification,
                         judgement=judgement)  # fmt: skip
    return PushCheck(parsed, None, warnings=judgement.warnings, access=access, verification=verification,
                     judgement=judgement)  # fmt: skip
