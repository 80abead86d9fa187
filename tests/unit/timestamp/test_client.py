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
from nuseal.errors import FetchError, TimestampError
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


# --- the plain-HTTP pool against answers shaped by hand ------------------------------------------------------------


class _RawServer:
    """127.0.0.1 in a thread: reads each request (head + Content-Length body) and writes what ``answer(body)``
    returns, raw; closes the connection after an answer when ``close_after`` says so. Records requests and
    connections."""

    def __init__(self, answer: Callable[[bytes], bytes], *, close_after: bool = False) -> None:
        import socket

        self.answer = answer
        self.close_after = close_after
        self.requests: list[bytes] = []
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/tsa?x=1"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._connection, args=(conn,), daemon=True).start()

    def _connection(self, conn: object) -> None:
        import socket

        assert isinstance(conn, socket.socket)
        reader = conn.makefile("rb")
        with conn, reader:
            while True:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = reader.readline()
                    if not line:
                        return
                    head += line
                length = next(int(h.split(b":")[1]) for h in head.split(b"\r\n")
                              if h.lower().startswith(b"content-length"))
                body = reader.read(length)
                self.requests.append(head + body)
                conn.sendall(self.answer(body))
                if self.close_after:
                    return

    def close(self) -> None:
        self.listener.close()


