"""Byte identity of signing across performance work: for a fixed key, certificate, package, signing time, TSA clock
and nonce, ``sign_package``/``repo_sign_package`` and the TSA must write exactly the bytes they wrote before
(the SHA-256 digests below were taken from the code before the caches and fast paths of issue 12 went in).

Everything that varies by run is pinned: the key material (``golden_keys.py``), the zip entries' times, the signing
time, the TSA's clock (its serial number follows from it) and the client's nonce. Nothing depends on today's date:
the certificates are valid 2020-2049 and every check is made at the fixed time.
"""

from __future__ import annotations

import hashlib
import threading
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from tests.unit.sign import golden_keys

from nuseal.enums import HashAlgorithmName
from nuseal.sign.author import AuthorSignRequest, sign_package
from nuseal.sign.common import SignOptions
from nuseal.sign.repository import RepositorySignRequest, repo_sign_package
from nuseal.sign.signers import KeySigner
from nuseal.timestamp import client
from nuseal.timestamp.client import HttpTimestamper, InProcessTimestamper, TimestampRequest
from nuseal.timestamp.tsa import TimestampAuthority, make_server

SIGNING_TIME = datetime(2026, 6, 1, 12, 30, 15, tzinfo=UTC)
TSA_TIME = datetime(2026, 6, 1, 12, 30, 16, tzinfo=UTC)
NONCE = bytes(range(1, 33))

#: SHA-256 of the outputs written by the code before issue 12's signing caches (commit 94e0378).
GOLDEN = {
    "author-sha256-ts256": "2bdd73015d13520d2c73ec659c71a7d050d04704dce70e3180bb621674bba266",
    "author-sha256-ts256-next-serial": "47356e2361b4e1d2f14979f3c5da8722c7dfe4402032fd322a2e20d0440f8f45",
    "author-sha512-ts384": "f6ad1d1cfa41d532e9d9d354bd2ed46551bbc5b1ef08c2fa56b0eb5bdec414a0",
    "author-no-timestamp": "f59a3f10736c50fd95081e8f3e6384f3ba67549af759a79d80e9475fc87efa5c",
    "repository-ts256": "39c854ea7422e910010e9d20d0d39743f3ecc50e518a51da06c1e781e9174d0f",
    "repository-countersignature-ts256": "0e8d2a85ee594079083cd6a31f571a1a4baf5f6f83f3cc683084d495470d8ed2",
    "repository-countersignature-replaced": "2518590db27b34bf71865d4d997512b12fcaa3f7551d1f437332b10c23b6a8d2",
    "tsa-response": "eff475108e72a5b2ec11ef0f4c2270c719861fa3d27e3d9b772a4826241aaaf4",
}


def _key(pem: bytes) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


@pytest.fixture
def signer() -> KeySigner:
    leaf = x509.load_pem_x509_certificate(golden_keys.SIGNER_CERT)
    root = x509.load_pem_x509_certificate(golden_keys.ROOT_CERT)
    return KeySigner(_key(golden_keys.SIGNER_KEY), leaf, (leaf, root))


def _tsa() -> TimestampAuthority:
    """A fresh authority: its serial numbers start from its clock, so every first token is the same."""
    certificate = x509.load_pem_x509_certificate(golden_keys.TSA_CERT)
    root = x509.load_pem_x509_certificate(golden_keys.ROOT_CERT)
    return TimestampAuthority(certificate, _key(golden_keys.TSA_KEY), [root], clock=lambda: TSA_TIME)


@pytest.fixture
def tsa() -> TimestampAuthority:
    return _tsa()


@pytest.fixture(autouse=True)
def fixed_nonce(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client, "new_nonce", lambda: NONCE)


