"""THE one place where a package's signing requirements are computed and a push is judged (spec server.md §A.5,
§A.6, §B.2). The HTTP routes, the admin CLI and (later) the web UI and the push pipeline only call this module.

Three layers:

1. nuget.org's three functions (``PackageRegistrationExtensions``) over plain data: :func:`is_signing_allowed`,
   :func:`is_signing_required`, :func:`is_acceptable_signing_certificate`, computed from the certificates of the
   required signer, or of every owner when the signer is "Any". An organization's own certificates count, its
   members' personal ones do not (they are simply not in the data).
2. :func:`judge_push`, a pure function over plain data: the requirements, the pushing user and account, the facts
   of the pushed file, the earlier versions and (optionally) the library's verdict under the feed policy. It
   returns the findings of both of nuget.org's stages: the fast one (nothing stored yet; nuget.org's 400 texts
   exactly) and the full one (unauthorized certificate, author countersignature, signature kinds, the library's
   NU findings), plus the warnings (signed-to-unsigned transition, for ``X-NuGet-Warning``).
3. Thin database wrappers: :func:`requirements_for_push` / :func:`judge` read the facts, and the required signer
   is shown and changed here (:func:`show_signer`, :func:`set_signer`): owners and organization admins only, and
   the signer must be a current owner (nuget.org checks this only in its UI).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from nuseal.codes import IssueCode
from nuseal.findings import Finding, Severity
from nuseal.server.db.models import Account, PackageRegistration, PackageVersion, VersionStatus
from nuseal.server.services import audit, required_signers, row_locks
from nuseal.server.services.accounts import find_account
from nuseal.server.services.certificates import fingerprints_by_account
from nuseal.server.services.context import ServiceContext
from nuseal.server.services.errors import InvalidInputError
from nuseal.server.services.packages import find_registration
from nuseal.server.services.permissions import Action, Actor, Principal, authorize
from nuseal.verify.result import PackageVerdict
from nuseal.versioning import NuGetVersion

ANY: Final = required_signers.ANY

# --- nuget.org's texts (Strings.resx / ValidationIssueExtensions, spec §A.5-§A.6), never reworded -------------------

READ_MORE: Final = "[Read more...](https://aka.ms/nuget-signed-ref)"
#: Fast stage: unsigned push while signing is required (``UploadPackage_PackageIsNotSigned``).
MUST_BE_SIGNED: Final = "This package must be signed with a registered certificate."
#: Fast stage: signed push, the current user can fix it (``..._CurrentUserCanManageCertificates``).
SIGNED_CURRENT_USER_MUST_REGISTER: Final = (
    "The package was signed. You must register the signing certificate to publish signed packages."
)
#: Fast stage: signed push, another account must register (``..._RequiredSigner``).
SIGNED_OWNER_MUST_REGISTER: Final = (
    "The package was signed. The owner '{0}' must register the signing certificate to publish signed packages."
)
#: Warning (``UploadPackage_SignedToUnsignedTransition``).
SIGNED_TO_UNSIGNED: Final = (
    "The previous package version '{0}' is author signed but the uploaded package is unsigned. To avoid this "
    "warning, sign the package before uploading."
)
#: Full stage (``ValidationIssueCode`` texts).
NOT_SIGNED_ISSUE: Final = f"{MUST_BE_SIGNED} {READ_MORE}"
UNAUTHORIZED_CERTIFICATE: Final = (
    "The package was signed, but the signing certificate (SHA-256 thumbprint {0}) is not associated with your "
    "account. You must register this certificate to publish signed packages. " + READ_MORE
)
AUTHOR_COUNTERSIGNATURES: Final = "Author countersignatures are not supported."
ONLY_AUTHOR_SIGNATURES: Final = (
    "Signed packages must only have an author signature. Other signature types are not supported."
)
VERIFICATION_FAILED: Final = "The package signature could not be verified."

#: What the required signer means now (``RequiredSigner_*``, shown when it is changed).
OWNER_HAS_CERTIFICATE: Final = (
    "'{0}' currently has at least one certificate, which means future package submissions must be signed."
)
OWNER_HAS_NO_CERTIFICATE: Final = (
    "'{0}' currently has no certificate, which means future package submissions must be unsigned."
)
ANY_MIXED: Final = (
    "At least one package owner has no certificate while at least one other package owner has at least one "
    "certificate, which means future package submissions may be unsigned or signed with any certificate "
    "registered to any owner."
)
ANY_SIGNED: Final = (
    "All package owners have at least one certificate, which means future package submissions must be signed."
)
#: nuget.org's ``RequiredSigner_AnyWithUnsignedResult`` repeats ANY_SIGNED (a resource bug, spec §A.5); this is
#: what it was meant to say.
ANY_UNSIGNED: Final = "No package owner has a certificate, which means future package submissions must be unsigned."


# --- 1. the three functions over plain data -----------------------------------------------------------------------


@dataclass(frozen=True)
class AccountCertificates:
    """An account (user or organization) and the SHA-256 fingerprints registered to it (lower-case hex)."""

    name: str
    certificates: frozenset[str] = frozenset()

    @property
    def has_any(self) -> bool:
        return bool(self.certificates)

    def can_use(self, sha256: str) -> bool:
        return sha256.lower() in self.certificates  # nuget.org: OrdinalIgnoreCase


@dataclass(frozen=True)
class SigningRequirements:
    """The facts nuget.org's functions look at: the owners and the required signer (None = "Any")."""

    owners: tuple[AccountCertificates, ...]
    required_signer: AccountCertificates | None = None

    def is_owner(self, name: str) -> bool:
        return any(owner.name.lower() == name.lower() for owner in self.owners)


