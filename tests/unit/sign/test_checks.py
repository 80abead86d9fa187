"""Sign-time certificate checks: the verdict for a chain is remembered, a refusal never is."""

from __future__ import annotations

import pytest
from tests.support.pki import TestPki

from nuseal.codes import NuCode
from nuseal.errors import CertificateError
from nuseal.sign import checks
from nuseal.x509 import certs


def test_a_verdict_is_remembered_per_chain_time_and_store(pki: TestPki, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    real = certs.check_signing_certificate
    monkeypatch.setattr(certs, "check_signing_certificate", lambda cert, now: (calls.append(cert), real(cert, now))[1])
    checks._signing_certificate_verdict.cache_clear()
    chain = [pki.self_issued.cert]
    first = checks.check_signing_certificate(chain, pki.now)
    assert [w.code for w in first] == [NuCode.NU3018]
    first.clear()  # the caller's list is its own
    assert [w.code for w in checks.check_signing_certificate(chain, pki.now)] == [NuCode.NU3018]
    assert len(calls) == 1
    checks.check_signing_certificate(chain, pki.now.replace(second=(pki.now.second + 1) % 60))  # another time
    assert len(calls) == 2


def test_a_refusal_is_checked_again_every_time(pki: TestPki, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    real = certs.check_signing_certificate
    monkeypatch.setattr(certs, "check_signing_certificate", lambda cert, now: (calls.append(cert), real(cert, now))[1])
    for _ in range(2):
        with pytest.raises(CertificateError) as caught:
            checks.check_signing_certificate([pki.expired_leaf.cert, *pki.expired_leaf.chain[1:]], pki.now)
        assert caught.value.code is NuCode.NU3018
    assert len(calls) == 2
