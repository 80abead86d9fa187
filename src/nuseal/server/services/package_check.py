"""The push dry run (``POST /api/v1/packages/check``): what a push of this file would get now, without storing it.

The file is read with the library (:mod:`nuseal.package`, :mod:`nuseal.cms`), verified under the feed's push policy
(:func:`nuseal.trust.policy_builder.feed_push_setup`: the feed's trust roots and revocation mode, no fingerprint
allow list) and judged by :func:`nuseal.server.services.signing_rules.judge_push`, the same function the push uses.
Nothing is written: not the file, not a row, not an audit event.

Merge note: :func:`read_facts` is the minimal package reading the judgement needs; the push service (feedapi) reads
pushed packages too, and the two should share one reader.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from sqlalchemy import select

from nuseal.cms.parse import load_primary_signature
from nuseal.codes import IssueCode, NuCode
from nuseal.enums import SignatureKind
from nuseal.errors import NusealError, SignatureEntryError, SignatureFormatError
from nuseal.findings import Finding, Severity
from nuseal.package import nuspec, zipformat
from nuseal.package.nuspec import PackageIdentity
from nuseal.server.db.models import PackageRegistration, PackageVersion
from nuseal.server.services.context import ServiceContext
from nuseal.server.services.errors import InvalidInputError
from nuseal.server.services.packages import lower_version
from nuseal.server.services.permissions import Action, Principal, authorize
from nuseal.server.services.signing_rules import (
    PrimarySignature,
    PushedFile,
    PushJudgement,
    SigningPolicy,
    SigningRequirements,
    explain,
    judge_push,
    pusher_of,
    requirements_for_push,
    signing_policy,
)
from nuseal.trust.policy_builder import feed_push_setup
from nuseal.verify.engine import verify_package
from nuseal.verify.result import PackageVerdict
from nuseal.verify.setup import VerificationSetup
from nuseal.x509 import certs
from nuseal.x509.roots import trust_store_from_files

#: nuget.org's ``UploadPackage_IdVersionConflict``.
ID_VERSION_CONFLICT: Final = "A package with ID '{0}' and version '{1}' already exists and cannot be modified."

_KINDS: Final = {
    SignatureKind.AUTHOR: PrimarySignature.AUTHOR,
    SignatureKind.REPOSITORY: PrimarySignature.REPOSITORY,
    SignatureKind.UNKNOWN: PrimarySignature.UNKNOWN,
}


def read_facts(path: Path, shown_as: str | None = None) -> tuple[PackageIdentity, PushedFile]:
    """The identity and signature facts of a package file; :class:`InvalidInputError` when it is not a package.

    ``shown_as`` replaces the (temporary) path in messages with the name the client uploaded.
    """
    name = shown_as or path.name
    try:
        with path.open("rb") as f:
            layout = zipformat.read_layout(f)
            signed = zipformat.has_signature_entry(layout)
            identity = nuspec.read_identity(path)
            if not signed:
                return identity, PushedFile(identity.version, signed=False)
            try:
                entry = zipformat.find_signature_entry(f, layout)
                signature = load_primary_signature(zipformat.read_signature_bytes(f, entry))
            except (SignatureEntryError, SignatureFormatError) as exc:
                problem = Finding(exc.code or NuCode.NU3003, Severity.ERROR, exc.message, "primary")
                return identity, PushedFile(identity.version, True, PrimarySignature.UNREADABLE, problem=problem)
    except NusealError as exc:
        raise InvalidInputError(f"'{name}' is not a valid package: {exc.message.replace(str(path), name)}") from None
    except OSError as exc:
        raise InvalidInputError(f"'{name}' cannot be read: {exc.strerror}") from None
    certificate = signature.signer_certificate
    author_certificate = (
        certs.fingerprint(certificate).lower()
        if certificate is not None and signature.kind is SignatureKind.AUTHOR else None
    )  # fmt: skip
    return identity, PushedFile(
        identity.version, True, _KINDS[signature.kind], author_certificate,
        author_countersignature=SignatureKind.AUTHOR in signature.countersignature_kinds,
    )  # fmt: skip


def verification_setup(ctx: ServiceContext) -> VerificationSetup:
    """The feed's push verification: nuget.org's author settings, the configured roots and revocation mode."""
    settings = ctx.settings
    store = trust_store_from_files(settings.trust_roots, settings.timestamp_roots)
    return feed_push_setup(store, revocation_mode=settings.revocation_mode)


def verify(ctx: ServiceContext, path: Path) -> PackageVerdict:
    """The library's verdict on a pushed file as of now (online revocation with bounded timeouts, or offline)."""
    setup = verification_setup(ctx)
    with setup.open() as trust:
        return verify_package(path, policy=setup.policy, trust=trust, now=ctx.now())


