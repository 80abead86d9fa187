"""Every verification policy nuseal uses is built here, so ``nuseal verify``, ``nuseal install`` and the feed server
decide trust the same way (spec §6.1-§6.5, §8; server.md §B.3).

- ``policy_from_config``: restore's policy from merged nuget.config settings (accept/require mode, trustedSigners).
- ``verify_command_policy``: ``dotnet nuget verify``'s policy: the verify preset, trustedSigners, then the
  ``--certificate-fingerprint`` list.
- ``apply_repository_info``: restore's adjustment for a feed that publishes RepositorySignatures.
- ``feed_push_policy`` / ``feed_push_setup``: what a feed checks on a pushed signed package, from the feed's trust
  roots, its revocation mode and (optionally) the signing certificates acceptable for the package.
- ``feed_repository_policy``: what a feed checks on its own repository signature (nuget.org's "Repository"
  settings, server.md §B.3) before serving a package it signed, or before keeping one it signed earlier.

The builders read nothing themselves: settings, fingerprints and documents are passed in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

from nuseal.codes import Messages, NuCode
from nuseal.enums import HashAlgorithmName, RevocationMode, SignatureKind
from nuseal.errors import TrustConfigError
from nuseal.findings import Finding
from nuseal.record import replace
from nuseal.trust.trusted_signers import SignatureValidationMode, to_allow_list, untrusted_root_fingerprints
from nuseal.verify.policy import AllowList, AllowListEntry, CountersignatureBehavior, Placement, VerificationPolicy
from nuseal.verify.setup import DEFAULT_REVOCATION_TIMEOUT, VerificationSetup

if TYPE_CHECKING:
    # Annotations only: importing them pulls in lxml and httpx, which ``nuseal verify`` need not load for this.
    from nuseal.trust.nuget_config import NuGetSettings
    from nuseal.trust.repository_signatures import RepositorySignatureInfo
    from nuseal.x509.roots import TrustStore

__all__ = [
    "FEED_PUSH_NOT_ACCEPTED", "FEED_PUSH_NO_CERTIFICATES", "FEED_REPOSITORY_NOT_LISTED", "apply_repository_info",
    "feed_push_policy", "feed_push_setup", "feed_repository_policy", "fingerprint_allow_list", "policy_from_config",
    "repository_allow_list",
    "verify_command_policy",
]

FEED_PUSH_NOT_ACCEPTED = "The package's signing certificate is not one this feed accepts for the package."
FEED_PUSH_NO_CERTIFICATES = "The package is signed, but this feed accepts no signing certificate for the package."
FEED_REPOSITORY_NOT_LISTED = "The repository signature is not made with one of this feed's repository certificates."


@cache
def _sha256_hex() -> re.Pattern[str]:  # compiled on first use: only fingerprint options need it
    return re.compile(r"[0-9A-Fa-f]{64}")


def policy_from_config(
    settings: NuGetSettings,
    base: VerificationPolicy | None = None,
    *,
    warnings: list[Finding] | None = None,
) -> VerificationPolicy:
    """The restore-time policy for merged settings (spec §6.1-§6.3, §6.5).

    ``base`` defaults to the accept or require preset picked by ``signatureValidationMode``. The
    trustedSigners allow list comes first in ``allow_lists``, with ``require_non_empty`` in require mode, and
    require mode rewords the NU3004 message for unsigned packages. NU3040 warnings are appended to
    ``warnings`` when a list is given.
    """
    mode = settings.signature_validation_mode()
    if base is None:
        base = (VerificationPolicy.require_mode() if mode is SignatureValidationMode.REQUIRE
                else VerificationPolicy.accept_mode())
    allow_list, found = to_allow_list(
        settings.trusted_signers(), require_non_empty=mode is SignatureValidationMode.REQUIRE,
    )
    changes: dict[str, Any] = {
        "allow_lists": (allow_list, *base.allow_lists),
        "allow_untrusted_root_fingerprints": base.allow_untrusted_root_fingerprints
        | untrusted_root_fingerprints(allow_list),
    }
    if mode is SignatureValidationMode.REQUIRE:
        changes["unsigned_message"] = Messages.REQUIRE_MODE_UNSIGNED
    if warnings is not None:
        warnings.extend(found)
    return replace(base, **changes)


def fingerprint_allow_list(fingerprints: Iterable[str]) -> AllowList:
    """The verify command's ``--certificate-fingerprint`` list: SHA-256 fingerprints the primary signer (author or
    repository) must match; a miss is NU3034."""
    entries = tuple(
        AllowListEntry(fp.strip(), HashAlgorithmName.SHA256,
                       frozenset({SignatureKind.AUTHOR, SignatureKind.REPOSITORY}), Placement.PRIMARY)
        for fp in fingerprints)
    return AllowList(entries, False, "", Messages.NOT_IN_FINGERPRINT_LIST, "--certificate-fingerprint")


def verify_command_policy(settings: NuGetSettings, fingerprints: Sequence[str] = (), *,
                          warnings: list[Finding] | None = None) -> VerificationPolicy:
    """``nuseal verify``: the verify-command preset, trustedSigners from nuget.config, then the
    ``--certificate-fingerprint`` list (NuGet's provider order)."""
    policy = policy_from_config(settings, VerificationPolicy.verify_command(), warnings=warnings)
    if not fingerprints:
        return policy
    return replace(policy, allow_lists=(*policy.allow_lists, fingerprint_allow_list(fingerprints)))


def repository_allow_list(info: RepositorySignatureInfo) -> AllowList:
    """The feed's allow list (spec §8): per certificate and per SHA256/384/512 fingerprint listed, an entry
    targeting repository signatures in any placement. Required non-empty when ``allRepositorySigned``."""
    entries = tuple(
        AllowListEntry(
            fingerprint=fp,
            algorithm=alg,
            targets=frozenset({SignatureKind.REPOSITORY}),
            placement=Placement.ANY,
        )
        for cert in info.certificates
        for alg in HashAlgorithmName
        if (fp := cert.fingerprint(alg))
    )
    return AllowList(
        entries=entries,
        require_non_empty=info.all_repository_signed,
        empty_message=Messages.REPO_NO_CERTIFICATES,
        no_match_message=Messages.REPO_CERT_NOT_LISTED,
        name="repositorySignatures",
    )


def apply_repository_info(policy: VerificationPolicy, info: RepositorySignatureInfo) -> VerificationPolicy:
    """Restore's adjustment for a feed that publishes RepositorySignatures (spec §6.2, §8).

    ``allRepositorySigned`` forces ``allow_unsigned`` and ``allow_untrusted`` off and, unless require mode
    already reworded it, makes NU3004 say the repository promised signed packages. The repository allow list
    is appended after the existing ones (NuGet's provider order).
    """
    changes: dict[str, Any] = {"allow_lists": (*policy.allow_lists, repository_allow_list(info))}
    if info.all_repository_signed:
        changes["allow_unsigned"] = False
        changes["allow_untrusted"] = False
        if policy.unsigned_message == Messages.NOT_SIGNED:
            changes["unsigned_message"] = Messages.REPO_ALL_SIGNED_UNSIGNED
    return replace(policy, **changes)


def feed_push_policy(allowed_fingerprints: Iterable[str] | None = None) -> VerificationPolicy:
    """``VerificationPolicy.feed_push()`` plus, when ``allowed_fingerprints`` is given, the signing certificates
    (SHA-256 hex, any case) acceptable for the pushed package: the author signer must be one of them (NU3034
    otherwise), and an empty collection accepts no signed package at all.

    ``None`` means no certificate restriction (only the chain, timestamp and certificate rules apply). Unsigned
    packages are rejected with NU3004 by this policy; see ``VerificationPolicy.feed_push`` for how a feed decides
    unsigned pushes. ``TrustConfigError`` (NU3043) names a fingerprint that is not 64 hex digits.
    """
    policy = VerificationPolicy.feed_push()
    if allowed_fingerprints is None:
        return policy
    fingerprints = list(allowed_fingerprints)
    for fp in fingerprints:
        if not _sha256_hex().fullmatch(fp.strip()):
            raise TrustConfigError(f"Invalid acceptable signing certificate fingerprint {fp!r}: expected a SHA-256 "
                                   "fingerprint (64 hexadecimal characters).", NuCode.NU3043)
    # Uppercase on both sides: fingerprints come from a database or a form, not from NuGet's ordinal world.
    entries = tuple(
        AllowListEntry(fp, HashAlgorithmName.SHA256, frozenset({SignatureKind.AUTHOR}), Placement.PRIMARY)
        for fp in dict.fromkeys(fp.strip().upper() for fp in fingerprints))
    allow_list = AllowList(entries, require_non_empty=True, empty_message=FEED_PUSH_NO_CERTIFICATES,
                           no_match_message=FEED_PUSH_NOT_ACCEPTED, name="feed push")
    return replace(policy, allow_lists=(allow_list,))


def feed_push_setup(trust_store: TrustStore, *, revocation_mode: RevocationMode = RevocationMode.ONLINE,
                    allowed_fingerprints: Iterable[str] | None = None,
                    revocation_timeout: float = DEFAULT_REVOCATION_TIMEOUT) -> VerificationSetup:
    """What a feed server verifies a push with: ``feed_push_policy(allowed_fingerprints)`` against the feed's trust
    roots (code signing and timestamping) and revocation mode (nuget.org checks online)."""
    return VerificationSetup(feed_push_policy(allowed_fingerprints), trust_store, revocation_mode, revocation_timeout)


def feed_repository_policy(fingerprints: Iterable[str]) -> VerificationPolicy:
    """nuget.org's "Repository" verifier settings (server.md §B.3): only the repository signature is verified (a
    repository primary signature, or the repository countersignature of an author signature), it must be trusted
    and carry exactly one valid timestamp, unknown revocation is a warning, and its certificate must be one of
    ``fingerprints`` (SHA-256 hex, any case; NU3034 otherwise). The author signature is not judged here: the feed
    verified it when the package was pushed.
    """
    entries = tuple(
        AllowListEntry(fp, HashAlgorithmName.SHA256, frozenset({SignatureKind.REPOSITORY}), Placement.ANY)
        for fp in dict.fromkeys(fp.strip().upper() for fp in fingerprints))
    allow_list = AllowList(entries, require_non_empty=True, empty_message=FEED_REPOSITORY_NOT_LISTED,
                           no_match_message=FEED_REPOSITORY_NOT_LISTED, name="feed repository certificates")
    return VerificationPolicy(
        allow_unsigned=False, allow_illegal=False, allow_untrusted=False, allow_ignore_timestamp=False,
        allow_multiple_timestamps=False, allow_no_timestamp=False, allow_unknown_revocation=True,
        report_unknown_revocation=True, verification_targets=frozenset({SignatureKind.REPOSITORY}),
        signature_placement=Placement.ANY, repository_countersignature=CountersignatureBehavior.IF_EXISTS,
        allow_lists=(allow_list,),
    )
