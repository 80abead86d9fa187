"""Chain building on the test PKI: .NET-like status flags (spec §4.8, §6.4)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from tests.support.pki import IssuedCert, TestPki

from nuseal import oids
from nuseal.enums import RevocationMode
from nuseal.x509.chain import ChainResult, ChainStatus, build_chain
from nuseal.x509.revocation import RevocationChecker, RevocationResult
from nuseal.x509.roots import default_trust_store

S = ChainStatus


def chain(
    pki: TestPki,
    leaf: x509.Certificate,
    extra: Sequence[x509.Certificate] = (),
    *,
    anchors: Sequence[x509.Certificate] | None = None,
    usage: str = oids.CODE_SIGNING_EKU,
    at: datetime | None = None,
    revocation: RevocationChecker | None = None,
) -> ChainResult:
    return build_chain(
        leaf, extra_certificates=extra, trust_anchors=pki.trusted_roots if anchors is None else anchors,
        usage_eku=usage, verification_time=at or pki.now, revocation=revocation,
    )  # fmt: skip


def issue(
    subject: x509.Name, key: rsa.RSAPrivateKey, issuer: IssuedCert, *, ca: bool, days: int = 365,
    not_before: datetime | None = None, signer_key: rsa.RSAPrivateKey | None = None,
) -> x509.Certificate:
    """A certificate the PKI helpers cannot make (cross-signed, badly signed, issued by a non-CA)."""
    start = not_before or issuer.cert.not_valid_before_utc
    issuer_ski = issuer.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski), critical=False)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .sign(signer_key or issuer.key, hashes.SHA256())
    )


def name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def test_trusted_chain(pki: TestPki) -> None:
    result = chain(pki, pki.leaf.cert, pki.leaf.chain[1:2])
    assert result.certificates == (pki.leaf.cert, pki.intermediate.cert, pki.root.cert)
    assert result.status == S.NO_ERROR
    assert result.trusted
    assert result.root == pki.root.cert
    assert result.status_messages() == []


def test_root_in_the_bag_too(pki: TestPki) -> None:
    result = chain(pki, pki.leaf.cert, pki.leaf.chain)
    assert result.certificates == tuple(pki.leaf.chain)
    assert result.status == S.NO_ERROR


def test_untrusted_root(pki: TestPki) -> None:
    result = chain(pki, pki.untrusted_leaf.cert, pki.untrusted_leaf.chain)
    assert result.certificates == (pki.untrusted_leaf.cert, pki.untrusted_root.cert)
    assert result.status == S.UNTRUSTED_ROOT
    assert result.elements[-1].status == S.UNTRUSTED_ROOT
    assert result.elements[0].status == S.NO_ERROR
    assert not result.trusted
    assert result.status_messages() == [
        "UntrustedRoot: A certificate chain processed, but terminated in a root certificate which is not trusted "
        "by the trust provider."
    ]


def test_self_issued_certificate_is_an_untrusted_root(pki: TestPki) -> None:
    result = chain(pki, pki.self_issued.cert)
    assert result.certificates == (pki.self_issued.cert,)
    assert result.status == S.UNTRUSTED_ROOT


def test_missing_intermediate_is_a_partial_chain(pki: TestPki) -> None:
    result = chain(pki, pki.leaf.cert, [pki.root.cert])
    assert result.certificates == (pki.leaf.cert,)
    assert result.status == S.PARTIAL_CHAIN
    assert not result.trusted
    assert result.status_messages() == [
        "PartialChain: A certificate chain could not be built to a trusted root authority."
    ]


def test_wrong_eku_is_not_valid_for_usage_on_that_element(pki: TestPki) -> None:
    result = chain(pki, pki.wrong_eku_leaf.cert, [pki.intermediate.cert])
    assert result.status == S.NOT_VALID_FOR_USAGE
    assert [e.status for e in result.elements] == [S.NOT_VALID_FOR_USAGE, S.NO_ERROR, S.NO_ERROR]
    assert result.status_messages() == ["NotValidForUsage: The certificate is not valid for the requested usage."]


def test_usage_is_the_requested_one(pki: TestPki) -> None:
    assert chain(pki, pki.tsa.cert, [pki.intermediate.cert], usage=oids.TIME_STAMPING_EKU).status == S.NO_ERROR
    assert chain(pki, pki.tsa.cert, [pki.intermediate.cert]).status == S.NOT_VALID_FOR_USAGE
    assert chain(pki, pki.leaf.cert, [pki.intermediate.cert], usage=oids.TIME_STAMPING_EKU).status == (
        S.NOT_VALID_FOR_USAGE
    )


def test_expired_leaf_and_not_yet_valid_leaf_are_only_not_time_valid(pki: TestPki) -> None:
    for issued in (pki.expired_leaf, pki.not_yet_valid_leaf):
        result = chain(pki, issued.cert, [pki.intermediate.cert])
        assert result.status == S.NOT_TIME_VALID
        assert result.elements[0].status == S.NOT_TIME_VALID
        assert len(result.elements) == 3


def test_expired_intermediate_still_builds(pki: TestPki) -> None:
    expired_ca = pki._issue(
        "chain-expired-intermediate", issuer=pki.root, ca=True, not_before=pki.now - timedelta(days=60),
        not_after=pki.now - timedelta(days=1),
    )  # fmt: skip
    leaf = pki.issue_leaf("chain-under-expired-ca", issuer=expired_ca, not_before=pki.now - timedelta(days=30))
    result = chain(pki, leaf.cert, [expired_ca.cert])
    assert result.certificates == (leaf.cert, expired_ca.cert, pki.root.cert)
    assert result.status == S.NOT_TIME_VALID
    assert [e.status for e in result.elements] == [S.NO_ERROR, S.NOT_TIME_VALID, S.NO_ERROR]
    # Evaluated while the intermediate was valid, the same chain has no error at all.
    assert chain(pki, leaf.cert, [expired_ca.cert], at=pki.now - timedelta(days=10)).status == S.NO_ERROR


def test_duplicate_certificates_in_the_bag(pki: TestPki) -> None:
    bag = [pki.intermediate.cert, pki.root.cert, pki.intermediate.cert, pki.leaf.cert, pki.root.cert]
    result = chain(pki, pki.leaf.cert, bag, anchors=[pki.root.cert, pki.root.cert])
    assert result.certificates == (pki.leaf.cert, pki.intermediate.cert, pki.root.cert)
    assert result.status == S.NO_ERROR


@pytest.fixture(scope="module")
def cross_signed(pki: TestPki) -> x509.Certificate:
    """The intermediate's subject and key, certified by ``untrusted_root`` (a cross certificate)."""
    return issue(pki.intermediate.cert.subject, pki.intermediate.key, pki.untrusted_root, ca=True)


