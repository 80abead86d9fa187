"""Timestamp clients: request shape, response checks (NU3026, NU3019, refusals) and the in-process path."""

from __future__ import annotations

import hashlib
import ssl
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from asn1crypto import cms, tsp
from tests.support.pki import TestPki

from nuseal.codes import NuCode
from nuseal.errors import TimestampError
from nuseal.timestamp.client import (
    HttpTimestamper,
    InProcessTimestamper,
    TimestampRequest,
    new_nonce,
    read_response,
)
from nuseal.timestamp.tsa import TimestampAuthority

SIGNATURE_VALUE = b"\x42" * 256


class RewritingAuthority(TimestampAuthority):
    """A TSA that answers a request other than the one sent (to provoke nonce / imprint mismatches)."""

    def __init__(self, real: TimestampAuthority, rewrite: Callable[[tsp.TimeStampReq], tsp.TimeStampReq]) -> None:
        self.__dict__.update(real.__dict__)
        self._rewrite = rewrite

    def respond(self, request_der: bytes) -> bytes:
        return super().respond(self._rewrite(tsp.TimeStampReq.load(request_der)).dump(force=True))


def _with(request: tsp.TimeStampReq, **changes: object) -> tsp.TimeStampReq:
    fields = {name: request[name] for name in ("version", "message_imprint", "nonce", "cert_req")}
    fields.update(changes)
    return tsp.TimeStampReq(fields)


def _tst_info(token_der: bytes) -> tsp.TSTInfo:
    return cms.ContentInfo.load(token_der)["content"]["encap_content_info"]["content"].parsed


def test_nonce_is_32_bytes_with_top_bit_clear() -> None:
    nonces = [new_nonce() for _ in range(64)]
    assert all(len(n) == 32 and n[0] < 0x80 for n in nonces)
    assert len(set(nonces)) == 64


def test_request_is_nugets() -> None:
    request = TimestampRequest.over(SIGNATURE_VALUE, "SHA384")
    parsed = tsp.TimeStampReq.load(request.to_der())
    assert parsed["version"].native == "v1"
    assert parsed["message_imprint"]["hash_algorithm"]["algorithm"].native == "sha384"
    assert parsed["message_imprint"]["hashed_message"].native == hashlib.sha384(SIGNATURE_VALUE).digest()
    assert parsed["cert_req"].native is True
    assert parsed["req_policy"].native is None and parsed["extensions"].native is None
    assert parsed["nonce"].native == int.from_bytes(request.nonce, "big")


@pytest.mark.parametrize("algorithm", ["sha256", "sha384", "sha512"])
@pytest.mark.parametrize("nonce", [b"\x00" * 32, b"\x7f" + b"\xff" * 31, b"\x00\x01" + b"\x00" * 30])
def test_request_bytes_are_asn1cryptos(algorithm: str, nonce: bytes) -> None:
    # The request is encoded by hand; asn1crypto's encoding of the same request is the reference.
    request = TimestampRequest.over(SIGNATURE_VALUE, algorithm, nonce)
    reference = tsp.TimeStampReq({
        "version": "v1", "message_imprint": {"hash_algorithm": {"algorithm": algorithm},
                                             "hashed_message": request.digest},
        "nonce": int.from_bytes(nonce, "big"), "cert_req": True,
    })
    assert request.to_der() == reference.dump()


