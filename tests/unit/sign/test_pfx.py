"""``nuseal.sign.pfx``: PKCS#12 loading without the RSA key check gives exactly cryptography's result, takes its own
path for the usual files, and leaves everything else (and every error) to cryptography."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from tests.support.pki import TestPki

from nuseal.sign import pfx

PASSWORD = b"pfx-Test 1"


def _builder(algorithm: pkcs12.PBES, mac: hashes.HashAlgorithm, rounds: int = 2048) -> Any:
    return (serialization.PrivateFormat.PKCS12.encryption_builder().kdf_rounds(rounds)
            .key_cert_algorithm(algorithm).hmac_hash(mac).build(PASSWORD))


#: Encryptions cryptography writes: its default, the test PKI's, the legacy 3DES/SHA-1 form Windows still exports.
ENCRYPTIONS: dict[str, Callable[[], Any]] = {
    "best-available": lambda: serialization.BestAvailableEncryption(PASSWORD),
    "pbes2-aes256-sha256": lambda: _builder(pkcs12.PBES.PBESv2SHA256AndAES256CBC, hashes.SHA256()),
    "pbes1-3des-sha1": lambda: _builder(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC, hashes.SHA1()),
    "pbes2-one-round": lambda: _builder(pkcs12.PBES.PBESv2SHA256AndAES256CBC, hashes.SHA256(), rounds=1),
}


def _same(found: pfx.Loaded, expected: pfx.Loaded) -> None:
    key, cert, others = found
    want_key, want_cert, want_others = expected
    assert isinstance(key, rsa.RSAPrivateKey) and isinstance(want_key, rsa.RSAPrivateKey)
    assert key.private_numbers() == want_key.private_numbers()
    assert cert == want_cert
    assert others == want_others


def _both_ways(data: bytes, password: bytes | None = PASSWORD) -> pfx.Loaded:
    found = pfx.load_key_and_certificates(data, password)
    _same(found, pkcs12.load_key_and_certificates(data, password))
    return found


@pytest.mark.parametrize("encryption", sorted(ENCRYPTIONS))
def test_cryptography_files_take_the_fast_path_with_the_same_result(pki: TestPki, encryption: str) -> None:
    data = pkcs12.serialize_key_and_certificates(b"leaf", pki.leaf.key, pki.leaf.cert, pki.leaf.chain[1:],
                                                 ENCRYPTIONS[encryption]())
    _same(pfx._usual(data, PASSWORD), pkcs12.load_key_and_certificates(data, PASSWORD))
    _, cert, others = _both_ways(data)
    assert cert == pki.leaf.cert and others == pki.leaf.chain[1:]


def test_the_certificate_is_the_first_matching_the_key_in_bag_order(pki: TestPki) -> None:
    # No certificate given as "the" certificate: the leaf sits among the others, after a CA.
    extra = [pki.root.cert, pki.leaf.cert, *pki.leaf.chain[1:]]
    data = pkcs12.serialize_key_and_certificates(b"x", pki.leaf.key, None, extra, ENCRYPTIONS["best-available"]())
    pfx._usual(data, PASSWORD)
    _, cert, others = _both_ways(data)
    assert cert == pki.leaf.cert and pki.leaf.cert not in others


def test_a_certificate_of_another_key_is_not_the_certificate(pki: TestPki) -> None:
    data = pkcs12.serialize_key_and_certificates(b"x", pki.leaf.key, None, [pki.root.cert],
                                                 ENCRYPTIONS["best-available"]())
    pfx._usual(data, PASSWORD)
    _, cert, others = _both_ways(data)
    assert cert is None and others == [pki.root.cert]


def _openssl_pfx(pki: TestPki, tmp_path: Path, *options: str) -> bytes:
    key = tmp_path / "key.pem"
    key.write_bytes(pki.leaf.key_pem)
    cert = pki.leaf.write_cert(tmp_path / "cert.pem")
    chain = tmp_path / "chain.pem"
    chain.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in pki.leaf.chain[1:]))
    out = tmp_path / "out.pfx"
    subprocess.run(["openssl", "pkcs12", "-export", "-inkey", str(key), "-in", str(cert), "-certfile", str(chain),
                    "-passout", f"pass:{PASSWORD.decode()}", "-out", str(out), *options], check=True)
    return out.read_bytes()


OPENSSL_OPTIONS = {
    "default": (),
    "3des-sha1": ("-keypbe", "PBE-SHA1-3DES", "-certpbe", "PBE-SHA1-3DES", "-macalg", "sha1"),
    "plain-certs": ("-certpbe", "NONE"),
    "mac-sha512": ("-macalg", "sha512"),
}


@pytest.mark.parametrize("options", list(OPENSSL_OPTIONS.values()), ids=list(OPENSSL_OPTIONS))
def test_openssl_files_take_the_fast_path_with_the_same_result(pki: TestPki, tmp_path: Path,
                                                               options: tuple[str, ...]) -> None:
    data = _openssl_pfx(pki, tmp_path, *options)
    _same(pfx._usual(data, PASSWORD), pkcs12.load_key_and_certificates(data, PASSWORD))
    _, cert, others = _both_ways(data)
    assert cert == pki.leaf.cert and others == pki.leaf.chain[1:]


def test_files_without_a_mac_and_unusual_passwords_are_read_by_cryptography(pki: TestPki, tmp_path: Path) -> None:
    no_mac = _openssl_pfx(pki, tmp_path, "-nomac")
    with pytest.raises(pfx._Unusual):
        pfx._usual(no_mac, PASSWORD)
    _both_ways(no_mac)
    unencrypted = pkcs12.serialize_key_and_certificates(b"x", pki.leaf.key, pki.leaf.cert, None,
                                                        serialization.NoEncryption())
    _both_ways(unencrypted, None)
    accented = pkcs12.serialize_key_and_certificates(b"x", pki.leaf.key, pki.leaf.cert, None,
                                                     serialization.BestAvailableEncryption("pässwörd".encode()))
    with pytest.raises(pfx._Unusual):
        pfx._usual(accented, "pässwörd".encode())
    _both_ways(accented, "pässwörd".encode())


def _error(load: Callable[[bytes, bytes | None], object], data: bytes, password: bytes | None) -> str:
    with pytest.raises(ValueError) as caught:
        load(data, password)
    return str(caught.value)


def test_wrong_passwords_and_damaged_files_fail_as_cryptography_fails(pki: TestPki) -> None:
    data = pkcs12.serialize_key_and_certificates(b"x", pki.leaf.key, pki.leaf.cert, None,
                                                 ENCRYPTIONS["best-available"]())
    with pytest.raises(pfx._Unusual):  # the MAC does not match
        pfx._usual(data, b"wrong")
    cases: list[tuple[bytes, bytes | None]] = [(data, b"wrong"), (data, None), (data, b""), (data[:-40], PASSWORD),
                                               (b"", PASSWORD), (b"\x30\x03\x02\x01\x03", PASSWORD)]
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 1  # inside the authenticated contents: the MAC no longer matches
    cases.append((bytes(flipped), PASSWORD))
    for case, password in cases:
        assert _error(pfx.load_key_and_certificates, case, password) == _error(
            pkcs12.load_key_and_certificates, case, password)


def test_the_mac_key_derivation_matches_the_rfc_7292_construction() -> None:
    # The derivation for a key of one digest, written out the long way (B.2 steps 1-6, with c = 1).
    import hashlib

    salt, secret = b"\x01\x02\x03\x04\x05\x06\x07\x08", "test".encode("utf-16-be") + b"\0\0"
    v = 64
    d = bytes([3]) * v
    s = (salt * (v // len(salt) + 1))[: v * ((len(salt) + v - 1) // v)]
    p = (secret * (v // len(secret) + 1))[: v * ((len(secret) + v - 1) // v)]
    a = d + s + p
    for _ in range(3):
        a = hashlib.sha256(a).digest()
    assert pfx._pkcs12_kdf("sha256", v, 32, salt, secret, 3) == a


def test_an_iteration_count_over_the_limit_is_left_to_cryptography(pki: TestPki,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    data = pkcs12.serialize_key_and_certificates(b"x", pki.leaf.key, pki.leaf.cert, None,
                                                 ENCRYPTIONS["best-available"]())
    monkeypatch.setattr(pfx, "_MAX_MAC_ITERATIONS", 2047)  # the file's MAC has 2048
    with pytest.raises(pfx._Unusual):
        pfx._usual(data, PASSWORD)
    _both_ways(data)


def test_loaded_certificates_are_cryptography_certificates(pki: TestPki) -> None:
    data = pkcs12.serialize_key_and_certificates(b"x", pki.leaf.key, pki.leaf.cert, pki.leaf.chain[1:],
                                                 ENCRYPTIONS["best-available"]())
    _, cert, others = pfx.load_key_and_certificates(data, PASSWORD)
    assert isinstance(cert, x509.Certificate) and all(isinstance(c, x509.Certificate) for c in others)
