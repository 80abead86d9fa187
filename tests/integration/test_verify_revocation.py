"""Revocation through the whole verifier, against the test PKI's OCSP responder and CRL server on 127.0.0.1.

Responder up and good → valid, no NU3018; signing certificate revoked → NU3012 error, status Suspect;
revoked (superseded) after the trusted timestamp → valid; responders down → NU3018 warning (online mode), still
valid, and the whole verification returns within the configured timeout, never hanging.
"""

from __future__ import annotations

import time
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from tests.support.pki import IssuedCert, TestPki
from tests.support.servers import LoopbackServer

from nuseal.codes import NuCode
from nuseal.enums import RevocationMode
from nuseal.sign.author import AuthorSignRequest, sign_package
from nuseal.sign.signers import KeySigner
from nuseal.timestamp.client import InProcessTimestamper
from nuseal.timestamp.tsa import TimestampAuthority
from nuseal.verify.engine import TrustContext, verify_package
from nuseal.verify.policy import VerificationPolicy
from nuseal.verify.result import PackageVerdict, Severity, Status
from nuseal.x509.revocation import RevocationChecker
from nuseal.x509.roots import TrustStore

TIMEOUT = 1.5


def _unsigned(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("Rev.Test.nuspec", '<?xml version="1.0"?><package><metadata><id>Rev.Test</id>'
                    "<version>1.0.0</version><authors>t</authors><description>d</description></metadata></package>")
        zf.writestr("lib/a.txt", "hello")
    return path


def _signed(tmp_path: Path, pki: TestPki, cert: IssuedCert, tsa: TimestampAuthority) -> Path:
    package = _unsigned(tmp_path / "Rev.Test.1.0.0.nupkg")
    signer = KeySigner(cert.key, cert.cert, tuple(c for c in cert.chain[1:]))
    sign_package(package, package, AuthorSignRequest(signer), timestamper=InProcessTimestamper(tsa),
                 now=datetime.now(UTC))
    return package


def _verify(package: Path, pki: TestPki, mode: RevocationMode = RevocationMode.ONLINE) -> PackageVerdict:
    store = TrustStore(code_signing=(pki.root.cert,), timestamping=(pki.root.cert,))
    policy = VerificationPolicy.verify_command()
    with RevocationChecker(mode, timeout=TIMEOUT) as checker:
        return verify_package(package, policy=policy, trust=TrustContext(store, checker), now=datetime.now(UTC))


@pytest.fixture
def tsa(pki: TestPki) -> TimestampAuthority:
    return TimestampAuthority(pki.tsa.cert, pki.tsa.key, pki.tsa.chain[1:], clock=lambda: datetime.now(UTC))


def test_good_certificate_with_responders_up_is_valid(tmp_path: Path, pki: TestPki, tsa: TimestampAuthority,
                                                      ocsp_server: LoopbackServer, crl_server: LoopbackServer) -> None:
    verdict = _verify(_signed(tmp_path, pki, pki.leaf, tsa), pki)
    assert verdict.valid, verdict.findings
    assert NuCode.NU3018 not in {f.code for f in verdict.findings}
    assert ocsp_server.hits or crl_server.hits  # revocation really was asked over HTTP


def test_revoked_signing_certificate_is_suspect(tmp_path: Path, pki: TestPki, tsa: TimestampAuthority,
                                                ocsp_server: LoopbackServer, crl_server: LoopbackServer) -> None:
    verdict = _verify(_signed(tmp_path, pki, pki.revoked_leaf, tsa), pki)
    assert not verdict.valid
    revoked = [f for f in verdict.findings if f.code is NuCode.NU3012]
    assert revoked and all(f.severity is Severity.ERROR for f in revoked)
    assert "Revoked" in revoked[0].message
    assert verdict.signatures[0].status is Status.SUSPECT


def test_superseded_after_trusted_timestamp_stays_valid(tmp_path: Path, pki: TestPki, tsa: TimestampAuthority,
                                                        ocsp_server: LoopbackServer,
                                                        crl_server: LoopbackServer) -> None:
    late = pki.issue_leaf("revoked-later-leaf")
    package = _signed(tmp_path, pki, late, tsa)
    pki.revoke(late, when=datetime.now(UTC) + timedelta(seconds=5), reason=x509.ReasonFlags.superseded)
    try:
        verdict = _verify(package, pki)
    finally:
        pki.unrevoke(late)
    assert verdict.valid, verdict.findings


def test_compromised_after_timestamp_is_still_revoked(tmp_path: Path, pki: TestPki, tsa: TimestampAuthority,
                                                      ocsp_server: LoopbackServer,
                                                      crl_server: LoopbackServer) -> None:
    late = pki.issue_leaf("compromised-later-leaf")
    package = _signed(tmp_path, pki, late, tsa)
    pki.revoke(late, when=datetime.now(UTC) + timedelta(seconds=5), reason=x509.ReasonFlags.key_compromise)
    try:
        verdict = _verify(package, pki)
    finally:
        pki.unrevoke(late)
    assert not verdict.valid
    assert verdict.signatures[0].status is Status.SUSPECT


def test_responders_down_gives_nu3018_warning_within_timeout(tmp_path: Path, pki: TestPki, tsa: TimestampAuthority,
                                                             ocsp_server: LoopbackServer,
                                                             crl_server: LoopbackServer) -> None:
    package = _signed(tmp_path, pki, pki.leaf, tsa)
    with ocsp_server.stopped(), crl_server.stopped():
        start = time.monotonic()
        verdict = _verify(package, pki)
        elapsed = time.monotonic() - start
    warnings = [f for f in verdict.findings if f.code is NuCode.NU3018]
    assert warnings and all(f.severity is Severity.WARNING for f in warnings)
    assert "could not be reached" in warnings[0].message
    assert verdict.valid  # every shipped policy allows unknown revocation
    # Each chain element (leaf, intermediate; TSA leaf, intermediate) is bounded by the checker's total timeout;
    # unreachable URLs are remembered, so the whole run stays far below "hang".
    assert elapsed < 4 * 2 * TIMEOUT + 2


def test_offline_mode_makes_no_requests_and_only_informs(tmp_path: Path, pki: TestPki, tsa: TimestampAuthority,
                                                         ocsp_server: LoopbackServer,
                                                         crl_server: LoopbackServer) -> None:
    package = _signed(tmp_path, pki, pki.leaf, tsa)
    before = len(ocsp_server.hits) + len(crl_server.hits)
    verdict = _verify(package, pki, RevocationMode.OFFLINE)
    assert len(ocsp_server.hits) + len(crl_server.hits) == before
    assert verdict.valid
    assert all(f.severity is Severity.INFO for f in verdict.findings if f.code is NuCode.NU3018)
