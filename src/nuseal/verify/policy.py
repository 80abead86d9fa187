"""Verification policy as data (spec §6.2, §6.5).

``VerificationPolicy`` mirrors NuGet's ``SignedPackageVerifierSettings`` field for field, in snake_case,
with the three presets NuGet ships (accept, require, verify command). Callers change a preset with
``dataclasses.replace``. Allow lists (trusted signers, ``--certificate-fingerprint``, a feed's
RepositorySignatures) are data too: tuples of ``AllowListEntry`` inside an ``AllowList``.
Severity of a finding is decided here (``VerificationPolicy.severity_for``-style helpers in the engine read
these flags), never by the check that produced the finding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, Flag, auto

from nuseal.enums import HashAlgorithmName, RevocationMode, SignatureKind

__all__ = [
    "AllowList", "AllowListEntry", "CountersignatureBehavior", "HashAlgorithmName", "Placement", "RevocationMode",
    "SignatureKind", "VerificationPolicy",
]


class Placement(Flag):
    """Where a signer may sit for an allow-list entry to match it (NuGet ``SignaturePlacement``)."""

    PRIMARY = auto()
    COUNTERSIGNATURE = auto()
    ANY = PRIMARY | COUNTERSIGNATURE


class CountersignatureBehavior(str, Enum):
    """NuGet ``SignatureVerificationBehavior`` for the repository countersignature (spec §6.4 step 3)."""

    NEVER = "never"
    IF_EXISTS = "if-exists"
    IF_EXISTS_AND_IS_NECESSARY = "if-exists-and-is-necessary"
    ALWAYS = "always"


@dataclass(frozen=True)
class AllowListEntry:
    """One certificate that an allow list accepts (NuGet ``(Trusted)CertificateHashAllowListEntry``).

    ``fingerprint`` is hex as configured; matching is case-insensitive (spec §6.5), but the
    ``allow_untrusted_root`` lookup is NuGet's ordinal comparison against uppercase hex (spec §6.4) —
    see ``nuseal.verify.engine`` for how we treat that quirk.
    """

    fingerprint: str
    algorithm: HashAlgorithmName = HashAlgorithmName.SHA256
    targets: frozenset[SignatureKind] = frozenset({SignatureKind.AUTHOR, SignatureKind.REPOSITORY})
    placement: Placement = Placement.ANY
    owners: tuple[str, ...] = ()
    allow_untrusted_root: bool = False


@dataclass(frozen=True)
class AllowList:
    """An allow list plus how to report a miss (NuGet ``AllowListVerificationProvider``)."""

    entries: tuple[AllowListEntry, ...]
    require_non_empty: bool = False
    empty_message: str = ""
    no_match_message: str = ""
    #: When True a miss is always an error (the ``--certificate-fingerprint`` list of the verify command).
    #: When False, a miss is an error iff the policy does not allow untrusted signatures.
    name: str = "allow list"


@dataclass(frozen=True)
class VerificationPolicy:
    """NuGet's ``SignedPackageVerifierSettings`` (spec §6.2). Use a preset and ``dataclasses.replace``."""

    allow_unsigned: bool
    allow_illegal: bool
    allow_untrusted: bool
    allow_ignore_timestamp: bool
    allow_multiple_timestamps: bool
    allow_no_timestamp: bool
    allow_unknown_revocation: bool
    report_unknown_revocation: bool
    verification_targets: frozenset[SignatureKind] = frozenset(SignatureKind)
    signature_placement: Placement = Placement.ANY
    repository_countersignature: CountersignatureBehavior = CountersignatureBehavior.IF_EXISTS_AND_IS_NECESSARY
    revocation_mode: RevocationMode = RevocationMode.ONLINE
    #: Allow lists checked after integrity, in NuGet's provider order (trustedSigners, repository list,
    #: ``--certificate-fingerprint``). Each produces NU3034 on a miss.
    allow_lists: tuple[AllowList, ...] = ()
    #: Fingerprints (uppercase SHA-256 hex) whose untrusted root is accepted (trustedSigners allowUntrustedRoot).
    allow_untrusted_root_fingerprints: frozenset[str] = field(default_factory=frozenset)
    #: The message for NU3004 when unsigned packages are not allowed (restore rewords it, spec §6.3).
    unsigned_message: str = "The package is not signed."

    @classmethod
    def accept_mode(cls) -> VerificationPolicy:
        """NuGet's default client policy (``signatureValidationMode=accept``)."""
        return cls(
            allow_unsigned=True, allow_illegal=True, allow_untrusted=True, allow_ignore_timestamp=True,
            allow_multiple_timestamps=True, allow_no_timestamp=True, allow_unknown_revocation=True,
            report_unknown_revocation=False,
        )

    @classmethod
    def require_mode(cls) -> VerificationPolicy:
        """``signatureValidationMode=require``: only signed packages, chains must be trusted."""
        return cls(
            allow_unsigned=False, allow_illegal=False, allow_untrusted=False, allow_ignore_timestamp=True,
            allow_multiple_timestamps=True, allow_no_timestamp=True, allow_unknown_revocation=True,
            report_unknown_revocation=True,
        )

    @classmethod
    def verify_command(cls) -> VerificationPolicy:
        """What ``dotnet nuget verify`` uses: strictest, timestamps must be valid, countersignature always checked."""
        return cls(
            allow_unsigned=False, allow_illegal=False, allow_untrusted=False, allow_ignore_timestamp=False,
            allow_multiple_timestamps=True, allow_no_timestamp=True, allow_unknown_revocation=True,
            report_unknown_revocation=True, repository_countersignature=CountersignatureBehavior.IF_EXISTS,
        )