def test_cross_signed_issuer_prefers_the_trusted_path(pki: TestPki, cross_signed: x509.Certificate) -> None:
    bag = [cross_signed, pki.untrusted_root.cert, pki.intermediate.cert]
    result = chain(pki, pki.leaf.cert, bag)
    assert result.certificates == (pki.leaf.cert, pki.intermediate.cert, pki.root.cert)
    assert result.status == S.NO_ERROR


def test_cross_signed_issuer_backtracks_to_the_other_root(pki: TestPki, cross_signed: x509.Certificate) -> None:
    # Only the untrusted root is an anchor now: the first intermediate leads to an untrusted root, so the
    # builder must go back and take the cross certificate.
    bag = [pki.intermediate.cert, pki.root.cert, cross_signed, pki.untrusted_root.cert]
    result = chain(pki, pki.leaf.cert, bag, anchors=[pki.untrusted_root.cert])
    assert result.certificates == (pki.leaf.cert, cross_signed, pki.untrusted_root.cert)
    assert result.status == S.NO_ERROR


def test_reissued_root_with_same_subject_and_key_is_trusted(pki: TestPki) -> None:
    reissued = (
        x509.CertificateBuilder()
        .subject_name(pki.root.cert.subject)
        .issuer_name(pki.root.cert.subject)
        .public_key(pki.root.key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(pki.now - timedelta(days=1))
        .not_valid_after(pki.now + timedelta(days=7000))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(pki.root.key, hashes.SHA256())
    )
    result = chain(pki, pki.leaf.cert, pki.leaf.chain, anchors=[reissued])
    assert result.status == S.NO_ERROR
    assert result.root == reissued  # the store's copy is preferred over the bag's twin
    # A certificate that is itself a twin of an anchor is trusted as is.
    twin = chain(pki, pki.root.cert, anchors=[reissued])
    assert twin.certificates == (pki.root.cert,)
    assert twin.status == S.NO_ERROR
    assert chain(pki, pki.untrusted_root.cert, anchors=[reissued]).status == S.UNTRUSTED_ROOT


def test_bad_signature_is_not_signature_valid(pki: TestPki) -> None:
    forged = issue(name("nuseal forged leaf"), pki.leaf.key, pki.intermediate, ca=False,
                   signer_key=pki.untrusted_root.key)  # fmt: skip
    result = chain(pki, forged, [pki.intermediate.cert])
    assert result.certificates == (forged, pki.intermediate.cert, pki.root.cert)
    assert result.elements[0].status == S.NOT_SIGNATURE_VALID
    assert result.status == S.NOT_SIGNATURE_VALID


def test_issuer_that_is_not_a_ca(pki: TestPki) -> None:
    below_leaf = issue(name("nuseal issued by a leaf"), pki.self_issued.key, pki.leaf, ca=False)
    result = chain(pki, below_leaf, [pki.leaf.cert, pki.intermediate.cert])
    assert result.certificates == (below_leaf, pki.leaf.cert, pki.intermediate.cert, pki.root.cert)
    assert S.INVALID_BASIC_CONSTRAINTS in result.elements[1].status
    assert result.elements[0].status == S.NO_ERROR


def test_status_names_and_values_match_dotnet() -> None:
    assert S.UNTRUSTED_ROOT.value == 32 and S.UNTRUSTED_ROOT.dotnet_name == "UntrustedRoot"
    assert S.PARTIAL_CHAIN.value == 0x10000 and S.PARTIAL_CHAIN.dotnet_name == "PartialChain"
    assert S.OFFLINE_REVOCATION.value == 0x1000000 and S.OFFLINE_REVOCATION.dotnet_name == "OfflineRevocation"
    assert S.REVOCATION_STATUS_UNKNOWN.dotnet_name == "RevocationStatusUnknown"
    assert S.NOT_VALID_FOR_USAGE.value == 16 and S.REVOKED.value == 4 and S.NOT_TIME_VALID.value == 1
    assert (S.OFFLINE_REVOCATION | S.NOT_TIME_VALID | S.REVOKED).flags() == [
        S.NOT_TIME_VALID, S.REVOKED, S.OFFLINE_REVOCATION
    ]


class FixedAnswer(RevocationChecker):
    """Answers every check with the same result and records what it was asked."""

    def __init__(self, result: RevocationResult) -> None:
        super().__init__(RevocationMode.OFFLINE)
        self.result = result
        self.asked: list[tuple[x509.Certificate, x509.Certificate]] = []

    def check(self, certificate: x509.Certificate, issuer: x509.Certificate, at: datetime) -> RevocationResult:
        self.asked.append((certificate, issuer))
        return self.result


def test_revocation_excludes_the_root(pki: TestPki) -> None:
    checker = FixedAnswer(RevocationResult("good", "test"))
    result = chain(pki, pki.leaf.cert, pki.leaf.chain, revocation=checker)
    assert checker.asked == [(pki.leaf.cert, pki.intermediate.cert), (pki.intermediate.cert, pki.root.cert)]
    assert [e.revocation for e in result.elements] == [checker.result, checker.result, None]
    assert result.status == S.NO_ERROR


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("offline", S.OFFLINE_REVOCATION | S.REVOCATION_STATUS_UNKNOWN),
        ("unknown", S.REVOCATION_STATUS_UNKNOWN),
        ("good", S.NO_ERROR),
    ],
)
def test_revocation_status_flags(pki: TestPki, status: str, expected: ChainStatus) -> None:
    checker = FixedAnswer(RevocationResult(status, "test"))  # type: ignore[arg-type]
    result = chain(pki, pki.leaf.cert, [pki.intermediate.cert], revocation=checker)
    assert [e.status for e in result.elements] == [expected, expected, S.NO_ERROR]


