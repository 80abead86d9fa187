"""x509.tools: self-issued certificate creation, loading from every format, NuGet signing-certificate rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tests.support.pki import TEST_PASSWORD, TestPki

from nuseal.codes import NuCode
from nuseal.errors import CertificateError
from nuseal.timestamp.tsa import TimestampAuthority
from nuseal.x509 import tools

NOW = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def created() -> tuple[x509.Certificate, object]:
    return tools.create_certificate("CN=Unit, O=Tests", now=NOW, days=10)


def test_created_certificate_profile(created: tuple[x509.Certificate, object]) -> None:
    cert, _ = created
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Unit"
    assert cert.not_valid_before_utc == NOW - timedelta(minutes=10)
    assert cert.not_valid_after_utc == NOW + timedelta(days=10)
    assert tools.check_signing_certificate(cert, NOW) == []
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and not basic.value.ca


def test_timestamping_certificate_is_accepted_by_the_tsa() -> None:
    cert, key = tools.create_certificate("CN=TSA", now=NOW, timestamping=True)
    TimestampAuthority(cert, key, clock=lambda: NOW)
    assert [p.code for p in tools.check_signing_certificate(cert, NOW)] == [NuCode.NU3018]


@pytest.mark.parametrize("subject", ["", "CN", "nonsense", "=x"])
def test_bad_subjects(subject: str) -> None:
    with pytest.raises(ValueError, match="subject"):
        tools.parse_subject(subject)


def test_bad_key_size_and_days() -> None:
    with pytest.raises(ValueError, match="2048, 3072 or 4096"):
        tools.create_certificate("CN=x", now=NOW, key_size=1024)
    with pytest.raises(ValueError, match="at least one day"):
        tools.create_certificate("CN=x", now=NOW, days=0)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("leaf", []),
        ("self-issued", []),
        ("expired-leaf", []),  # expiry is not a sign-time certificate rule here (NU3018 chain/NU3037 verify)
        ("sha1-leaf", [NuCode.NU3013]),
        ("weak-key-leaf", [NuCode.NU3014]),
        ("lifetime-eku-leaf", [NuCode.NU3015]),
        ("not-yet-valid-leaf", [NuCode.NU3017]),
        ("wrong-eku-leaf", [NuCode.NU3018]),
    ],
)
def test_nuget_rules_on_the_pki(pki: TestPki, name: str, expected: list[NuCode]) -> None:
    assert [p.code for p in tools.check_signing_certificate(pki[name].cert, pki.now)] == expected


def test_no_eku_extension_is_valid_for_code_signing(pki: TestPki) -> None:
    cert = (
        x509.CertificateBuilder()
        .subject_name(pki.leaf.cert.subject)
        .issuer_name(pki.intermediate.cert.subject)
        .public_key(pki.leaf.key.public_key())
        .serial_number(1)
        .not_valid_before(pki.now - timedelta(days=1))
        .not_valid_after(pki.now + timedelta(days=1))
        .sign(pki.intermediate.key, pki.leaf.cert.signature_hash_algorithm)  # type: ignore[arg-type]
    )
    assert tools.check_signing_certificate(cert, pki.now) == []


def test_ec_key_is_nu3014(pki: TestPki) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(pki.leaf.cert.subject)
        .issuer_name(pki.intermediate.cert.subject)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(pki.now - timedelta(days=1))
        .not_valid_after(pki.now + timedelta(days=1))
        .sign(pki.intermediate.key, pki.leaf.cert.signature_hash_algorithm)  # type: ignore[arg-type]
    )
    problems = tools.check_signing_certificate(cert, pki.now)
    assert [p.code for p in problems] == [NuCode.NU3014]
    assert tools.describe(cert, pki.now).key == "EC secp256r1"


def test_load_every_format(pki: TestPki, tmp_path: Path) -> None:
    pfx = tools.load_certificate_file(pki.leaf.write_pfx(tmp_path / "l.pfx"), TEST_PASSWORD)
    assert pfx.certificate == pki.leaf.cert and pfx.key is not None
    assert set(pfx.others) == {pki.intermediate.cert, pki.root.cert}
    (tmp_path / "l.cer").write_bytes(pki.leaf.der)
    der = tools.load_certificate_file(tmp_path / "l.cer")
    assert der.certificate == pki.leaf.cert and der.key is None
    files = pki.leaf.write_pem_key_and_chain(tmp_path)
    reversed_chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in reversed(pki.leaf.chain))
    (tmp_path / "mixed.pem").write_bytes(reversed_chain + files.key.read_bytes())
    mixed = tools.load_certificate_file(tmp_path / "mixed.pem")
    assert mixed.certificate == pki.leaf.cert and mixed.key is not None


def test_load_errors(pki: TestPki, tmp_path: Path) -> None:
    with pytest.raises(CertificateError, match="was not found"):
        tools.load_certificate_file(tmp_path / "missing.pfx")
    pfx = pki.leaf.write_pfx(tmp_path / "l.pfx")
    with pytest.raises(CertificateError, match="password is wrong") as caught:
        tools.load_certificate_file(pfx, "nope")
    assert caught.value.code is NuCode.NU3001
    (tmp_path / "other.pem").write_bytes(pki.root.pem + pki.leaf.key_pem)
    with pytest.raises(CertificateError, match="matches none"):
        tools.load_certificate_file(tmp_path / "other.pem")
    (tmp_path / "key-only.pem").write_bytes(pki.leaf.key_pem)
    with pytest.raises(CertificateError, match="does not contain a certificate"):
        tools.load_certificate_file(tmp_path / "key-only.pem")


def test_describe(pki: TestPki) -> None:
    description = tools.describe(pki.sha1_leaf.cert, pki.now)
    facts = description.to_dict()
    assert facts["sha256Fingerprint"] == pki.sha1_leaf.sha256_fingerprint
    assert facts["sha1Fingerprint"] == pki.sha1_leaf.sha1_fingerprint
    assert facts["nugetCanSign"] is False and facts["problems"][0]["code"] == "NU3013"
    assert facts["extendedKeyUsages"] == ["1.3.6.1.5.5.7.3.3"] and facts["key"] == "RSA 2048 bits"
    assert tools.describe(pki.self_issued.cert, pki.now).self_issued


def test_write_atomically_leaves_no_temp_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "x.bin"
    tools.write_atomically(target, b"one")
    target.chmod(0o644)
    assert target.read_bytes() == b"one"
    with pytest.raises(FileNotFoundError):
        tools.write_atomically(tmp_path / "no-such-dir" / "y.bin", b"two")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.bin"]