def is_signing_allowed(requirements: SigningRequirements) -> bool:
    """``IsSigningAllowed``: the signer has a certificate; with "Any", *some* owner has one."""
    if requirements.required_signer is None:
        return any(owner.has_any for owner in requirements.owners)
    return requirements.required_signer.has_any


def is_signing_required(requirements: SigningRequirements) -> bool:
    """``IsSigningRequired``: the signer has a certificate; with "Any", *every* owner has one."""
    if requirements.required_signer is None:
        return all(owner.has_any for owner in requirements.owners)
    return requirements.required_signer.has_any


def is_acceptable_signing_certificate(requirements: SigningRequirements, sha256: str) -> bool:
    """``IsAcceptableSigningCertificate``: the signer registered it; with "Any", *some* owner did."""
    if not sha256.strip():
        raise ValueError("a certificate fingerprint is required")
    if requirements.required_signer is None:
        return any(owner.can_use(sha256) for owner in requirements.owners)
    return requirements.required_signer.can_use(sha256)


class SigningPolicy(str, enum.Enum):
    """What the three functions mean for the next push."""

    REQUIRED = "required"  # must be signed with an acceptable certificate
    ALLOWED = "allowed"  # may be unsigned, or signed with an acceptable certificate
    NOT_ALLOWED = "not allowed"  # must be unsigned


def signing_policy(requirements: SigningRequirements) -> SigningPolicy:
    if is_signing_required(requirements):
        return SigningPolicy.REQUIRED
    return SigningPolicy.ALLOWED if is_signing_allowed(requirements) else SigningPolicy.NOT_ALLOWED


def explain(requirements: SigningRequirements) -> str:
    """nuget.org's sentence for the current required signer (the one its UI shows when the signer changes)."""
    signer = requirements.required_signer
    if signer is not None:
        return (OWNER_HAS_CERTIFICATE if signer.has_any else OWNER_HAS_NO_CERTIFICATE).format(signer.name)
    if is_signing_required(requirements):
        return ANY_SIGNED
    return ANY_MIXED if is_signing_allowed(requirements) else ANY_UNSIGNED


# --- 2. judging a push over plain data -----------------------------------------------------------------------------


class PrimarySignature(str, enum.Enum):
    """The pushed file's primary signature, as far as reading it (not verifying it) tells."""

    NONE = "none"  # no .signature.p7s entry
    AUTHOR = "author"
    REPOSITORY = "repository"
    UNKNOWN = "unknown"  # a signature with neither commitment type
    UNREADABLE = "unreadable"  # a .signature.p7s entry that could not be read as a signature


@dataclass(frozen=True)
class PushedFile:
    """The facts of a pushed file the rules need (read with the library; see ``push_checks.parse``)."""

    version: str
    signed: bool  # NuGet's IsSigned: the archive has a .signature.p7s entry (all the fast stage looks at)
    primary: PrimarySignature = PrimarySignature.NONE
    author_certificate: str | None = None  # SHA-256 (hex) of the author primary signature's certificate
    author_countersignature: bool = False
    #: Why the signature could not be read (``primary`` UNREADABLE), as the library reports it.
    problem: Finding | None = None


@dataclass(frozen=True)
class Pusher:
    """Who pushes: the user holding the API key and the account the key acts for (nuget.org's ``currentUser``
    and ``owner``)."""

    user: str
    account: str


@dataclass(frozen=True)
class EarlierVersion:
    """A version already on the feed, as the signed-to-unsigned warning needs it."""

    version: str
    available: bool
    author_certificate: str | None  # set when the version is author-signed


