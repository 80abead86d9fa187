
"""trustedSigners → allow list and restore policy (spec §6.2, §6.3, §6.5)."""

from __future__ import annotations

from pathlib import Path

from nuseal.codes import Messages, NuCode
from nuseal.findings import Finding, Severity, Target
from nuseal.trust.nuget_config import NuGetSettings
from nuseal.trust.policy_builder import policy_from_config
from nuseal.trust.trusted_signers import (
    SignerKind,
    TrustedCertificate,
    TrustedSigner,
    to_allow_list,
)
from nuseal.verify.policy import HashAlgorithmName, Placement, SignatureKind, VerificationPolicy

FP = "3F9001EA83C560D712C24CF213C3D312CB3BFF51EE89435D3430BD06B5D0EECE"
REPO = "https://api.nuget.org/v3/index.json"


def _author(name: str, fp: str = FP, allow: bool = False, alg: HashAlgorithmName = HashAlgorithmName.SHA256,
            ) -> TrustedSigner:
    return TrustedSigner(SignerKind.AUTHOR, name, (TrustedCertificate(fp, alg, allow),))


def _repo(name: str, fp: str = FP, owners: tuple[str, ...] = (), allow: bool = False,
          index: str = REPO) -> TrustedSigner:
    return TrustedSigner(SignerKind.REPOSITORY, name, (TrustedCertificate(fp, HashAlgorithmName.SHA256, allow),),
                         index, owners)


def test_author_entry_targets_author_primary_only() -> None:
    allow_list, warnings = to_allow_list([_author("a")])
    (entry,) = allow_list.entries
    assert entry.targets == frozenset({SignatureKind.AUTHOR})
    assert entry.placement == Placement.PRIMARY
    assert entry.owners == ()
    assert warnings == []
    assert allow_list.no_match_message == Messages.NOT_TRUSTED_SIGNER
    assert allow_list.empty_message == Messages.NO_TRUSTED_SIGNERS


def test_repository_entry_targets_repository_any_placement_with_owners() -> None:
    allow_list, _ = to_allow_list([_repo("r", owners=("microsoft", "nuget"))])
    (entry,) = allow_list.entries
    assert entry.targets == frozenset({SignatureKind.REPOSITORY})
    assert entry.placement == Placement.ANY
    assert entry.owners == ("microsoft", "nuget")


def test_same_certificate_is_merged_by_algorithm_and_fingerprint() -> None:
    signers = [_author("a"), _repo("r", owners=("x",)), _repo("r2", owners=("y", "x"), index="https://b/index.json")]
    allow_list, warnings = to_allow_list(signers)
    (entry,) = allow_list.entries
    assert entry.targets == frozenset({SignatureKind.AUTHOR, SignatureKind.REPOSITORY})
    assert entry.placement == Placement.ANY
    assert entry.owners == ("x", "y")
    assert warnings == []


def test_merge_key_is_ordinal_and_includes_the_algorithm() -> None:
    signers = [_author("a"), _author("b", FP.lower()), _author("c", FP, alg=HashAlgorithmName.SHA384)]
    allow_list, _ = to_allow_list(signers)
    assert len(allow_list.entries) == 3


def test_conflicting_allow_untrusted_root_warns_nu3040_and_is_false() -> None:
    allow_list, warnings = to_allow_list([_author("a", allow=True), _repo("r", allow=False)])
    (entry,) = allow_list.entries
    assert entry.allow_untrusted_root is False
    assert warnings == [Finding(
        NuCode.NU3040,
        Severity.WARNING,
        "There are two certificates with conflicting allowUntrustedRoot attributes in the computed settings. "
        f"The allowUntrustedRoot attribute is going to be set to false. Certificate: SHA256-{FP}",
        Target.CONFIG,
        f"SHA256-{FP}",
    )]


def _settings(tmp_path: Path, body: str) -> NuGetSettings:
    path = tmp_path / "nuget.config"
    path.write_text(f"<configuration>{body}</configuration>")
    return NuGetSettings.load(configfile=path)


SIGNERS = (
    "<trustedSigners>"
    f'<author name="a"><certificate fingerprint="{FP}" hashAlgorithm="SHA256" allowUntrustedRoot="true"/></author>'
    f'<author name="b"><certificate fingerprint="{"ab" * 32}" hashAlgorithm="SHA256" allowUntrustedRoot="true"/>'
    "</author></trustedSigners>"
)


def test_policy_accept_mode(tmp_path: Path) -> None:
    policy = policy_from_config(_settings(tmp_path, SIGNERS))
    assert policy.allow_unsigned and policy.allow_untrusted
    (trusted,) = policy.allow_lists
    assert trusted.require_non_empty is False
    assert len(trusted.entries) == 2
    # Kept as configured: NuGet's ordinal lookup means the lowercase one never applies (spec §6.4).
    assert policy.allow_untrusted_root_fingerprints == frozenset({FP, "ab" * 32})
    assert policy.unsigned_message == Messages.NOT_SIGNED


def test_policy_require_mode(tmp_path: Path) -> None:
    body = '<config><add key="signatureValidationMode" value="Require"/></config>'
    warnings: list[Finding] = []
    policy = policy_from_config(_settings(tmp_path, body), warnings=warnings)
    assert policy.allow_unsigned is False and policy.allow_untrusted is False
    (trusted,) = policy.allow_lists
    assert trusted.require_non_empty is True
    assert trusted.entries == ()
    assert policy.unsigned_message == Messages.REQUIRE_MODE_UNSIGNED
    assert warnings == []


def test_policy_keeps_a_given_base_and_its_allow_lists(tmp_path: Path) -> None:
    base = VerificationPolicy.verify_command()
    policy = policy_from_config(_settings(tmp_path, SIGNERS), base)
    assert policy.allow_ignore_timestamp is False
    assert policy.allow_lists[0].name == "trustedSigners"