@pytest.mark.parametrize(
    ("reason", "days_after_verification", "revoked"),
    [
        ("keyCompromise", 5, True),  # compromise: revoked whatever the time
        ("keyCompromise", -5, True),
        ("cACompromise", 5, True),
        ("superseded", -5, True),  # revoked before the verification time
        ("superseded", 0, True),
        ("superseded", 5, False),  # revoked after the timestamp, not compromised: still valid
        ("cessationOfOperation", 5, False),
        (None, 5, False),
    ],
)
def test_revoked_after_timestamp_rule(
    pki: TestPki, reason: str | None, days_after_verification: int, revoked: bool
) -> None:
    at = pki.now - timedelta(days=20)
    answer = RevocationResult("revoked", "test", at + timedelta(days=days_after_verification), reason)
    checker = FixedAnswer(answer)
    result = chain(pki, pki.leaf.cert, [pki.intermediate.cert], at=at, revocation=checker)
    assert (S.REVOKED in result.elements[0].status) is revoked
    assert result.elements[0].revocation == answer  # recorded either way, for the verifier to log


def test_default_store_chains_are_fast(pki: TestPki) -> None:
    anchors = default_trust_store().code_signing
    build_chain(pki.leaf.cert, extra_certificates=pki.leaf.chain, trust_anchors=anchors,
                usage_eku=oids.CODE_SIGNING_EKU, verification_time=pki.now, revocation=None)  # fmt: skip
    started = time.perf_counter()
    for _ in range(50):
        result = build_chain(pki.leaf.cert, extra_certificates=pki.leaf.chain, trust_anchors=anchors,
                             usage_eku=oids.CODE_SIGNING_EKU, verification_time=pki.now, revocation=None)  # fmt: skip
    assert result.status == S.UNTRUSTED_ROOT  # the test root is not in the real bundle
    assert time.perf_counter() - started < 1.0
