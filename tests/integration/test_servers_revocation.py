"""The loopback CRL server and OCSP responder, checked with OpenSSL and httpx over real sockets."""

from __future__ import annotations

import base64
import subprocess
import urllib.parse
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.x509 import ocsp
from tests.support.pki import IssuedCert, TestPki
from tests.support.servers import LoopbackServer


def _openssl_ocsp(pki: TestPki, pki_dir: Path, leaf: IssuedCert, *extra: str) -> str:
    leaf_pem = pki_dir / f"{leaf.name}.pem"
    if not leaf_pem.exists():
        leaf.write_cert(leaf_pem)
    result = subprocess.run(
        ["openssl", "ocsp", "-issuer", str(pki_dir / "intermediate.pem"), "-cert", str(leaf_pem),
         "-url", pki.ocsp_url, "-CAfile", str(pki_dir / "root.pem"), "-timeout", "5", *extra],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return result.stdout + result.stderr


def test_openssl_ocsp_good(pki: TestPki, pki_dir: Path, ocsp_server: LoopbackServer) -> None:
    out = _openssl_ocsp(pki, pki_dir, pki.leaf)
    assert "Response verify OK" in out
    assert f"{pki_dir / 'leaf.pem'}: good" in out


def test_openssl_ocsp_revoked(pki: TestPki, pki_dir: Path, ocsp_server: LoopbackServer) -> None:
    out = _openssl_ocsp(pki, pki_dir, pki.revoked_leaf)
    assert "Response verify OK" in out
    assert ": revoked" in out and "keyCompromise" in out


def test_openssl_ocsp_runtime_revocation_and_unknown(
    pki: TestPki, pki_dir: Path, ocsp_server: LoopbackServer
) -> None:
    fresh = pki.issue_leaf("ocsp-runtime-leaf")
    assert ": good" in _openssl_ocsp(pki, pki_dir, fresh)
    pki.revoke(fresh, reason=x509.ReasonFlags.superseded)
    out = _openssl_ocsp(pki, pki_dir, fresh)
    assert ": revoked" in out and "superseded" in out
    pki.unrevoke(fresh)
    pki.revocations.mark_unknown(fresh.cert)
    assert ": unknown" in _openssl_ocsp(pki, pki_dir, fresh)


def test_openssl_ocsp_nonce_is_echoed(pki: TestPki, pki_dir: Path, ocsp_server: LoopbackServer) -> None:
    out = _openssl_ocsp(pki, pki_dir, pki.leaf, "-nonce")
    assert "Response verify OK" in out
    assert "WARNING: no nonce in response" not in out and "Nonce Verify Error" not in out


def _request(cert: x509.Certificate, issuer: x509.Certificate, nonce: bytes | None = None) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA256())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def test_ocsp_get_with_sha256_cert_id(pki: TestPki, ocsp_server: LoopbackServer) -> None:
    der = _request(pki.leaf.cert, pki.intermediate.cert, nonce=b"\x01" * 16)
    url = pki.ocsp_url + urllib.parse.quote(base64.b64encode(der).decode(), safe="")
    response = ocsp.load_der_ocsp_response(httpx.get(url).content)
    assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"\x01" * 16
    assert response.certificates == [pki.ocsp.cert]


def test_ocsp_intermediate_status_signed_by_root(pki: TestPki, ocsp_server: LoopbackServer) -> None:
    der = _request(pki.intermediate.cert, pki.root.cert)
    response = ocsp.load_der_ocsp_response(httpx.post(pki.ocsp_url, content=der).content)
    assert response.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert response.certificates == []
    pki.root.key.public_key().verify(
        response.signature, response.tbs_response_bytes, padding.PKCS1v15(), hashes.SHA256()
    )


def test_ocsp_bad_requests(pki: TestPki, ocsp_server: LoopbackServer) -> None:
    garbage = ocsp.load_der_ocsp_response(httpx.post(pki.ocsp_url, content=b"nonsense").content)
    assert garbage.response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    foreign = pki.issue_leaf("ocsp-foreign-leaf", issuer=pki.untrusted_root)
    stranger = _request(foreign.cert, pki.leaf.cert)  # pki.leaf is no CA of this PKI
    answer = ocsp.load_der_ocsp_response(httpx.post(pki.ocsp_url, content=stranger).content)
    assert answer.response_status == ocsp.OCSPResponseStatus.UNAUTHORIZED


def test_crl_server_serves_signed_crls(pki: TestPki, crl_server: LoopbackServer, tmp_path: Path) -> None:
    response = httpx.get(pki.crl_url(pki.intermediate))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pkix-crl"
    crl = x509.load_der_x509_crl(response.content)
    assert crl.is_signature_valid(pki.intermediate.key.public_key())
    assert crl.get_revoked_certificate_by_serial_number(pki.revoked_leaf.serial) is not None
    assert crl.get_revoked_certificate_by_serial_number(pki.leaf.serial) is None
    (tmp_path / "inter.crl").write_bytes(response.content)
    text = subprocess.run(
        ["openssl", "crl", "-inform", "DER", "-in", str(tmp_path / "inter.crl"), "-text", "-noout"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert f"Serial Number: {pki.revoked_leaf.serial:X}" in text.replace(" 0", " ")
    assert httpx.get(pki.ca_issuers_url(pki.intermediate)).content == pki.intermediate.der
    assert httpx.get(f"{pki.crl_base_url}/leaf.crl").status_code == 404


def test_openssl_verifies_with_crls_from_server(
    pki: TestPki, pki_dir: Path, crl_server: LoopbackServer
) -> None:
    result = subprocess.run(
        ["openssl", "verify", "-crl_check", "-crl_download", "-CAfile", str(pki_dir / "root.pem"),
         "-untrusted", str(pki_dir / "intermediate.pem"), str(pki_dir / "revoked-leaf.pem")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert "certificate revoked" in result.stdout + result.stderr
    good = subprocess.run(
        ["openssl", "verify", "-crl_check", "-crl_download", "-CAfile", str(pki_dir / "root.pem"),
         "-untrusted", str(pki_dir / "intermediate.pem"), str(pki_dir / "leaf.pem")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert good.returncode == 0, good.stdout + good.stderr


def test_server_stop_and_restart_on_same_port(pki: TestPki, crl_server: LoopbackServer) -> None:
    port = crl_server.port
    with crl_server.stopped(), pytest.raises(httpx.ConnectError):
        httpx.get(pki.crl_url(pki.root), timeout=2)
    assert crl_server.port == port == pki.crl_port
    assert httpx.get(pki.crl_url(pki.root)).status_code == 200


def test_server_forced_status_and_hits(pki: TestPki, crl_server: LoopbackServer) -> None:
    with crl_server.answering(503):
        assert httpx.get(pki.crl_url(pki.root)).status_code == 503
    before = len(crl_server.hits)
    httpx.get(pki.crl_url(pki.root))
    assert crl_server.hits[before:] == [("GET", "/root.crl")]