def _answered(tsa: TimestampAuthority, head: bytes, *, chunked: bool = False, length: bool = True
              ) -> Callable[[bytes], bytes]:
    def answer(body: bytes) -> bytes:
        token = tsa.respond(body)
        if chunked:
            half = len(token) // 2
            payload = b"%x;ext=1\r\n%s\r\n%X\r\n%s\r\n0\r\nX-Trailer: t\r\n\r\n" % (
                half, token[:half], len(token) - half, token[half:])
            return head + b"Transfer-Encoding: chunked\r\n\r\n" + payload
        return head + (b"Content-Length: %d\r\n" % len(token) if length else b"") + b"\r\n" + token
    return answer


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(("head", "options", "connections"), [
    (b"HTTP/1.1 200 OK\r\nContent-Type: application/timestamp-reply\r\n", {}, 1),
    (b"HTTP/1.1 200 OK\r\n", {"chunked": True}, 1),
    (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n", {}, 1),
    (b"HTTP/1.1 200 OK\r\nConnection: close\r\n", {}, 3),
    (b"HTTP/1.0 200 OK\r\n", {}, 3),
    (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n", {}, 1),
    (b"HTTP/1.1 200 OK\r\n", {"length": False}, 3),  # the body ends with the connection
], ids=["length", "chunked", "100-continue", "close", "http/1.0", "http/1.0 keep-alive", "until-close"])
def test_plain_http_reads_every_response_framing(tsa_authority: TimestampAuthority, no_proxy: None, head: bytes,
                                                 options: dict[str, bool], connections: int) -> None:
    server = _RawServer(_answered(tsa_authority, head, **options),
                        close_after=connections > 1)
    try:
        with HttpTimestamper(server.url) as stamper:
            assert stamper._plain is not None
            tokens = [stamper.timestamp(SIGNATURE_VALUE, "SHA256") for _ in range(3)]
        assert len(set(tokens)) == 3
        assert server.connections == connections
        request = server.requests[0]
        port = server.url.split(":")[2].split("/")[0]
        assert request.startswith(b"POST /tsa?x=1 HTTP/1.1\r\n")
        assert f"\r\nHost: 127.0.0.1:{port}\r\n".encode() in request
        assert b"\r\nContent-Type: application/timestamp-query\r\n" in request
        body = request.split(b"\r\n\r\n", 1)[1]
        assert b"\r\nContent-Length: %d\r\n" % len(body) in request
        assert tsp.TimeStampReq.load(body)["message_imprint"]["hashed_message"].native == hashlib.sha256(
            SIGNATURE_VALUE).digest()
    finally:
        server.close()


@pytest.mark.parametrize(("response", "error", "message"), [
    (b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops", TimestampError,
     r"HTTP status code '500' \('Internal Server Error'\)"),
    (b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n", TimestampError,
     r"HTTP status code '302'"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\n\r\n" + b"\0" * 2_000_000, TimestampError, "larger than 1 MiB"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"100000\r\n" + b"\0" * 0x100000 + b"\r\n"
     + b"10\r\n" + b"\0" * 16 + b"\r\n0\r\n\r\n", TimestampError, "larger than 1 MiB"),
    (b"SMTP ready\r\n\r\n", FetchError, "could not be reached: not an HTTP/1.x status line"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", FetchError, "ended after 5 of 100 bytes"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", FetchError, "invalid Content-Length"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", FetchError, "invalid chunk size"),
    (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", FetchError, "malformed header line"),
    (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 101 + b"\r\n", FetchError, "more than 100 header lines"),
], ids=["500", "redirect", "too large", "too large chunked", "not http", "truncated", "bad length", "bad chunk",
        "bad header", "too many headers"])
def test_plain_http_refuses_bad_answers_with_one_clear_error(no_proxy: None, response: bytes,
                                                             error: type[Exception], message: str) -> None:
    server = _RawServer(lambda body: response, close_after=True)
    try:
        with HttpTimestamper(server.url) as stamper, pytest.raises(error, match=message) as caught:
            stamper.timestamp(SIGNATURE_VALUE, "SHA256")
        assert "127.0.0.1" in str(caught.value) or error is TimestampError
    finally:
        server.close()


def test_plain_http_names_an_unreachable_or_silent_service(no_proxy: None) -> None:
    import socket

    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    with HttpTimestamper(f"http://127.0.0.1:{port}/") as stamper, pytest.raises(FetchError,
                                                                                 match="could not be reached"):
        stamper.timestamp(SIGNATURE_VALUE, "SHA256")
    silent = socket.create_server(("127.0.0.1", 0))  # accepts (backlog) and never answers
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        with HttpTimestamper(url, timeout=0.3) as stamper, pytest.raises(FetchError,
                                                                          match=r"did not answer within 0\.3 seconds"):
            stamper.timestamp(SIGNATURE_VALUE, "SHA256")
    finally:
        silent.close()


def test_timestamping_over_plain_http_imports_no_http_library_and_no_asn1crypto(tsa_server: object, pki: TestPki,
                                                                                no_proxy: None) -> None:
    import subprocess
    import sys

    code = (
        "import sys\nfrom nuseal.timestamp.client import HttpTimestamper\n"
        f"with HttpTimestamper({pki.tsa_url!r}) as s:\n"
        "    assert s._plain is not None\n"
        "    for _ in range(2): s.timestamp(b'x' * 256, 'SHA256')\n"
        "heavy = ('http', 'email.parser', 'email.message', 'httpx', 'asn1crypto')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m in heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout


def test_tst_info_reads_are_remembered_by_their_exact_bytes(tsa_authority: TimestampAuthority) -> None:
    from nuseal.cms import der
    from nuseal.timestamp import token as token_rules

    def tst_of(request: TimestampRequest) -> bytes:
        token = read_response(tsa_authority.respond(request.to_der()), request, "'test'")
        content = der.read_signed_data(token).content
        assert content is not None
        return content

    first = TimestampRequest.over(SIGNATURE_VALUE, "SHA256")
    second = TimestampRequest.over(SIGNATURE_VALUE, "SHA256")
    tst_one, tst_two = tst_of(first), tst_of(second)
    token_rules.read_tst_info.cache_clear()
    one = token_rules.read_tst_info(tst_one)
    assert token_rules.read_tst_info(bytes(bytearray(tst_one))) is one  # equal bytes: a hit
    assert token_rules.read_tst_info.cache_info().hits == 1
    two = token_rules.read_tst_info(tst_two)  # another TSTInfo (another nonce): a miss, its own fields
    assert token_rules.read_tst_info.cache_info().misses == 2
    assert one.nonce == int.from_bytes(first.nonce, "big") and two.nonce == int.from_bytes(second.nonce, "big")
    for _ in range(2):  # a refusal is not remembered: raised every time
        with pytest.raises(der.DECODE_ERRORS):
            token_rules.read_tst_info(b"\x30\x03\x02\x01\x01")
    assert token_rules.read_tst_info.cache_info().currsize == 2
    for _ in range(20):  # bounded: the last few only
        token_rules.read_tst_info(tst_of(TimestampRequest.over(SIGNATURE_VALUE, "SHA256")))
    assert token_rules.read_tst_info.cache_info().currsize == 16


@pytest.mark.parametrize("url", ["http://tsa.example/a b", "http://tsa.example/zeit/stempel-ä",
                                 "http://bücher.example/tsa"])
def test_urls_a_request_line_cannot_carry_as_is_stay_with_httpx(url: str, no_proxy: None) -> None:
    with HttpTimestamper(url) as stamper:
        assert stamper._plain is None
    with HttpTimestamper("http://tsa.example:8080/tsa?q=1") as stamper:
        assert stamper._plain is not None and stamper._plain._head.startswith(
            b"POST /tsa?q=1 HTTP/1.1\r\nHost: tsa.example:8080\r\n")
