"""Small value types shared by every layer: signature kinds, hash algorithm names, certificate summaries.

They live at the bottom of the layer stack so that the zip, CMS and X.509 layers can use them without
importing the verifier.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any


class SignatureKind(str, Enum):
    """What a signature claims to be, from its commitment-type-indication (spec §4.3)."""

    AUTHOR = "author"
    REPOSITORY = "repository"
    UNKNOWN = "unknown"


class RevocationMode(str, Enum):
    """``NUGET_CERT_REVOCATION_MODE``: check revocation over the network, or only with what is at hand."""

    ONLINE = "online"
    OFFLINE = "offline"


class HashAlgorithmName(str, Enum):
    """The fingerprint / signature hash algorithms NuGet accepts, spelled as NuGet spells them."""

    SHA256 = "SHA256"
    SHA384 = "SHA384"
    SHA512 = "SHA512"

    @property
    def oid(self) -> str:
        return {"SHA256": "2.16.840.1.101.3.4.2.1", "SHA384": "2.16.840.1.101.3.4.2.2",
                "SHA512": "2.16.840.1.101.3.4.2.3"}[self.value]

    @property
    def hashlib_name(self) -> str:
        return self.value.lower()

    @classmethod
    def parse(cls, text: str) -> HashAlgorithmName:
        """Case-insensitive parse (``sha256`` → SHA256); ``ValueError`` naming the value otherwise."""
        for member in cls:
            if member.value == text.strip().upper():
                return member
        raise ValueError(f"unsupported hash algorithm {text!r}: use SHA256, SHA384 or SHA512")


@dataclass(frozen=True)
class CertificateSummary:
    """What ``dotnet nuget verify`` prints about a certificate."""

    subject: str
    issuer: str
    sha1: str  # uppercase hex, as NuGet prints it
    sha256: str  # uppercase hex, as NuGet prints it
    not_before: datetime
    not_after: datetime
    serial_number: str

    def to_dict(self) -> dict[str, Any]:
        return {"sha256": self.sha256.lower(), "sha1": self.sha1.lower(), "subject": self.subject,
                "issuer": self.issuer, "not_before": self.not_before.isoformat(),
                "not_after": self.not_after.isoformat(), "serial_number": self.serial_number}
