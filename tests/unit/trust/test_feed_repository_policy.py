"""``feed_repository_policy``: what a feed re-verifies its own repository signature with (server.md §B.3,
"Repository" settings): only the repository signature, trusted, exactly one timestamp, certificate on the list."""

from __future__ import annotations

from tests.support.pki import TestPki
from tests.support.signed_packages import Packages

from nuseal.codes import IssueCode, NuCode
from nuseal.enums import RevocationMode, SignatureKind
from nuseal.trust import policy_builder
from nuseal.verify.engine import verify_package
from nuseal.verify.policy import CountersignatureBehavior, Placement
from nuseal.verify.result import PackageVerdict
from nuseal.verify.setup import VerificationSetup
from nuseal.x509.roots import TrustStore


def _verify(pki: TestPki, packages: Packages, path: object, fingerprints: list[str]) -> PackageVerdict:
    setup = VerificationSetup(policy_builder.feed_repository_policy(fingerprints),
                              TrustStore((pki.root.cert,), (pki.root.cert,)), RevocationMode.OFFLINE)  # fmt: skip
    with setup.open() as trust:
        return verify_package(path, policy=setup.policy, trust=trust, now=packages.now)  # type: ignore[arg-type]


def test_the_policy_verifies_only_the_repository_signature() -> None:
    policy = policy_builder.feed_repository_policy(["ab" * 32])
    assert policy.verification_targets == frozenset({SignatureKind.REPOSITORY})
    assert policy.signature_placement is Placement.ANY
    assert policy.repository_countersignature is CountersignatureBehavior.IF_EXISTS
    assert not (policy.allow_untrusted or policy.allow_no_timestamp or policy.allow_multiple_timestamps)
    (allow_list,) = policy.allow_lists
    assert [e.fingerprint for e in allow_list.entries] == ["AB" * 32] and allow_list.require_non_empty


def test_a_countersignature_by_a_listed_certificate_is_valid(pki: TestPki, signed_packages: Packages) -> None:
    verdict = _verify(pki, signed_packages, signed_packages.countersigned, [pki.leaf.sha256_fingerprint.lower()])
    assert verdict.valid, verdict.findings
    assert [s.kind for s in verdict.signatures] == [SignatureKind.AUTHOR, SignatureKind.REPOSITORY]


def test_another_certificate_an_author_only_or_an_unsigned_package_is_not(
    pki: TestPki, signed_packages: Packages
) -> None:
    other = _verify(pki, signed_packages, signed_packages.countersigned, ["ab" * 32])
    assert not other.valid and [f.code for f in other.errors] == [NuCode.NU3034]
    author_only = _verify(pki, signed_packages, signed_packages.author, [pki.leaf.sha256_fingerprint])
    assert not author_only.valid and IssueCode.NO_VERIFIABLE_SIGNATURE in [f.code for f in author_only.errors]
    unsigned = _verify(pki, signed_packages, signed_packages.unsigned, [pki.leaf.sha256_fingerprint])
    assert not unsigned.valid and [f.code for f in unsigned.errors] == [NuCode.NU3004]
