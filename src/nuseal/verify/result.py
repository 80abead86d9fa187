"""Structured verdicts: facts plus findings, judgements derived (spec §6.3; STYLE §7.4).

Nothing here prints. ``render/`` turns a ``PackageVerdict`` into NuGet-like text or the ``--json`` document.
"""

from __future__ import annotations

from datetime import datetime
from enum import IntEnum
from typing import Any

from nuseal.codes import IssueCode
from nuseal.enums import SignatureKind
from nuseal.findings import Finding, Severity
from nuseal.record import Struct, field
from nuseal.x509.summary import CertificateSummary

# Finding and Severity are nuseal.findings' (one finding type for all of nuseal), re-exported for convenience.
__all__ = ["CertificateSummary", "Finding", "PackageVerdict", "Severity", "SignatureVerdict", "Status",
           "TimestampSummary", "issue_dict"]


class Status(IntEnum):
    """NuGet ``SignatureVerificationStatus``; a lower value is worse, so ``min`` combines statuses."""

    UNKNOWN = 0
    SUSPECT = 1
    DISALLOWED = 2
    VALID = 3


class TimestampSummary(Struct, frozen=True):
    """A timestamp as verified: its time, accuracy window and TSA certificate."""

    time: datetime
    lower_limit: datetime
    upper_limit: datetime
    certificate: CertificateSummary | None
    hash_algorithm: str
    valid: bool
    chain: tuple[CertificateSummary, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"time": self.time.isoformat(), "lower_limit": self.lower_limit.isoformat(),
                "upper_limit": self.upper_limit.isoformat(), "hash_algorithm": self.hash_algorithm,
                "valid": self.valid,
                "certificate": self.certificate.to_dict() if self.certificate else None,
                "chain": [c.to_dict() for c in self.chain]}


class SignatureVerdict(Struct, frozen=True):
    """One signature (primary or repository countersignature) with what was checked about it."""

    kind: SignatureKind
    placement: str  # "primary" | "countersignature"
    certificate: CertificateSummary | None
    hash_algorithm: str
    timestamps: tuple[TimestampSummary, ...]
    service_index_url: str | None
    owners: tuple[str, ...]
    status: Status
    chain: tuple[CertificateSummary, ...] = ()
    findings: tuple[Finding, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "placement": self.placement,
                "certificate": self.certificate.to_dict() if self.certificate else None,
                "hash_algorithm": self.hash_algorithm,
                "timestamps": [t.to_dict() for t in self.timestamps],
                "service_index_url": self.service_index_url, "owners": list(self.owners),
                "status": self.status.name.lower(), "chain": [c.to_dict() for c in self.chain]}


class PackageVerdict(Struct, frozen=True):
    """The verdict on one package: valid iff at least one check ran and every status is Valid (spec §6.3)."""

    path: str
    package_id: str | None
    version: str | None
    signed: bool
    statuses: tuple[Status, ...]
    signatures: tuple[SignatureVerdict, ...] = ()
    findings: tuple[Finding, ...] = ()
    content_hash: str | None = None  # SHA-512 base64 of the unsigned package view (NuGet .nupkg.metadata)
    error: str | None = None  # set when the file could not be verified at all (not a zip, unreadable)
    #: What kind of failure ``error`` is: the file cannot be read, or the verifier failed on it (a bug).
    error_code: IssueCode = IssueCode.INVALID_PACKAGE_FILE
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return self.error is None and bool(self.statuses) and all(s is Status.VALID for s in self.statuses)

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.WARNING)

    @property
    def error_finding(self) -> Finding | None:
        """``error`` as a finding (for install and push reports), or None when the package was verified."""
        return Finding(self.error_code, Severity.ERROR, self.error) if self.error is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "id": self.package_id, "version": self.version, "valid": self.valid,
                "signed": self.signed, "content_hash": self.content_hash, "error": self.error,
                "error_code": self.error_code.value if self.error is not None else None,
                "signatures": [s.to_dict() for s in self.signatures],
                "issues": [issue_dict(f) for f in self.findings]}


def issue_dict(finding: Finding) -> dict[str, Any]:
    """A finding in the ``--json`` contract: ``code``, ``level`` and ``message`` (schema 1, kept for scripts), then
    ``severity`` (the same value as ``level``, the name ``Finding.to_dict`` uses), ``target`` and ``subject``."""
    data = finding.to_dict()
    return {"code": data["code"], "level": data["severity"], "message": data["message"], **data}
