"""Signer backends: PFX / PEM loading, certificate selection by fingerprint, clear NU3001/NU3043 errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from tests.support.pki import TEST_PASSWORD, TestPki

from nuseal.codes import NuCode
from nuseal.errors import SigningError
from nuseal.sign.signers import KeySigner, PemSigner, PfxSigner, check_signature
from nuseal.verify.policy import HashAlgorithmName


def test_pfx_signer_loads_key_certificate_and_ordered_chain(pki: TestPki, tmp_path: Path) -> None:
    signer = PfxSigner.load(pki.leaf.write_pfx(tmp_path / "leaf.pfx"), TEST_PASSWORD)
    assert signer.certificate == pki.leaf.cert
    assert list(signer.chain) == pki.leaf.chain
    value = signer.sign_raw(b"data", HashAlgorithmName.SHA384)
    pki.leaf.cert.public_key().verify(value, b"data", padding.PKCS1v15(), hashes.SHA384())  # type: ignore[union-attr]


def test_pfx_wrong_password_is_nu3001_naming_the_file(pki: TestPki, tmp_path: Path) -> None:
    path = pki.leaf.write_pfx(tmp_path / "leaf.pfx")
    with pytest.raises(SigningError, match="password is incorrect") as caught:
        PfxSigner.load(path, "wrong")
    assert caught.value.code is NuCode.NU3001 and str(path) in caught.value.message


def test_missing_certificate_file_is_nu3001(tmp_path: Path) -> None:
    with pytest.raises(SigningError, match="not found") as caught:
        PfxSigner.load(tmp_path / "absent.pfx", "x")
    assert caught.value.code is NuCode.NU3001


def test_fingerprint_selects_sha256_and_warns_for_sha1(pki: TestPki, tmp_path: Path) -> None:
    path = pki.leaf.write_pfx(tmp_path / "leaf.pfx")
    chosen = PfxSigner.load(path, TEST_PASSWORD, fingerprint=pki.leaf.sha256_fingerprint.lower())
    assert chosen.certificate == pki.leaf.cert and chosen.warnings == ()
    legacy = PfxSigner.load(path, TEST_PASSWORD, fingerprint=pki.leaf.sha1_fingerprint)
    assert [w.code for w in legacy.warnings] == [NuCode.NU3043]


@pytest.mark.parametrize("fingerprint", ["ABC", "Z" * 64, "0" * 63])
def test_malformed_fingerprint_is_nu3043(pki: TestPki, tmp_path: Path, fingerprint: str) -> None:
    path = pki.leaf.write_pfx(tmp_path / "leaf.pfx")
    with pytest.raises(SigningError) as caught:
        PfxSigner.load(path, TEST_PASSWORD, fingerprint=fingerprint)
    assert caught.value.code is NuCode.NU3043


def test_unknown_fingerprint_is_nu3001(pki: TestPki, tmp_path: Path) -> None:
    path = pki.leaf.write_pfx(tmp_path / "leaf.pfx")
    with pytest.raises(SigningError, match="No certificate with fingerprint") as caught:
        PfxSigner.load(path, TEST_PASSWORD, fingerprint="AB" * 32)
    assert caught.value.code is NuCode.NU3001


def test_fingerprint_of_a_chain_certificate_does_not_match_the_key(pki: TestPki, tmp_path: Path) -> None:
    path = pki.leaf.write_pfx(tmp_path / "leaf.pfx")
    with pytest.raises(SigningError, match="does not match its private key"):
        PfxSigner.load(path, TEST_PASSWORD, fingerprint=pki.intermediate.sha256_fingerprint)


def test_pem_signer_separate_and_combined_files(pki: TestPki, tmp_path: Path) -> None:
    files = pki.leaf.write_pem_key_and_chain(tmp_path)
    separate = PemSigner.load([files.key, files.chain])
    combined_path = tmp_path / "combined.pem"
    combined_path.write_bytes(pki.leaf.key_pem + pki.leaf.chain_pem)
    combined = PemSigner.load([combined_path])
    for signer in (separate, combined):
        assert signer.certificate == pki.leaf.cert
        assert list(signer.chain) == pki.leaf.chain


def test_pem_without_key_is_nu3001(pki: TestPki, tmp_path: Path) -> None:
    files = pki.leaf.write_pem_key_and_chain(tmp_path)
    with pytest.raises(SigningError, match="exactly one private key") as caught:
        PemSigner.load([files.chain])
    assert caught.value.code is NuCode.NU3001


def test_check_signature_catches_a_key_that_does_not_match(pki: TestPki) -> None:
    value = pki.tsa.key.sign(b"data", padding.PKCS1v15(), hashes.SHA256())
    with pytest.raises(SigningError, match="does not match") as caught:
        check_signature(pki.leaf.cert, b"data", value, HashAlgorithmName.SHA256)
    assert caught.value.code is NuCode.NU3001


def test_sign_raw_checked_checks_an_in_memory_key_once_and_other_signers_every_time(
    pki: TestPki, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nuseal.sign import common

    checks: list[bytes] = []
    monkeypatch.setattr(common, "_MATCHED", {})  # other tests signed with the session PKI's keys already
    real_check = common.check_signature
    monkeypatch.setattr(common, "check_signature", lambda *args: (checks.append(args[1]), real_check(*args))[1])
    mismatched = KeySigner(pki.tsa.key, pki.leaf.cert, (pki.leaf.cert,))
    for _ in range(2):  # a key that does not match is refused every time, never remembered
        with pytest.raises(SigningError, match="does not match"):
            common.sign_raw_checked(mismatched, b"a", HashAlgorithmName.SHA256)
    assert len(checks) == 2
    signer = KeySigner(pki.leaf.key, pki.leaf.cert, (pki.leaf.cert,))
    for data in (b"b", b"c", b"d"):
        common.sign_raw_checked(signer, data, HashAlgorithmName.SHA256)
    assert checks[2:] == [b"b"]  # matched once: the pair is known

    class TokenLike:  # any other backend (a PKCS#11 token): checked on every signature
        certificate = pki.leaf.cert
        chain = (pki.leaf.cert,)

        def sign_raw(self, data: bytes, hash_algorithm: HashAlgorithmName) -> bytes:
            return signer.sign_raw(data, hash_algorithm)

    for data in (b"e", b"f"):
        common.sign_raw_checked(TokenLike(), data, HashAlgorithmName.SHA256)
    assert checks[3:] == [b"e", b"f"]


def test_a_damaged_key_loaded_without_the_prime_tests_is_refused_by_its_first_signature(
    pki: TestPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Keys are loaded without cryptography's RSA validation (sign.pfx, _load_pem_key): a damaged private exponent
    # (and CRT values to match it) loads, and the first signature's check against the certificate refuses it.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from nuseal.sign import common

    monkeypatch.setattr(common, "_MATCHED", {})
    good = pki.leaf.key.private_numbers()
    d = good.d ^ (1 << 100)
    damaged = rsa.RSAPrivateNumbers(good.p, good.q, d, d % (good.p - 1), d % (good.q - 1), good.iqmp,
                                    good.public_numbers).private_key(unsafe_skip_rsa_key_validation=True)
    path = tmp_path / "damaged.pem"
    path.write_bytes(damaged.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()) + pki.leaf.chain_pem)
    signer = PemSigner.load([path])
    with pytest.raises(SigningError, match="does not match") as caught:
        common.sign_raw_checked(signer, b"data", HashAlgorithmName.SHA256)
    assert caught.value.code is NuCode.NU3001
