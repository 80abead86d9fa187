"""Verification policy as data (spec §6.2, §6.5).

``VerificationPolicy`` mirrors NuGet's ``SignedPackageVerifierSettings`` field for field, in snake_case,
with the three presets NuGet ships (accept, require, verify command) plus nuget.org's push settings
(``feed_push``). Callers change a preset with ``nuseal.record.replace``; ``nuseal.trust.policy_builder``
builds the policies the CLI and the server use. Every field changes some verdict
(``tests/unit/verify/test_policy_fields.py``).
Where trust comes from (root bundles, online or offline revocation) is not policy but the ``TrustContext``
(``nuseal.verify.setup``); NuGet's current settings have no revocation mode either.

Allow lists (trusted signers, ``--certificate-fingerprint``, a feed's RepositorySignatures, a feed's acceptable
push certificates) are data too: tuples of ``AllowListEntry`` inside an ``AllowList``. The engine derives the
severity of every finding from these flags, never from the check that produced the finding.
"""

from __future__ import annotations

from enum import Enum, Flag, auto

from nuseal.enums import HashAlgorithmName, SignatureKind
from nuseal.record import Struct, field

__all__ = [
    "AllowList", "AllowListEntry", "CountersignatureBehavior", "HashAlgorithmName", "Placement", "SignatureKind",
    "VerificationPolicy",
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


class AllowListEntry(Struct, frozen=True):
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


class AllowList(Struct, frozen=True):
    """An allow list plus how to report a miss (NuGet ``AllowListVerificationProvider``)."""

    entries: tuple[AllowListEntry, ...]
    require_non_empty: bool = False
    empty_message: str = ""
    no_match_message: str = ""
    #: Names the list (trustedSigners, repositorySignatures, --certificate-fingerprint, feed push). A miss is an
    #: error iff the policy does not allow untrusted signatures; an empty list is an error iff ``require_non_empty``.
    name: str = "allow list"


class VerificationPolicy(Struct, frozen=True):
    """NuGet's ``SignedPackageVerifierSettings`` (spec §6.2). Use a preset and ``nuseal.record.replace``."""

    allow_unsigned: bool
    allow_illegal: bool
    allow_untrusted: bool
    allow_ignore_timestamp: bool
    allow_multiple_timestamps: bool
    allow_no_timestamp: bool
    allow_unknown_revocation: bool
    report_unknown_revocation: bool
    #: Which primary signatures are verified, by kind (NuGet ``VerificationTarget``); the repository
    #: countersignature is verified only when ``REPOSITORY`` is a target.
    verification_targets: frozenset[SignatureKind] = frozenset(SignatureKind)
    #: Where verified signatures sit (NuGet ``SignaturePlacement``): the primary signature, the repository
    #: countersignature, or both. A package none of whose signatures is verified is invalid.
    signature_placement: Placement = Placement.ANY
    #: When the repository countersignature is verified (NuGet ``RepositoryCountersignatureVerificationBehavior``).
    repository_countersignature: CountersignatureBehavior = CountersignatureBehavior.IF_EXISTS_AND_IS_NECESSARY
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

    @classmethod
    def feed_push(cls) -> VerificationPolicy:
        """nuget.org's settings for an author-signed package pushed to a feed (server.md §B.3, "Author" column).

        The author primary signature alone is verified: a trusted chain, exactly one valid timestamp, unknown
        revocation reported as a warning; no countersignature (a feed strips foreign repository signatures before
        verifying). Unsigned packages are *not* allowed (NU3004, Disallowed), as in nuget.org's settings: whether
        an unsigned push is acceptable is the feed's decision from its signer rules (nuget.org:
        ``PackageIsNotSigned`` only when signing is required), made before or instead of calling the verifier on
        an unsigned package (``PackageVerdict.signed`` tells which case it is). A repository primary signature is
        not verified under this policy and is reported as ``NoVerifiableSignature``.
        """
        return cls(
            allow_unsigned=False, allow_illegal=False, allow_untrusted=False, allow_ignore_timestamp=False,
            allow_multiple_timestamps=False, allow_no_timestamp=False, allow_unknown_revocation=True,
            report_unknown_revocation=True, verification_targets=frozenset({SignatureKind.AUTHOR}),
            signature_placement=Placement.PRIMARY, repository_countersignature=CountersignatureBehavior.NEVER,
        )