@dataclass(frozen=True)
class PushJudgement:
    """Findings of the fast stage (before anything is stored) and of the full stage, and the warnings."""

    fast: tuple[Finding, ...]
    full: tuple[Finding, ...] = ()
    warnings: tuple[Finding, ...] = ()
    #: True when the full stage had the library's verdict (signed files); False: only the signer rules ran.
    verified: bool = False

    @property
    def findings(self) -> tuple[Finding, ...]:
        return self.fast + self.full

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.is_error)

    @property
    def accepted(self) -> bool:
        return not self.errors

    @property
    def message(self) -> str | None:
        """The text a refused push answers with (the first error), None when accepted."""
        errors = self.errors
        return errors[0].message if errors else None

    def to_dict(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "message": self.message, "verified": self.verified,
                "fast": [f.to_dict() for f in self.fast], "full": [f.to_dict() for f in self.full],
                "warnings": [f.to_dict() for f in self.warnings]}  # fmt: skip


def _error(code: IssueCode, message: str, subject: str | None = None) -> Finding:
    return Finding(code, Severity.ERROR, message, "package", subject)


def fast_checks(requirements: SigningRequirements, pushed: PushedFile, pusher: Pusher) -> tuple[Finding, ...]:
    """nuget.org's ``ValidateSignatureFilePresenceAsync``: only whether a signature file is present."""
    if not pushed.signed:
        if is_signing_required(requirements):
            return (_error(IssueCode.PACKAGE_IS_NOT_SIGNED, MUST_BE_SIGNED),)
        return ()
    if is_signing_allowed(requirements):
        return ()
    signer = requirements.required_signer
    if signer is not None:
        fixable = signer.name.lower() == pusher.user.lower()
        must_register = signer.name
    else:
        # Any owner could register one; nuget.org names the current user or the account pushed for, both of
        # which the pusher can act for.
        fixable = requirements.is_owner(pusher.user)
        must_register = pusher.account
    message = SIGNED_CURRENT_USER_MUST_REGISTER if fixable else SIGNED_OWNER_MUST_REGISTER.format(must_register)
    return (_error(IssueCode.PACKAGE_SHOULD_NOT_BE_SIGNED, message),)


def transition_warnings(pushed: PushedFile, earlier: Iterable[EarlierVersion]) -> tuple[Finding, ...]:
    """``CheckForUnsignedPushAfterAuthorSignedAsync``: an unsigned push whose highest available predecessor is
    author-signed."""
    if pushed.signed:
        return ()
    version = NuGetVersion.parse(pushed.version)
    below = [(NuGetVersion.parse(e.version), e) for e in earlier if e.available]
    below = [(v, e) for v, e in below if v < version]
    if not below:
        return ()
    previous_version, previous = max(below, key=lambda pair: pair[0])
    if previous.author_certificate is None:
        return ()
    message = SIGNED_TO_UNSIGNED.format(previous_version.normalized)
    return (Finding(IssueCode.SIGNED_TO_UNSIGNED_TRANSITION, Severity.WARNING, message, "package",
                    previous_version.normalized),)  # fmt: skip


def _library_findings(verdict: PackageVerdict, primary: PrimarySignature) -> tuple[list[Finding], list[Finding]]:
    """The verdict's errors and warnings that belong in a push judgement."""
    errors = list(verdict.errors)
    if verdict.error_finding is not None and verdict.error_finding not in errors:
        errors.insert(0, verdict.error_finding)
    if primary is PrimarySignature.UNKNOWN:  # reported as OnlyAuthorSignaturesSupported instead
        errors = [f for f in errors if f.code is not IssueCode.NO_VERIFIABLE_SIGNATURE]
    elif not verdict.valid and not errors:
        errors.append(_error(IssueCode.VERIFICATION_FAILED, VERIFICATION_FAILED))
    return errors, list(verdict.warnings)


