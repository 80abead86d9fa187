"""The push dry run (``POST /api/v1/packages/check``): what a push of this file would get now, without storing it.

It runs the push's own checks (:func:`nuseal.server.services.push_checks.check_push`: parse, package checks,
access and conflicts, the signing rules' fast stage, verification under the feed policy, their full stage), the
one code path the push runs before persisting, and reports where a push would stop and why. Nothing is written:
not the file, not a row, not an audit event. (A real push judges the signer rules once more inside the
transaction that stores it: a governance change in between is the only way the two answers can differ.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nuseal.findings import Finding
from nuseal.server.services.context import ServiceContext
from nuseal.server.services.permissions import Principal
from nuseal.server.services.push_checks import PushCheck, Stage, check_push, reason_of
from nuseal.server.services.signing_rules import SigningPolicy, SigningRequirements, explain, signing_policy

#: The HTTP status a push would answer, by the stage it stops at (None: accepted).
STATUS: dict[Stage | None, int] = {None: 201, Stage.PACKAGE: 400, Stage.FAST: 400, Stage.FULL: 400,
                                   Stage.CONFLICT: 409}  # fmt: skip


@dataclass(frozen=True)
class CheckReport:
    """What a push of the file would get: the status, every finding and the warnings, and the signing rules."""

    package_id: str
    version: str
    stage: Stage | None  # where it would be refused; None when accepted
    findings: tuple[Finding, ...]
    warnings: tuple[Finding, ...]
    new_package: bool | None  # None when the package checks refused the file (the signing rules were not read)
    requirements: SigningRequirements | None
    verified: bool

    @classmethod
    def of(cls, check: PushCheck) -> CheckReport:
        access = check.access
        parsed = check.parsed
        return cls(
            package_id=access.package_id if access is not None else parsed.manifest.id,
            version=parsed.version.normalized, stage=check.stage, findings=check.findings, warnings=check.warnings,
            new_package=access.new_package if access is not None else None,
            requirements=access.requirements if access is not None else None,
            verified=check.judgement is not None and check.judgement.verified,
        )  # fmt: skip

    @property
    def status(self) -> int:
        return STATUS[self.stage]

    @property
    def accepted(self) -> bool:
        return self.stage is None

    @property
    def message(self) -> str | None:
        """The text a refused push answers with (NuGet clients show it), None when accepted."""
        return reason_of(self.findings) if self.stage is not None else None

    @property
    def policy(self) -> SigningPolicy | None:
        return signing_policy(self.requirements) if self.requirements is not None else None

    def to_dict(self) -> dict[str, Any]:
        signing = None
        if self.requirements is not None and self.policy is not None:
            signer = self.requirements.required_signer
            signing = {"new_package": self.new_package, "required_signer": signer.name if signer else "Any",
                       "policy": self.policy.value, "message": explain(self.requirements)}  # fmt: skip
        return {
            "id": self.package_id, "version": self.version, "accepted": self.accepted, "status": self.status,
            "stage": self.stage.value if self.stage is not None else None, "message": self.message,
            "findings": [f.to_dict() for f in self.findings], "warnings": [f.to_dict() for f in self.warnings],
            "verified": self.verified, "signing": signing,
        }  # fmt: skip


def check_package(ctx: ServiceContext, principal: Principal, path: Path) -> CheckReport:
    """Run the push's checks on ``path`` for ``principal``, storing nothing.

    Raises what the push raises before any check can report: ``PushRejected`` for a file that is not a
    package, ``AccessDenied`` when the key may not push this id.
    """
    return CheckReport.of(check_push(ctx, principal, path))
