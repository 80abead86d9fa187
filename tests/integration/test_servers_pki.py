"""The test PKI itself: shapes, extensions and that OpenSSL agrees with the chains."""

from __future__ import annotations

import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID
from tests.support.pki import LIFETIME_SIGNING, TEST_PASSWORD, TestPki


def _openssl_verify(pki_dir: Path, name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", "verify", "-CAfile", str(pki_dir / "root.pem"), "-untrusted",
         str(pki_dir / "intermediate.pem"), str(pki_dir / f"{name}.pem")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_leaf_chain_verifies_with_openssl(pki_dir: Path) -> None:
    for name in ("leaf", "tsa", "ocsp", "sha1-leaf", "weak-key-leaf", "revoked-leaf"):
        result = _openssl_verify(pki_dir, name)
        assert result.returncode == 0, result.stdout + result.stderr


def test_time_variants_fail_openssl_verify(pki_dir: Path) -> None:
    expired = _openssl_verify(pki_dir, "expired-leaf")
    assert "certificate has expired" in expired.stdout + expired.stderr
    early = _openssl_verify(pki_dir, "not-yet-valid-leaf")
    assert "not yet valid" in early.stdout + early.stderr
    assert _openssl_verify(pki_dir, "untrusted-leaf").returncode != 0


def test_leaf_profile(pki: TestPki) -> None:
    cert = pki.leaf.cert
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CODE_SIGNING]
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    cdp = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert cdp[0].full_name is not None
    assert cdp[0].full_name[0].value == f"http://127.0.0.1:{pki.crl_port}/intermediate.crl"
    aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert any(d.access_location.value == pki.ocsp_url for d in aia)
    assert cert.not_valid_before_utc < pki.now
    assert [c.subject for c in pki.leaf.chain] == [
        cert.subject,
        pki.intermediate.cert.subject,
        pki.root.cert.subject,
    ]


def test_tsa_and_ocsp_profiles(pki: TestPki) -> None:
    tsa_eku = pki.tsa.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert tsa_eku.critical and list(tsa_eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]
    assert pki.expired_tsa.cert.not_valid_after_utc < pki.now
    pki.ocsp.cert.extensions.get_extension_for_class(x509.OCSPNoCheck)
    assert (
        ExtendedKeyUsageOID.OCSP_SIGNING
        in pki.ocsp.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    )


def test_bad_variants(pki: TestPki) -> None:
    assert pki.weak_key_leaf.key.key_size == 1024
    assert pki.sha1_leaf.cert.signature_algorithm_oid.dotted_string == "1.2.840.113549.1.1.5"
    assert (
        LIFETIME_SIGNING
        in pki.lifetime_eku_leaf.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    )
    assert list(pki.wrong_eku_leaf.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH
    ]
    assert pki.self_issued.cert.subject == pki.self_issued.cert.issuer
    assert pki.untrusted_root.cert not in pki.trusted_roots
    assert pki.revocations.revocation_of(
        pki.intermediate.cert.subject.public_bytes(), pki.revoked_leaf.serial
    )


def test_pfx_round_trip(pki: TestPki, tmp_path: Path) -> None:
    path = pki.leaf.write_pfx(tmp_path / "leaf.pfx")
    key, cert, extra = pkcs12.load_key_and_certificates(path.read_bytes(), TEST_PASSWORD.encode())
    assert cert == pki.leaf.cert
    assert key is not None and key.public_key() == pki.leaf.key.public_key()
    assert extra == pki.leaf.chain[1:]
    files = pki.leaf.write_pem_key_and_chain(tmp_path)
    assert files.chain.read_bytes().count(b"BEGIN CERTIFICATE") == 3
    assert len(pki.leaf.sha256_fingerprint) == 64 and pki.leaf.sha256_fingerprint.isupper()


def test_runtime_leaf_and_revocation(pki: TestPki) -> None:
    fresh = pki.issue_leaf("runtime-revocation-leaf")
    issuer = pki.intermediate.cert.subject.public_bytes()
    assert pki.revocations.revocation_of(issuer, fresh.serial) is None
    pki.revoke(fresh)
    crl = x509.load_der_x509_crl(pki.crl_der(pki.intermediate))
    assert crl.get_revoked_certificate_by_serial_number(fresh.serial) is not None
    assert crl.is_signature_valid(pki.intermediate.key.public_key())
    pki.unrevoke(fresh)
    crl = x509.load_der_x509_crl(pki.crl_der(pki.intermediate))
    assert crl.get_revoked_certificate_by_serial_number(fresh.serial) is None