def test_granted_answers_are_read_alike_by_the_walker_and_by_asn1crypto(tsa_authority: TimestampAuthority,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from nuseal.timestamp import client

    request = TimestampRequest.over(SIGNATURE_VALUE, "SHA256")
    answer = tsa_authority.respond(request.to_der())
    assert client._granted_token(answer) is not None  # the walker reads what nuseal's TSA writes
    fast = read_response(answer, request, "'test'")
    monkeypatch.setattr(client, "_granted_token", lambda response_der: None)
    assert read_response(answer, request, "'test'") == fast
    other = TimestampRequest.over(SIGNATURE_VALUE, "SHA256")
    monkeypatch.undo()
    with pytest.raises(TimestampError) as caught:
        read_response(answer, other, "'test'")  # another request's nonce, through the walker
    assert caught.value.code is NuCode.NU3026


def test_unsupported_hash_algorithm_is_refused() -> None:
    with pytest.raises(ValueError, match="SHA256, SHA384 or SHA512"):
        TimestampRequest.over(b"x", "SHA1")


@pytest.mark.parametrize("algorithm", ["SHA256", "sha384", "SHA512"])
def test_in_process_round_trip(tsa_authority: TimestampAuthority, algorithm: str) -> None:
    token = InProcessTimestamper(tsa_authority).timestamp(SIGNATURE_VALUE, algorithm)
    tst = _tst_info(token)
    name = algorithm.lower()
    assert tst["message_imprint"]["hashed_message"].native == hashlib.new(name, SIGNATURE_VALUE).digest()
    assert cms.ContentInfo.load(token)["content_type"].native == "signed_data"


def test_nonce_mismatch_is_nu3026(tsa_authority: TimestampAuthority) -> None:
    liar = RewritingAuthority(tsa_authority, lambda r: _with(r, nonce=r["nonce"].native + 1))
    with pytest.raises(TimestampError) as caught:
        InProcessTimestamper(liar).timestamp(SIGNATURE_VALUE, "SHA256")
    assert caught.value.code is NuCode.NU3026
    assert "Nonces did not match" in caught.value.message


def test_missing_nonce_is_nu3026(tsa_authority: TimestampAuthority) -> None:
    def drop_nonce(r: tsp.TimeStampReq) -> tsp.TimeStampReq:
        return tsp.TimeStampReq({n: r[n] for n in ("version", "message_imprint", "cert_req")})

    with pytest.raises(TimestampError) as caught:
        InProcessTimestamper(RewritingAuthority(tsa_authority, drop_nonce)).timestamp(SIGNATURE_VALUE, "SHA256")
    assert caught.value.code is NuCode.NU3026


def test_imprint_mismatch_is_nu3019(tsa_authority: TimestampAuthority) -> None:
    other = {"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": hashlib.sha256(b"other").digest()}
    liar = RewritingAuthority(tsa_authority, lambda r: _with(r, message_imprint=other))
    with pytest.raises(TimestampError) as caught:
        InProcessTimestamper(liar).timestamp(SIGNATURE_VALUE, "SHA256")
    assert caught.value.code is NuCode.NU3019


def test_refusal_carries_status_text(tsa_authority: TimestampAuthority) -> None:
    request = TimestampRequest.over(SIGNATURE_VALUE, "SHA256")
    refusal = tsa_authority.respond(b"junk")
    with pytest.raises(TimestampError, match=r"status 'rejection'.*bad_data_format"):
        read_response(refusal, request, "'test'")


def test_undecodable_response(tsa_authority: TimestampAuthority) -> None:
    request = TimestampRequest.over(SIGNATURE_VALUE, "SHA256")
    with pytest.raises(TimestampError, match="could not be decoded"):
        read_response(b"\x04\x02hi", request, "'http://tsa.example/'")


def test_gen_time_from_the_authority_clock(pki: TestPki) -> None:
    # A moment inside the TSA certificate's validity, relative to the PKI (never to the calendar).
    moment = pki.now - timedelta(days=1, hours=3)
    tsa = TimestampAuthority(pki.tsa.cert, pki.tsa.key, pki.tsa.chain[1:], clock=lambda: moment)
    token = InProcessTimestamper(tsa, clock=lambda: moment).timestamp(SIGNATURE_VALUE, "SHA256")
    assert _tst_info(token)["gen_time"].native == moment


def test_http_timestamper_refuses_relative_urls() -> None:
    for url in ("tsa.example/", "ftp://tsa.example/", "/relative"):
        with pytest.raises(TimestampError, match="absolute http or https"):
            HttpTimestamper(url)


def test_token_checks_are_wired_into_the_client(
    tsa_authority: TimestampAuthority, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nuseal.timestamp import token as token_rules

    seen: list[tuple[bytes, datetime]] = []

    def check_timestamp(ts: object, signature_value: bytes, now: datetime) -> list[tuple[NuCode, str]]:
        seen.append((signature_value, now))
        return [(NuCode.NU3036, "outside the validity")]

    monkeypatch.setattr(token_rules, "check_timestamp", check_timestamp)
    moment = tsa_authority.certificate.not_valid_before_utc + timedelta(days=1)
    with pytest.raises(TimestampError) as caught:
        InProcessTimestamper(tsa_authority, clock=lambda: moment).timestamp(SIGNATURE_VALUE, "SHA256")
    assert caught.value.code is NuCode.NU3036
    assert seen == [(SIGNATURE_VALUE, moment)]


def test_expired_tsa_certificate_is_refused_by_the_token_checks(pki: TestPki) -> None:
    # Real nuseal.timestamp.token: genTime (now) after the TSA certificate's NotAfter is NU3036.
    tsa = TimestampAuthority(
        pki.expired_tsa.cert, pki.expired_tsa.key, pki.expired_tsa.chain[1:], clock=lambda: pki.now
    )
    with pytest.raises(TimestampError) as caught:
        InProcessTimestamper(tsa, clock=lambda: pki.now).timestamp(SIGNATURE_VALUE, "SHA256")
    assert caught.value.code is NuCode.NU3036


def test_token_bytes_are_returned_exactly_as_received(tsa_authority: TimestampAuthority) -> None:
    request = TimestampRequest.over(SIGNATURE_VALUE, "SHA256")
    response = tsa_authority.respond(request.to_der())
    token = read_response(response, request, "'test'")
    # TimeStampResp = SEQUENCE { status, token }: the token is the response's tail, byte for byte.
    assert response.endswith(token)
    assert len(token) > 1000


def test_granted_response_without_token_is_nu3021(tsa_authority: TimestampAuthority) -> None:
    from nuseal.timestamp.tsa import TimeStampResponse

    request = TimestampRequest.over(SIGNATURE_VALUE, "SHA256")
    empty = TimeStampResponse({"status": {"status": "granted"}}).dump()
    with pytest.raises(TimestampError, match="no timeStampToken") as caught:
        read_response(empty, request, "'test'")
    assert caught.value.code is NuCode.NU3021


def test_http_timestamper_reuses_its_client_until_closed(tsa_server: object, pki: TestPki,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9/")  # a proxy keeps httpx (which honours it)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")  # ... and httpx then bypasses it for the loopback TSA
    with HttpTimestamper(pki.tsa_url) as stamper:
        assert stamper._plain is None
        stamper.timestamp(SIGNATURE_VALUE, "SHA256")
        first = stamper._owned
        stamper.timestamp(SIGNATURE_VALUE, "SHA256")
        assert first is not None and stamper._owned is first
    assert stamper._owned is None and first.is_closed


class _Loopback:
    """``handler`` serving on 127.0.0.1 in a thread, counting the TCP connections it accepts."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.connections = 0
        accept = self.server.get_request

        def counting() -> tuple[object, object]:
            self.connections += 1
            return accept()

        self.server.get_request = counting  # type: ignore[method-assign,assignment]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/tsa"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def _tsa_handler(authority: TimestampAuthority, *, one_request_per_connection: bool) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            assert self.path == "/tsa"
            body = authority.respond(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            # Closing without saying so is what a server does to a connection left idle too long.
            self.close_connection = one_request_per_connection

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.mark.parametrize("one_request_per_connection", [False, True])
def test_plain_http_reuses_keep_alive_connections_and_retries_one_closed_while_idle(
    tsa_authority: TimestampAuthority, monkeypatch: pytest.MonkeyPatch, one_request_per_connection: bool
) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    server = _Loopback(_tsa_handler(tsa_authority, one_request_per_connection=one_request_per_connection))
    try:
        with HttpTimestamper(server.url) as stamper:
            assert stamper._plain is not None
            tokens = [stamper.timestamp(SIGNATURE_VALUE, "SHA256") for _ in range(3)]
            assert stamper._owned is None  # httpx was never needed
        assert len(set(tokens)) == 3  # three answers (distinct nonces)
        assert server.connections == (3 if one_request_per_connection else 1)
    finally:
        server.close()


def test_plain_http_clients_skip_the_ca_bundle_and_fail_closed() -> None:
    from nuseal.timestamp.client import _client_for

    http_context = _client_for("http://tsa.example/")._transport._pool._ssl_context  # type: ignore[attr-defined]
    assert http_context.cert_store_stats()["x509_ca"] == 0  # nothing trusted: TLS, if ever used, fails
    assert http_context.verify_mode is ssl.CERT_REQUIRED and http_context.check_hostname
    https_context = _client_for("https://tsa.example/")._transport._pool._ssl_context  # type: ignore[attr-defined]
    assert https_context.cert_store_stats()["x509_ca"] > 0 and https_context.verify_mode is ssl.CERT_REQUIRED
