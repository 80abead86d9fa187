"""Trusted signers (nuget.config ``<trustedSigners>``) and the allow lists they become (spec §6.5, §7.4).

The model here is plain data; ``nuseal.trust.nuget_config`` reads and writes it. ``to_allow_list`` follows
NuGet's ``TrustedSignersProvider.GetAllowListEntries``: author items give author/primary entries, repository
items give repository/any-placement entries with owners, and certificates are merged by
``"{ALG}-{fingerprint}"``. ``nuseal.trust.policy_builder`` turns the allow list into policies.
"""

from __future__ import annotations

from enum import StrEnum

from nuseal.codes import Messages, NuCode
from nuseal.enums import HashAlgorithmName, SignatureKind
from nuseal.findings import Finding, Severity, Target
from nuseal.record import Struct
from nuseal.verify.policy import (
    AllowList,
    AllowListEntry,
    Placement,
)


class SignerKind(StrEnum):
    """The element a trusted signer is written as: ``<author>`` or ``<repository>``."""

    AUTHOR = "author"
    REPOSITORY = "repository"


class SignatureValidationMode(StrEnum):
    """``<config><add key="signatureValidationMode">``: ``accept`` (NuGet's default) or ``require``."""

    ACCEPT = "accept"
    REQUIRE = "require"


class TrustedCertificate(Struct, frozen=True):
    """One ``<certificate fingerprint hashAlgorithm allowUntrustedRoot>``; fingerprint kept as written."""

    fingerprint: str
    algorithm: HashAlgorithmName = HashAlgorithmName.SHA256
    allow_untrusted_root: bool = False


class TrustedSigner(Struct, frozen=True):
    """An ``<author>`` or ``<repository>`` item; repositories carry a service index and optional owners."""

    kind: SignerKind
    name: str
    certificates: tuple[TrustedCertificate, ...]
    service_index: str | None = None
    owners: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a trusted signer needs a name")
        if not self.certificates:
            raise ValueError(f"trusted signer {self.name!r} must have at least one certificate")
        if self.kind is SignerKind.REPOSITORY and not self.service_index:
            raise ValueError(f"trusted repository {self.name!r} needs a service index")
        if self.kind is SignerKind.AUTHOR and (self.service_index or self.owners):
            raise ValueError(f"trusted author {self.name!r} cannot have a service index or owners")

    @property
    def merge_key(self) -> tuple[str, str]:
        """How NuGet identifies the item across config files: authors by name, repositories by service index
        (both ordinal)."""
        if self.kind is SignerKind.REPOSITORY:
            return ("repository", self.service_index or "")
        return ("author", self.name)


CONFLICTING_ALLOW_UNTRUSTED_ROOT = (
    "There are two certificates with conflicting allowUntrustedRoot attributes in the computed settings. "
    "The allowUntrustedRoot attribute is going to be set to false. Certificate: {0}-{1}"
)


class _Merged(Struct):
    targets: set[SignatureKind]
    placement: Placement
    certificate: TrustedCertificate
    allow_untrusted_root: bool
    owners: list[str] | None


def to_allow_list(
    signers: list[TrustedSigner] | tuple[TrustedSigner, ...],
    *,
    require_non_empty: bool = False,
) -> tuple[AllowList, list[Finding]]:
    """Build the trustedSigners allow list (spec §6.5) and the NU3040 warnings met on the way.

    Entries are de-duplicated by ``"{ALG}-{fingerprint}"`` compared ordinally (so ``ab..`` and ``AB..`` stay
    two entries, as in NuGet), OR-ing targets and placements and merging owners. Conflicting
    ``allowUntrustedRoot`` values give NU3040 and the value ``False``.
    """
    merged: dict[str, _Merged] = {}
    warnings: list[Finding] = []
    for signer in signers:
        is_repo = signer.kind is SignerKind.REPOSITORY
        target = SignatureKind.REPOSITORY if is_repo else SignatureKind.AUTHOR
        placement = Placement.ANY if is_repo else Placement.PRIMARY
        for cert in signer.certificates:
            owners = list(signer.owners) if is_repo else None
            key = f"{cert.algorithm.value}-{cert.fingerprint}"
            existing = merged.get(key)
            if existing is None:
                merged[key] = _Merged({target}, placement, cert, cert.allow_untrusted_root, owners)
                continue
            if existing.allow_untrusted_root != cert.allow_untrusted_root:
                warnings.append(Finding(
                    NuCode.NU3040,
                    Severity.WARNING,
                    CONFLICTING_ALLOW_UNTRUSTED_ROOT.format(cert.algorithm.value, cert.fingerprint),
                    Target.CONFIG,
                    f"{cert.algorithm.value}-{cert.fingerprint}",
                ))
                existing.allow_untrusted_root = False
            existing.targets.add(target)
            existing.placement |= placement
            if owners is not None:
                if existing.owners is None:
                    existing.owners = owners
                else:
                    existing.owners.extend(o for o in owners if o not in existing.owners)
    entries = tuple(
        AllowListEntry(
            fingerprint=m.certificate.fingerprint,
            algorithm=m.certificate.algorithm,
            targets=frozenset(m.targets),
            placement=m.placement,
            owners=tuple(m.owners or ()),
            allow_untrusted_root=m.allow_untrusted_root,
        )
        for m in merged.values()
    )
    allow_list = AllowList(
        entries=entries,
        require_non_empty=require_non_empty,
        empty_message=Messages.NO_TRUSTED_SIGNERS,
        no_match_message=Messages.NOT_TRUSTED_SIGNER,
        name="trustedSigners",
    )
    return allow_list, warnings


def untrusted_root_fingerprints(allow_list: AllowList) -> frozenset[str]:
    """Fingerprints whose untrusted root is accepted, exactly as configured.

    NuGet quirk (spec §6.4): the lookup is ordinal against the computed uppercase SHA-256 hex, so a
    lowercase fingerprint with ``allowUntrustedRoot="true"`` silently never applies. We keep the value as
    written (not uppercased) so the verifier can reproduce that behaviour; only SHA256 entries count.
    """
    return frozenset(
        e.fingerprint for e in allow_list.entries
        if e.allow_untrusted_root and e.algorithm is HashAlgorithmName.SHA256
    )