def _package(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data, method in (
            ("Golden.Package.nuspec", b"<package><metadata><id>Golden.Package</id><version>1.0.0</version>"
                                      b"</metadata></package>", zipfile.ZIP_DEFLATED),
            ("lib/net8.0/Golden.dll", bytes(range(256)) * 40, zipfile.ZIP_STORED),
        ):  # fmt: skip
            info = zipfile.ZipInfo(name, date_time=(2026, 5, 4, 3, 2, 0))
            info.compress_type = method
            zf.writestr(info, data)
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check(name: str, digest: str) -> None:
    assert GOLDEN[name], f"{name}: {digest}"
    assert digest == GOLDEN[name], name


@pytest.mark.parametrize(("name", "hash_algorithm", "timestamp_hash_algorithm", "timestamped"), [
    ("author-sha256-ts256", HashAlgorithmName.SHA256, HashAlgorithmName.SHA256, True),
    ("author-sha512-ts384", HashAlgorithmName.SHA512, HashAlgorithmName.SHA384, True),
    ("author-no-timestamp", HashAlgorithmName.SHA256, HashAlgorithmName.SHA256, False),
])  # fmt: skip
def test_author_signature_bytes_are_unchanged(
    tmp_path: Path, signer: KeySigner, name: str, hash_algorithm: HashAlgorithmName,
    timestamp_hash_algorithm: HashAlgorithmName, timestamped: bool,
) -> None:
    src = _package(tmp_path / "Golden.Package.1.0.0.nupkg")
    options = SignOptions(hash_algorithm, timestamp_hash_algorithm)
    # Twice with the same signer: what is cached between signatures must not change bytes.
    for round_ in range(2):
        stamper = InProcessTimestamper(_tsa(), clock=lambda: TSA_TIME) if timestamped else None
        dst = tmp_path / f"out{round_}.nupkg"
        sign_package(src, dst, AuthorSignRequest(signer, options), timestamper=stamper, now=SIGNING_TIME)
        _check(name, _digest(dst))


def test_repository_signature_bytes_are_unchanged(tmp_path: Path, signer: KeySigner, tsa: TimestampAuthority) -> None:
    src = _package(tmp_path / "Golden.Package.1.0.0.nupkg")
    request = RepositorySignRequest(signer, "https://golden.example/v3/index.json", ("golden",))
    dst = tmp_path / "out.nupkg"
    repo_sign_package(src, dst, request, timestamper=InProcessTimestamper(tsa, clock=lambda: TSA_TIME),
                      now=SIGNING_TIME)
    _check("repository-ts256", _digest(dst))


@pytest.fixture
def served(tsa: TimestampAuthority) -> Iterator[str]:
    server = make_server(tsa, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host!s}:{port}/"
    finally:
        server.shutdown()
        server.server_close()


def test_tsa_answers_are_unchanged_in_process_and_over_http(tmp_path: Path, signer: KeySigner, served: str) -> None:
    request = TimestampRequest.over(b"golden signature value", "sha256").to_der()
    _check("tsa-response", hashlib.sha256(_tsa().respond(request)).hexdigest())
    src = _package(tmp_path / "Golden.Package.1.0.0.nupkg")
    with HttpTimestamper(served, clock=lambda: TSA_TIME) as stamper:
        # The second request reuses the keep-alive connection; its token has the next serial number.
        for golden in ("author-sha256-ts256", "author-sha256-ts256-next-serial"):
            dst = tmp_path / f"{golden}.nupkg"
            sign_package(src, dst, AuthorSignRequest(signer, SignOptions()), timestamper=stamper, now=SIGNING_TIME)
            _check(golden, _digest(dst))


def test_repository_countersignature_and_its_replacement_bytes_are_unchanged(tmp_path: Path,
                                                                             signer: KeySigner) -> None:
    # A feed's rotation: an author-signed package gets a repository countersignature, which a later re-sign strips
    # and replaces (nuseal.cms.countersign's DER edits since issue 11; asn1crypto's before). Digests taken from
    # 94e0378's code and checked against main at c22d871 (both asn1crypto's edit).
    src = _package(tmp_path / "Golden.Package.1.0.0.nupkg")
    stamper = InProcessTimestamper(_tsa(), clock=lambda: TSA_TIME)
    sign_package(src, src, AuthorSignRequest(signer), timestamper=stamper, now=SIGNING_TIME)
    request = RepositorySignRequest(signer, "https://golden.example/v3/index.json", ("golden", "Other"),
                                    SignOptions(overwrite=True))  # fmt: skip
    first, second = tmp_path / "countersigned.nupkg", tmp_path / "re-signed.nupkg"
    repo_sign_package(src, first, request, timestamper=InProcessTimestamper(_tsa(), clock=lambda: TSA_TIME),
                      now=SIGNING_TIME)  # fmt: skip
    later = RepositorySignRequest(signer, "https://golden.example/v3/index.json", ("golden",),
                                  SignOptions(overwrite=True))  # fmt: skip
    repo_sign_package(first, second, later, timestamper=None, now=SIGNING_TIME)
    _check("repository-countersignature-ts256", _digest(first))
    _check("repository-countersignature-replaced", _digest(second))