@dataclass(frozen=True)
class CheckReport:
    """What a push of the file would get: the status, every finding and the warnings, and the signing rules."""

    package_id: str
    version: str
    status: int  # the push's answer: 201 accepted, 400 refused (fast stage or full stage), 409 duplicate
    stage: str | None  # where it would be refused: "conflict", "fast", "full"; None when accepted
    findings: tuple[Finding, ...]
    warnings: tuple[Finding, ...]
    new_package: bool
    requirements: SigningRequirements
    judgement: PushJudgement | None

    @property
    def accepted(self) -> bool:
        return self.stage is None

    @property
    def policy(self) -> SigningPolicy:
        return signing_policy(self.requirements)

    def to_dict(self) -> dict[str, Any]:
        signer = self.requirements.required_signer
        return {
            "id": self.package_id, "version": self.version, "accepted": self.accepted, "status": self.status,
            "stage": self.stage, "message": self.findings[0].message if self.findings else None,
            "findings": [f.to_dict() for f in self.findings], "warnings": [f.to_dict() for f in self.warnings],
            "verified": bool(self.judgement and self.judgement.verified),
            "signing": {"new_package": self.new_package, "required_signer": signer.name if signer else "Any",
                        "policy": self.policy.value, "message": explain(self.requirements)},
        }  # fmt: skip


def _needs_verification(pushed: PushedFile) -> bool:
    return pushed.primary in (PrimarySignature.AUTHOR, PrimarySignature.UNKNOWN, PrimarySignature.UNREADABLE)


def check_package(ctx: ServiceContext, principal: Principal, path: Path, *, shown_as: str | None = None) -> CheckReport:
    """Judge ``path`` as a push by ``principal`` would be judged, storing nothing.

    Raises what the push would raise before judging: :class:`InvalidInputError` for a file that is not a package,
    ``AccessDenied`` when the key may not push this id.
    """
    identity, pushed = read_facts(path, shown_as)
    with ctx.db.reading() as session:
        registration = session.scalars(
            select(PackageRegistration).where(PackageRegistration.lower_id == identity.id.lower())
        ).one_or_none()
        action = Action.PUSH_NEW_ID if registration is None else Action.PUSH_NEW_VERSION
        authorize(session, principal, action, package_id=identity.id)
        pusher, account = pusher_of(session, principal)
        requirements, earlier, new = requirements_for_push(session, identity.id, account)
        duplicate = registration is not None and session.scalars(
            select(PackageVersion.id).where(PackageVersion.registration_id == registration.id,
                                            PackageVersion.lower_version == lower_version(identity.version))
        ).first() is not None  # fmt: skip
    package_id = registration.package_id if registration is not None else identity.id
    if duplicate:
        conflict = Finding(IssueCode.PACKAGE_ALREADY_EXISTS, Severity.ERROR,
                           ID_VERSION_CONFLICT.format(package_id, identity.version), "package")  # fmt: skip
        return CheckReport(package_id, identity.version, 409, "conflict", (conflict,), (), new, requirements, None)
    judgement = judge_push(requirements, pushed, pusher, earlier)
    if judgement.fast:
        return CheckReport(package_id, identity.version, 400, "fast", judgement.fast, (), new, requirements,
                           judgement)  # fmt: skip
    if _needs_verification(pushed):
        judgement = judge_push(requirements, pushed, pusher, earlier, verify(ctx, path))
    stage = "full" if judgement.errors else None
    return CheckReport(package_id, identity.version, 400 if stage else 201, stage, judgement.errors,
                       judgement.warnings, new, requirements, judgement)  # fmt: skip
