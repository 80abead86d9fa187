"""The enums every layer shares: signature kinds, revocation modes, hash algorithm names.

They live at the bottom of the layer stack (with ``codes`` and ``findings``) so that the zip, CMS and X.509 layers,
the signer, the verifier and the server use one vocabulary without importing each other. Enum values double as
config and JSON strings (STYLE §7.5).
"""

from __future__ import annotations

from enum import Enum


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
