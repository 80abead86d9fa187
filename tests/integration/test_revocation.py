"""Revocation against the loopback OCSP responder and CRL server (spec §5.3, §6.4).

Each test uses its own ``httpx.Client`` (a pooled keep-alive connection would outlive a stopped server) and its
own checker and cache unless it tests sharing. Server ``hits`` are cumulative, so tests compare counts.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from tests.support.pki import IssuedCert, TestPki
from tests.support.servers import LoopbackServer, Reply, Responder, ocsp_response_der

from nuseal import oids
from nuseal.enums import RevocationMode
from nuseal.x509.chain import ChainStatus, build_chain
from nuseal.x509.revocation import RevocationCache, RevocationChecker

S = ChainStatus
_names = itertools.count()


def utcnow() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def client(running_servers: None) -> Iterator[httpx.Client]:
    with httpx.Client() as fresh:
        yield fresh


def online(client: httpx.Client, **kwargs: object) -> RevocationChecker:
    return RevocationChecker(RevocationMode.ONLINE, client=client, clock=utcnow, **kwargs)  # type: ignore[arg-type]


def fresh_leaf(pki: TestPki, label: str) -> IssuedCert:
    return pki.issue_leaf(f"revocation-{label}-{next(_names)}")


def test_good_by_ocsp(pki: TestPki, client: httpx.Client, ocsp_server: LoopbackServer,
                      crl_server: LoopbackServer) -> None:  # fmt: skip
    leaf = fresh_leaf(pki, "good")
    ocsp_before, crl_before = len(ocsp_server.hits), len(crl_server.hits)
    result = online(client).check(leaf.cert, pki.intermediate.cert, utcnow())
    assert result.status == "good"
    assert result.source == pki.ocsp_url
    assert len(ocsp_server.hits) == ocsp_before + 1
    assert len(crl_server.hits) == crl_before


def test_issuer_signed_ocsp_for_an_intermediate(pki: TestPki, client: httpx.Client) -> None:
    result = online(client).check(pki.intermediate.cert, pki.root.cert, utcnow())
    assert (result.status, result.source) == ("good", pki.ocsp_url)


def test_revoked_key_compromise(pki: TestPki, client: httpx.Client) -> None:
    leaf = fresh_leaf(pki, "compromised")
    when = pki.now - timedelta(days=3)
    pki.revoke(leaf, when=when, reason=x509.ReasonFlags.key_compromise)
    checker = online(client)
    result = checker.check(leaf.cert, pki.intermediate.cert, utcnow())
    assert (result.status, result.reason, result.revocation_time) == ("revoked", "keyCompromise", when)
    # Compromise: revoked even for a signature timestamped before the revocation.
    before = build_chain(leaf.cert, extra_certificates=[pki.intermediate.cert], trust_anchors=pki.trusted_roots,
                         usage_eku=oids.CODE_SIGNING_EKU, verification_time=when - timedelta(days=10),
                         revocation=checker)  # fmt: skip
    assert before.elements[0].status == S.REVOKED
    assert before.status == S.REVOKED


@pytest.mark.parametrize("ocsp_up", [True, False], ids=["ocsp", "crl"])
def test_revoked_superseded_depends_on_verification_time(
    pki: TestPki, client: httpx.Client, ocsp_server: LoopbackServer, ocsp_up: bool
) -> None:
    leaf = fresh_leaf(pki, "superseded")
    when = pki.now - timedelta(days=3)
    pki.revoke(leaf, when=when, reason=x509.ReasonFlags.superseded)

    def at(moment: datetime) -> ChainStatus:
        checker = online(client)
        result = build_chain(leaf.cert, extra_certificates=[pki.intermediate.cert], trust_anchors=pki.trusted_roots,
                             usage_eku=oids.CODE_SIGNING_EKU, verification_time=moment, revocation=checker)  # fmt: skip
        revocation = result.elements[0].revocation
        assert revocation is not None
        assert (revocation.status, revocation.reason) == ("revoked", "superseded")
        assert revocation.source == (pki.ocsp_url if ocsp_up else pki.crl_url(pki.intermediate))
        return result.elements[0].status

    if ocsp_up:
        assert at(when + timedelta(days=1)) == S.REVOKED
        assert at(when - timedelta(days=1)) == S.NO_ERROR
    else:
        with ocsp_server.stopped():
            assert at(when + timedelta(days=1)) == S.REVOKED
            assert at(when - timedelta(days=1)) == S.NO_ERROR


def test_crl_fallback_when_ocsp_is_down(pki: TestPki, client: httpx.Client, ocsp_server: LoopbackServer,
                                        crl_server: LoopbackServer) -> None:  # fmt: skip
    leaf = fresh_leaf(pki, "fallback")
    crl_before = len(crl_server.hits)
    with ocsp_server.stopped():
        result = online(client).check(leaf.cert, pki.intermediate.cert, utcnow())
    assert (result.status, result.source) == ("good", pki.crl_url(pki.intermediate))
    assert "OCSP" in result.detail or result.detail.startswith("not listed")
    assert crl_server.hits[crl_before:] == [("GET", "/intermediate.crl")]


def test_crl_fallback_when_ocsp_answers_http_error_or_unknown(
    pki: TestPki, client: httpx.Client, ocsp_server: LoopbackServer
) -> None:
    leaf = fresh_leaf(pki, "http-error")
    with ocsp_server.answering(500):
        result = online(client).check(leaf.cert, pki.intermediate.cert, utcnow())
    assert (result.status, result.source) == ("good", pki.crl_url(pki.intermediate))
    other = fresh_leaf(pki, "ocsp-unknown")
    pki.revocations.mark_unknown(other.cert)
    result = online(client).check(other.cert, pki.intermediate.cert, utcnow())
    assert (result.status, result.source) == ("good", pki.crl_url(pki.intermediate))


def test_everything_down_is_offline_within_the_timeout(
    pki: TestPki, client: httpx.Client, ocsp_server: LoopbackServer, crl_server: LoopbackServer
) -> None:
    leaf = fresh_leaf(pki, "down")
    timeout = 1.0
    with ocsp_server.stopped(), crl_server.stopped():
        checker = online(client, timeout=timeout)
        started = time.monotonic()
        result = checker.check(leaf.cert, pki.intermediate.cert, utcnow())
        elapsed = time.monotonic() - started
        chain = build_chain(leaf.cert, extra_certificates=[pki.intermediate.cert], trust_anchors=pki.trusted_roots,
                            usage_eku=oids.CODE_SIGNING_EKU, verification_time=pki.now,
                            revocation=online(client, timeout=timeout))  # fmt: skip
    assert result.status == "offline"
    assert "could not be reached" in result.detail
    assert elapsed < timeout + 1
    offline = S.OFFLINE_REVOCATION | S.REVOCATION_STATUS_UNKNOWN
    assert [e.status for e in chain.elements] == [offline, offline, S.NO_ERROR]
    assert "OfflineRevocation: The revocation function was unable to check revocation because the revocation " \
        "server could not be reached. For more information, visit https://aka.ms/certificateRevocationMode." \
        in chain.status_messages()


def test_slow_responder_times_out(pki: TestPki, client: httpx.Client, ocsp_server: LoopbackServer,
                                  crl_server: LoopbackServer) -> None:  # fmt: skip
    leaf = fresh_leaf(pki, "slow")
    timeout = 0.5
    ocsp_server.delay_seconds = 3.0
    try:
        with crl_server.stopped():
            started = time.monotonic()
            result = online(client, timeout=timeout).check(leaf.cert, pki.intermediate.cert, utcnow())
            elapsed = time.monotonic() - started
    finally:
        ocsp_server.delay_seconds = 0.0
    assert result.status == "offline"
    assert "Timeout" in result.detail
    assert elapsed < timeout + 1


def test_total_timeout_caps_a_whole_check(pki: TestPki, client: httpx.Client, ocsp_server: LoopbackServer,
                                          crl_server: LoopbackServer) -> None:  # fmt: skip
    leaf = fresh_leaf(pki, "budget")
    ocsp_server.delay_seconds = crl_server.delay_seconds = 3.0
    try:
        started = time.monotonic()
        result = online(client, timeout=2.0, total_timeout=0.6).check(leaf.cert, pki.intermediate.cert, utcnow())
        elapsed = time.monotonic() - started
    finally:
        ocsp_server.delay_seconds = crl_server.delay_seconds = 0.0
    assert result.status == "offline"
    assert elapsed < 0.6 + 1


def test_cache_hit_avoids_a_second_request(pki: TestPki, client: httpx.Client, ocsp_server: LoopbackServer) -> None:
    leaf = fresh_leaf(pki, "cached")
    cache = RevocationCache()
    before = len(ocsp_server.hits)
    first = online(client, cache=cache).check(leaf.cert, pki.intermediate.cert, utcnow())
    second = online(client, cache=cache).check(leaf.cert, pki.intermediate.cert, utcnow())
    assert (first.status, second.status) == ("good", "good")
    assert second.source == "cache" and pki.ocsp_url in second.detail
    assert len(ocsp_server.hits) == before + 1


def test_fetched_crl_is_reused_for_other_certificates(
    pki: TestPki, client: httpx.Client, ocsp_server: LoopbackServer, crl_server: LoopbackServer
) -> None:
    first, second = fresh_leaf(pki, "crl-a"), fresh_leaf(pki, "crl-b")
    before = len(crl_server.hits)
    with ocsp_server.stopped():
        checker = online(client)
        assert checker.check(first.cert, pki.intermediate.cert, utcnow()).status == "good"
        result = checker.check(second.cert, pki.intermediate.cert, utcnow())
    assert (result.status, result.source) == ("good", pki.crl_url(pki.intermediate))
    assert len(crl_server.hits) == before + 1


def _forged_ocsp(pki: TestPki) -> Responder:
    """A well-formed OCSP answer for whatever is asked, signed by a key that has no say (untrusted_root)."""

    def respond(method: str, path: str, body: bytes) -> Reply:
        request = ocsp.load_der_ocsp_request(body)
        now = utcnow()
        response = (
            ocsp.OCSPResponseBuilder()
            .add_response_by_hash(
                issuer_name_hash=request.issuer_name_hash, issuer_key_hash=request.issuer_key_hash,
                serial_number=request.serial_number, algorithm=request.hash_algorithm,
                cert_status=ocsp.OCSPCertStatus.GOOD, this_update=now, next_update=now + timedelta(days=1),
                revocation_time=None, revocation_reason=None,
            )
            .responder_id(ocsp.OCSPResponderEncoding.HASH, pki.untrusted_root.cert)
            .certificates([pki.untrusted_root.cert])
            .sign(pki.untrusted_root.key, hashes.SHA256())
        )  # fmt: skip
        return Reply(200, "application/ocsp-response", response.public_bytes(serialization.Encoding.DER))

    return respond


def test_unauthenticated_ocsp_answer_is_unknown(
    pki: TestPki, client: httpx.Client, ocsp_server: LoopbackServer, crl_server: LoopbackServer
) -> None:
    leaf = fresh_leaf(pki, "forged")
    original = ocsp_server.responder
    ocsp_server.responder = _forged_ocsp(pki)
    try:
        with crl_server.stopped():
            result = online(client).check(leaf.cert, pki.intermediate.cert, utcnow())
        with_crl = online(client).check(leaf.cert, pki.intermediate.cert, utcnow())
    finally:
        ocsp_server.responder = original
    assert result.status == "unknown"
    assert "responder certificate is not issued by the certificate's issuer" in result.detail
    assert (with_crl.status, with_crl.source) == ("good", pki.crl_url(pki.intermediate))


def test_unusable_answers_are_unknown_not_offline(
    pki: TestPki, client: httpx.Client, ocsp_server: LoopbackServer, crl_server: LoopbackServer
) -> None:
    leaf = fresh_leaf(pki, "garbage")
    original = ocsp_server.responder
    ocsp_server.responder = lambda method, path, body: Reply(200, "application/ocsp-response", b"garbage")
    try:
        with crl_server.stopped():
            result = online(client).check(leaf.cert, pki.intermediate.cert, utcnow())
    finally:
        ocsp_server.responder = original
    assert result.status == "unknown"
    assert "not an OCSP response" in result.detail


def test_offline_mode_never_touches_the_network(
    pki: TestPki, ocsp_server: LoopbackServer, crl_server: LoopbackServer
) -> None:
    requests: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(500)

    leaf = fresh_leaf(pki, "offline")
    before = len(ocsp_server.hits) + len(crl_server.hits)
    with httpx.Client(transport=httpx.MockTransport(record)) as spy:
        checker = RevocationChecker(RevocationMode.OFFLINE, client=spy, clock=utcnow)
        result = checker.check(leaf.cert, pki.intermediate.cert, utcnow())
        chain = build_chain(leaf.cert, extra_certificates=[pki.intermediate.cert], trust_anchors=pki.trusted_roots,
                            usage_eku=oids.CODE_SIGNING_EKU, verification_time=pki.now, revocation=checker)  # fmt: skip
        supplied = RevocationChecker(
            RevocationMode.OFFLINE, client=spy, clock=utcnow,
            crls=[pki.crl_der(pki.intermediate)],
        )  # fmt: skip
        good = supplied.check(leaf.cert, pki.intermediate.cert, utcnow())
        revoked = supplied.check(pki.revoked_leaf.cert, pki.intermediate.cert, utcnow())
        no_data = supplied.check(pki.intermediate.cert, pki.root.cert, utcnow())
    assert requests == []
    assert len(ocsp_server.hits) + len(crl_server.hits) == before
    assert result.status == "offline"
    assert chain.elements[0].status == S.OFFLINE_REVOCATION | S.REVOCATION_STATUS_UNKNOWN
    assert (good.status, good.source) == ("good", "supplied")
    assert (revoked.status, revoked.reason) == ("revoked", "keyCompromise")
    assert no_data.status == "offline"


def test_offline_mode_uses_what_an_online_check_cached(pki: TestPki, client: httpx.Client) -> None:
    leaf = fresh_leaf(pki, "warm-cache")
    cache = RevocationCache()
    assert online(client, cache=cache).check(leaf.cert, pki.intermediate.cert, utcnow()).status == "good"
    offline = RevocationChecker(RevocationMode.OFFLINE, cache=cache, clock=utcnow)
    result = offline.check(leaf.cert, pki.intermediate.cert, utcnow())
    assert (result.status, result.source) == ("good", "cache")


def test_supplied_ocsp_response(pki: TestPki) -> None:
    request = ocsp.OCSPRequestBuilder().add_certificate(pki.revoked_leaf.cert, pki.intermediate.cert, hashes.SHA1())
    answer = ocsp_response_der(pki, request.build().public_bytes(serialization.Encoding.DER))
    checker = RevocationChecker(RevocationMode.OFFLINE, ocsp_responses=[answer], clock=utcnow)
    result = checker.check(pki.revoked_leaf.cert, pki.intermediate.cert, utcnow())
    assert (result.status, result.source, result.reason) == ("revoked", "supplied", "keyCompromise")
    # The same answer says nothing about another certificate.
    assert checker.check(pki.leaf.cert, pki.intermediate.cert, utcnow()).status == "offline"


def test_stale_crl_cannot_say_good_but_can_say_revoked(pki: TestPki) -> None:
    old = pki.crl_der(pki.intermediate, now=utcnow() - timedelta(days=10))  # nextUpdate 9 days ago
    checker = RevocationChecker(RevocationMode.OFFLINE, crls=[old], clock=utcnow)
    stale = checker.check(pki.leaf.cert, pki.intermediate.cert, utcnow())
    assert stale.status == "offline" and "stale" in stale.detail
    assert checker.check(pki.revoked_leaf.cert, pki.intermediate.cert, utcnow()).status == "revoked"
    # Without a clock there is no freshness rule.
    assert RevocationChecker(RevocationMode.OFFLINE, crls=[old]).check(
        pki.leaf.cert, pki.intermediate.cert, utcnow()
    ).status == "good"