def full_checks(
    requirements: SigningRequirements, pushed: PushedFile, verdict: PackageVerdict | None
) -> tuple[tuple[Finding, ...], tuple[Finding, ...]]:
    """nuget.org's ProcessSignature decisions (§B.2) as (errors, warnings). A repository primary signature counts
    as unsigned: a feed strips foreign repository signatures before judging (and signs itself, issue 11)."""
    if pushed.primary in (PrimarySignature.NONE, PrimarySignature.REPOSITORY):
        if is_signing_required(requirements):
            return (_error(IssueCode.PACKAGE_IS_NOT_SIGNED, NOT_SIGNED_ISSUE),), ()
        return (), ()
    errors: list[Finding] = []
    warnings: list[Finding] = []
    if pushed.primary is PrimarySignature.UNREADABLE and pushed.problem is not None and verdict is None:
        errors.append(pushed.problem)
    if pushed.author_countersignature:
        errors.append(_error(IssueCode.AUTHOR_COUNTER_SIGNATURES_NOT_SUPPORTED, AUTHOR_COUNTERSIGNATURES))
    if pushed.primary is PrimarySignature.UNKNOWN:
        errors.append(_error(IssueCode.ONLY_AUTHOR_SIGNATURES_SUPPORTED, ONLY_AUTHOR_SIGNATURES))
    certificate = pushed.author_certificate
    acceptable = not certificate or is_acceptable_signing_certificate(requirements, certificate)
    if pushed.primary is PrimarySignature.AUTHOR and certificate and not acceptable:
        errors.append(_error(IssueCode.PACKAGE_IS_SIGNED_WITH_UNAUTHORIZED_CERTIFICATE,
                             UNAUTHORIZED_CERTIFICATE.format(certificate.lower()), certificate.lower()))
    if verdict is not None:
        library_errors, library_warnings = _library_findings(verdict, pushed.primary)
        errors.extend(library_errors)
        warnings.extend(library_warnings)
    return tuple(errors), tuple(warnings)


def judge_push(
    requirements: SigningRequirements,
    pushed: PushedFile,
    pusher: Pusher,
    earlier: Sequence[EarlierVersion] = (),
    verdict: PackageVerdict | None = None,
) -> PushJudgement:
    """Both stages of a push: the fast one, then (when it passes) the full one and the warnings.

    ``verdict`` is the library's verdict on the file under the feed's push policy (``feed_push_setup`` without a
    fingerprint allow list: the signer rules here decide which certificates are acceptable, with nuget.org's
    message); None when the file has not been verified (yet): then only the signer rules of the full stage run.
    """
    fast = fast_checks(requirements, pushed, pusher)
    if fast:
        return PushJudgement(fast=fast)
    errors, library_warnings = full_checks(requirements, pushed, verdict)
    verified = verdict is not None and pushed.primary not in (PrimarySignature.NONE, PrimarySignature.REPOSITORY)
    return PushJudgement(fast=(), full=errors, warnings=transition_warnings(pushed, earlier) + library_warnings,
                         verified=verified)  # fmt: skip


# --- 3. the database wrappers ----------------------------------------------------------------------------------


def requirements_of(session: Session, registration: PackageRegistration) -> SigningRequirements:
    """The current owners' and required signer's certificates of a registration."""
    owners = list(registration.owners)
    signer = required_signers.signer_of(session, registration)
    accounts = owners + ([signer] if signer is not None and signer not in owners else [])
    fingerprints = fingerprints_by_account(session, accounts)
    return SigningRequirements(
        owners=tuple(AccountCertificates(o.name, fingerprints[o.id]) for o in owners),
        required_signer=None if signer is None else AccountCertificates(signer.name, fingerprints[signer.id]),
    )


def _earlier_versions(session: Session, registration: PackageRegistration) -> tuple[EarlierVersion, ...]:
    rows = session.execute(
        select(PackageVersion.version, PackageVersion.status, PackageVersion.author_cert_sha256)
        .where(PackageVersion.registration_id == registration.id)
    )
    available = VersionStatus.AVAILABLE.value
    return tuple(EarlierVersion(version, status == available, cert) for version, status, cert in rows)


def requirements_for_push(
    session: Session, package_id: str, account: Account
) -> tuple[SigningRequirements, tuple[EarlierVersion, ...], bool]:
    """The requirements a push of ``package_id`` for ``account`` meets, the earlier versions, and whether the id is
    new. A new id will be owned by the account pushed for, with no required signer (nuget.org creates the
    registration first, then runs the same checks)."""
    registration = session.scalars(
        select(PackageRegistration).where(PackageRegistration.lower_id == package_id.lower())
    ).one_or_none()
    if registration is None:
        fingerprints = fingerprints_by_account(session, [account])
        return SigningRequirements(owners=(AccountCertificates(account.name, fingerprints[account.id]),)), (), True
    return requirements_of(session, registration), _earlier_versions(session, registration), False


def pusher_of(session: Session, principal: Principal) -> tuple[Pusher, Account]:
    user, account = session.get(Account, principal.user_id), session.get(Account, principal.account_id)
    if user is None or account is None:
        raise InvalidInputError("the pushing account no longer exists")
    return Pusher(user.name, account.name), account


