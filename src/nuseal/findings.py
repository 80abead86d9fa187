"""The one finding type: a coded observation with a severity, used by every part of nuseal (STYLE §7.4).

Verification issues, sign-time warnings, trusted-signer configuration warnings (NU3040), install issues and (with the
feed server) push rejections are all ``Finding`` objects, so one renderer and one JSON shape serve them all.

``code`` is a ``NuCode`` when NuGet has a log code for the observation, otherwise an ``IssueCode`` (nuseal's names,
following nuget.org's ``ValidationIssueCode`` where it has one). ``severity`` is decided by whoever applies a policy
(the verifier from ``VerificationPolicy``, the signer for sign-time rules), never by the check that saw the problem.
``target`` says what the finding is about and ``subject`` pins it down (a certificate fingerprint, a zip entry, a
package identity).
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from nuseal.codes import IssueCode, NuCode
from nuseal.record import Struct

__all__ = ["Finding", "IssueCode", "NuCode", "Severity", "Target"]


class Severity(str, Enum):
    """Level of a finding, as NuGet's ``LogLevel`` names it in output."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class Target:
    """The values ``Finding.target`` takes (plain strings, so the JSON stays a string)."""

    PACKAGE = "package"
    PRIMARY = "primary"
    COUNTERSIGNATURE = "countersignature"
    PRIMARY_TIMESTAMP = "primary-timestamp"
    COUNTERSIGNATURE_TIMESTAMP = "countersignature-timestamp"
    #: A nuget.config setting (trusted signers), not a package.
    CONFIG = "config"


class Finding(Struct, frozen=True):
    """One coded observation. Frozen; ``nuseal.record.replace`` derives a re-worded or re-levelled copy."""

    code: NuCode | IssueCode
    severity: Severity
    message: str
    target: str = Target.PACKAGE
    subject: str | None = None

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def to_dict(self) -> dict[str, Any]:
        """``{"code", "severity", "message", "target", "subject"}``; ``code`` is the code's string value."""
        return {"code": self.code.value, "severity": self.severity.value, "message": self.message,
                "target": self.target, "subject": self.subject}

    def __str__(self) -> str:
        return f"{self.code.value}: {self.message}"
