"""policy_builder: the verify command's policy and the feed-push policy the server will use (spec §6.5; server.md
§B.3). The restore policy (policy_from_config) and RepositorySignatures are covered in test_trusted_signers.py and
test_repository_signatures.py."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from tests.support.pki import TestPki
from tests.support.signed_packages import Packages

from nuseal.codes import Messages, NuCode
from nuseal.enums import RevocationMode, SignatureKind
from nuseal.errors import TrustConfigError
from nuseal.findings import Finding, Severity
from nuseal.trust import policy_builder
from nuseal.trust.nuget_config import NuGetSettings
from nuseal.verify.batch import verify_batch
from nuseal.verify.policy import CountersignatureBehavior, Placement, VerificationPolicy
from nuseal.verify.result import PackageVerdict, Status
from nuseal.x509.roots import TrustStore

FP = "3F9001EA83C560D712C24CF213C3D312CB3BFF51EE89435D3430BD06B5D0EECE"


def _settings(tmp_path: Path, body: str = "") -> NuGetSettings:
    path = tmp_path / "nuget.config"
    path.write_text(f"<configuration>{body}</configuration>")
    return NuGetSettings.load(configfile=path)


def test_verify_command_policy_is_the_verify_preset_with_trusted_signers_first(tmp_path: Path) -> None:
    signers = (f'<trustedSigners><author name="a"><certificate fingerprint="{FP}" hashAlgorithm="SHA256" '
               'allowUntrustedRoot="false"/></author></trustedSigners>')
    policy = policy_builder.verify_command_policy(_settings(tmp_path, signers), [" ab" + "cd" * 31])
    assert policy.allow_ignore_timestamp is False
    assert policy.repository_countersignature is CountersignatureBehavior.IF_EXISTS
    assert [a.name for a in policy.allow_lists] == ["trustedSigners", "--certificate-fingerprint"]
    (entry,) = policy.allow_lists[1].entries
    assert entry.fingerprint == "ab" + "cd" * 31 and entry.placement is Placement.PRIMARY
    assert entry.targets == frozenset({SignatureKind.AUTHOR, SignatureKind.REPOSITORY})
    assert policy.allow_lists[1].no_match_message == Messages.NOT_IN_FINGERPRINT_LIST


def test_verify_command_policy_without_fingerprints_adds_no_list(tmp_path: Path) -> None:
    policy = policy_builder.verify_command_policy(_settings(tmp_path))
    assert [a.name for a in policy.allow_lists] == ["trustedSigners"]


def test_verify_command_policy_reports_nu3040(tmp_path: Path) -> None:
    signers = ("<trustedSigners>"
               f'<author name="a"><certificate fingerprint="{FP}" hashAlgorithm="SHA256" allowUntrustedRoot="true"/>'
               f'</author><author name="b"><certificate fingerprint="{FP}" hashAlgorithm="SHA256" '
               'allowUntrustedRoot="false"/></author></trustedSigners>')
    warnings: list[Finding] = []
    policy_builder.verify_command_policy(_settings(tmp_path, signers), warnings=warnings)
    assert [(w.code, w.severity) for w in warnings] == [(NuCode.NU3040, Severity.WARNING)]


def test_feed_push_preset_is_nuget_orgs_author_settings() -> None:
    policy = VerificationPolicy.feed_push()
    assert (policy.allow_unsigned, policy.allow_illegal, policy.allow_untrusted, policy.allow_ignore_timestamp,
            policy.allow_multiple_timestamps, policy.allow_no_timestamp, policy.allow_unknown_revocation,
            policy.report_unknown_revocation) == (False, False, False, False, False, False, True, True)
    assert policy.verification_targets == frozenset({SignatureKind.AUTHOR})
    assert policy.signature_placement is Placement.PRIMARY
    assert policy.repository_countersignature is CountersignatureBehavior.NEVER
    assert policy_builder.feed_push_policy() == policy


def test_feed_push_allow_list_is_uppercase_deduplicated_and_required(pki: TestPki) -> None:
    fp = pki.leaf.sha256_fingerprint
    policy = policy_builder.feed_push_policy([fp.lower(), fp, f" {fp} "])
    (allow_list,) = policy.allow_lists
    assert [e.fingerprint for e in allow_list.entries] == [fp.upper()]
    assert allow_list.require_non_empty is True
    assert allow_list.entries[0].targets == frozenset({SignatureKind.AUTHOR})


@pytest.mark.parametrize("bad", ["", "00" * 20, "zz" * 32, "00" * 48])
def test_feed_push_refuses_a_fingerprint_that_is_not_sha256(bad: str) -> None:
    with pytest.raises(TrustConfigError) as err:
        policy_builder.feed_push_policy(["00" * 32, bad])
    assert err.value.code is NuCode.NU3043 and repr(bad) in str(err.value)


def _push(pki: TestPki, path: Path, now: datetime, allowed: list[str] | None = None) -> PackageVerdict:
    store = TrustStore(code_signing=(pki.root.cert,), timestamping=(pki.root.cert,))
    setup = policy_builder.feed_push_setup(store, revocation_mode=RevocationMode.OFFLINE, allowed_fingerprints=allowed)
    (verdict,) = verify_batch([path], setup, now=now)
    return verdict


def _errors(verdict: PackageVerdict) -> list[tuple[str, str]]:
    return [(f.code.value, f.message) for f in verdict.errors]


def test_feed_push_accepts_a_timestamped_author_signature_by_an_acceptable_certificate(
    pki: TestPki, signed_packages: Packages
) -> None:
    verdict = _push(pki, signed_packages.author, signed_packages.now, [pki.leaf.sha256_fingerprint.lower()])
    assert verdict.valid and not verdict.errors, verdict.findings


def test_feed_push_rejects_a_certificate_the_feed_does_not_accept(pki: TestPki, signed_packages: Packages) -> None:
    verdict = _push(pki, signed_packages.author, signed_packages.now, ["00" * 32])
    assert not verdict.valid
    assert _errors(verdict) == [("NU3034", policy_builder.FEED_PUSH_NOT_ACCEPTED)]
    nothing = _push(pki, signed_packages.author, signed_packages.now, [])
    assert _errors(nothing) == [("NU3034", policy_builder.FEED_PUSH_NO_CERTIFICATES)]


def test_feed_push_requires_exactly_one_timestamp(pki: TestPki, signed_packages: Packages) -> None:
    no_timestamp = _push(pki, signed_packages.author_no_timestamp, signed_packages.now)
    assert "NU3027" in {c for c, _ in _errors(no_timestamp)}
    assert "NU3000" in {c for c, _ in _errors(_push(pki, signed_packages.two_timestamps, signed_packages.now))}


def test_feed_push_rejects_untrusted_chains_and_unsigned_packages(pki: TestPki, signed_packages: Packages) -> None:
    assert "NU3018" in {c for c, _ in _errors(_push(pki, signed_packages.untrusted, signed_packages.now))}
    unsigned = _push(pki, signed_packages.unsigned, signed_packages.now)
    assert unsigned.signed is False and _errors(unsigned) == [("NU3004", Messages.NOT_SIGNED)]


def test_feed_push_judges_the_author_signature_only(pki: TestPki, signed_packages: Packages) -> None:
    verdict = _push(pki, signed_packages.countersigned, signed_packages.now)
    assert verdict.valid, verdict.findings
    assert [s.status for s in verdict.signatures] == [Status.VALID, Status.UNKNOWN]