def judge_in_session(
    session: Session,
    principal: Principal,
    package_id: str,
    pushed: PushedFile,
    verdict: PackageVerdict | None = None,
    *,
    lock: bool = False,
) -> tuple[PushJudgement, SigningRequirements]:
    """:func:`judge_push` on the facts ``session`` reads now: the pusher, the requirements and the earlier
    versions. With ``lock`` (a push's own transaction, or a validation job's), the accounts whose certificates
    count are share-locked first (:mod:`.row_locks`; the caller has share-locked the registration, if any), so
    the judgement and the version it lets in commit before any concurrent change to those facts."""
    pusher, account = pusher_of(session, principal)
    if lock:
        registration = session.scalars(
            select(PackageRegistration).where(PackageRegistration.lower_id == package_id.lower())
        ).one_or_none()
        if registration is None:
            row_locks.share_accounts(session, [account.id])
        else:
            signer = required_signers.signer_of(session, registration)
            row_locks.share_accounts(session, [o.id for o in registration.owners]
                                     + ([signer.id] if signer is not None else []))  # fmt: skip
    requirements, earlier, _new = requirements_for_push(session, package_id, account)
    return judge_push(requirements, pushed, pusher, earlier, verdict), requirements


def judge(
    ctx: ServiceContext,
    principal: Principal,
    package_id: str,
    pushed: PushedFile,
    verdict: PackageVerdict | None = None,
) -> PushJudgement:
    """:func:`judge_push` on the database's current facts (read in one transaction; nothing is written)."""
    with ctx.db.reading() as session:
        return judge_in_session(session, principal, package_id, pushed, verdict)[0]


# --- the required signer ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OwnerCertificates:
    name: str
    certificates: int


@dataclass(frozen=True)
class SignerState:
    """A package's required signer and what it means now."""

    package_id: str
    required_signer: str | None  # None = "Any"
    owners: tuple[OwnerCertificates, ...]
    policy: SigningPolicy
    message: str
    requirements: SigningRequirements = field(repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"package": self.package_id, "required_signer": self.required_signer or ANY,
                "signing": self.policy.value, "message": self.message,
                "owners": [{"name": o.name, "certificates": o.certificates} for o in self.owners]}  # fmt: skip


def _state(session: Session, registration: PackageRegistration) -> SignerState:
    requirements = requirements_of(session, registration)
    signer = requirements.required_signer
    return SignerState(
        package_id=registration.package_id,
        required_signer=None if signer is None else signer.name,
        owners=tuple(OwnerCertificates(o.name, len(o.certificates)) for o in requirements.owners),
        policy=signing_policy(requirements),
        message=explain(requirements),
        requirements=requirements,
    )


def show_signer(ctx: ServiceContext, actor: Actor, package_id: str) -> SignerState:
    with ctx.db.reading() as session:
        registration = find_registration(session, package_id)
        authorize(session, actor, Action.VIEW_SIGNER, package_id=registration.package_id)
        return _state(session, registration)


def parse_signer(value: str | None) -> str | None:
    """An account name, or None for "Any" (``Any``, any case, or empty)."""
    if value is None or not value.strip() or value.strip().lower() == ANY.lower():
        return None
    return value.strip()


def set_signer(ctx: ServiceContext, actor: Actor, package_id: str, signer: str | None) -> tuple[SignerState, bool]:
    """Make ``signer`` (an owner's name, or None / "Any") the required signer; returns the new state and whether it
    changed. Only owners and organization admins may (not collaborators); the signer must be a current owner."""
    name = parse_signer(signer)
    at = ctx.now()
    with ctx.db.transaction() as session:
        registration = find_registration(session, package_id)
        row_locks.lock_registration(session, registration)  # pushes judging under the old signer finish first
        authorize(session, actor, Action.MANAGE_SIGNER, package_id=registration.package_id)
        account = None if name is None else find_account(session, name)
        owners = list(registration.owners)
        if account is not None and account not in owners:
            raise InvalidInputError(
                f"'{account.name}' is not an owner of '{registration.package_id}': the required signer must be "
                f"one of its owners ({', '.join(o.name for o in owners)}) or {ANY}"
            )
        current = required_signers.signer_of(session, registration)
        if current == account:
            return _state(session, registration), False
        required_signers.store(session, registration, account)
        state = _state(session, registration)
        audit.record(session, actor, audit.SIGNER_SET, registration.package_id, at=at,
                     before={"required_signer": current.name if current is not None else ANY},
                     after={"required_signer": state.required_signer or ANY, "signing": state.policy.value})
    return state, True
