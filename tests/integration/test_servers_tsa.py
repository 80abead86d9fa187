"""nuseal's TSA over real HTTP: ``tsa.make_server`` and the session ``tsa_server`` fixture."""

from __future__ import annotations

import contextlib
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from asn1crypto import tsp
from tests.support.pki import TestPki
from tests.support.servers import LoopbackServer
from tests.support.servers import timestamp_request as make_request

from nuseal.timestamp.tsa import MAX_REQUEST_BYTES, TimestampAuthority, TimeStampResponse, make_server

HEADERS = {"Content-Type": "application/timestamp-query"}


@pytest.fixture
def nuseal_tsa_url(tsa_authority: TimestampAuthority) -> Iterator[str]:
    server = make_server(tsa_authority, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_make_server_grants_over_http(nuseal_tsa_url: str) -> None:
    response = httpx.post(nuseal_tsa_url, content=make_request(nonce=7), headers=HEADERS)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/timestamp-reply"
    parsed = TimeStampResponse.load(response.content)
    assert parsed["status"]["status"].native == "granted"
    tst = parsed["time_stamp_token"]["content"]["encap_content_info"]["content"].parsed
    assert tst["nonce"].native == 7


def test_make_server_http_errors(nuseal_tsa_url: str) -> None:
    assert httpx.get(nuseal_tsa_url).status_code == 405
    assert httpx.post(nuseal_tsa_url, content=b"x", headers={"Content-Type": "text/plain"}).status_code == 415
    big = b"\x00" * (MAX_REQUEST_BYTES + 1)
    assert httpx.post(nuseal_tsa_url, content=big, headers=HEADERS).status_code == 413
    garbage = httpx.post(nuseal_tsa_url, content=b"garbage", headers=HEADERS)
    assert garbage.status_code == 200
    assert TimeStampResponse.load(garbage.content)["status"]["status"].native == "rejection"


def test_openssl_query_through_http_verifies(nuseal_tsa_url: str, pki_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data.bin"
    data.write_bytes(b"payload")
    query = tmp_path / "q.tsq"
    subprocess.run(["openssl", "ts", "-query", "-data", str(data), "-sha512", "-cert", "-out", str(query)],
                   check=True, capture_output=True)  # fmt: skip
    reply = tmp_path / "r.tsr"
    reply.write_bytes(httpx.post(nuseal_tsa_url, content=query.read_bytes(), headers=HEADERS).content)
    result = subprocess.run(
        ["openssl", "ts", "-verify", "-queryfile", str(query), "-in", str(reply),
         "-CAfile", str(pki_dir / "root.pem"), "-untrusted", str(pki_dir / "intermediate.pem")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert "Verification: OK" in result.stdout, result.stderr


def test_session_tsa_server_fixture(tsa_server: LoopbackServer) -> None:
    response = httpx.post(tsa_server.url, content=make_request(), headers=HEADERS)
    assert tsp.TimeStampResp.load(response.content)["status"]["status"].native == "granted"
    with tsa_server.stopped(), pytest.raises(httpx.ConnectError):
        httpx.post(tsa_server.url, content=make_request(), headers=HEADERS, timeout=2)
    assert httpx.post(tsa_server.url, content=make_request(), headers=HEADERS).status_code == 200


def _raw_exchange(url: str, payload: bytes, *, replies: int = 1) -> list[bytes]:
    """Send ``payload`` on one TCP connection and read ``replies`` complete HTTP responses (status line, headers and
    a Content-Length body each; a ``100 Continue`` counts as one)."""
    with _connect(url) as sock:
        sock.sendall(payload)
        return _read_replies(sock, replies)


def _post(body: bytes, extra: bytes = b"") -> bytes:
    return (b"POST / HTTP/1.1\r\nHost: tsa\r\nContent-Type: application/timestamp-query\r\n" + extra
            + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def _token_nonce(answer: bytes) -> int:
    body = answer.partition(b"\r\n\r\n")[2]
    tst = TimeStampResponse.load(body)["time_stamp_token"]["content"]["encap_content_info"]["content"].parsed
    return int(tst["nonce"].native)


def test_keep_alive_answers_requests_in_order_on_one_connection(nuseal_tsa_url: str) -> None:
    get = b"GET / HTTP/1.1\r\nHost: tsa\r\n\r\n"
    answers = _raw_exchange(nuseal_tsa_url, _post(make_request(nonce=1)) + get + _post(make_request(nonce=2)),
                            replies=3)
    assert [_status(a) for a in answers] == [200, 405, 200]
    assert [_token_nonce(answers[0]), _token_nonce(answers[2])] == [1, 2]
    assert all(b"Connection: close" not in a for a in answers)


def test_chunked_bodies_and_expect_100_continue(nuseal_tsa_url: str) -> None:
    body = make_request(nonce=3)
    chunked = (b"POST / HTTP/1.1\r\nHost: tsa\r\nContent-Type: application/timestamp-query\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n" + f"{len(body) - 10:x}\r\n".encode() + body[:-10] + b"\r\n"
               + b"a\r\n" + body[-10:] + b"\r\n0\r\n\r\n")
    assert _token_nonce(_raw_exchange(nuseal_tsa_url, chunked)[0]) == 3
    continued = _raw_exchange(nuseal_tsa_url, _post(make_request(nonce=4), b"Expect: 100-continue\r\n"), replies=2)
    assert continued[0].startswith(b"HTTP/1.1 100")
    assert _token_nonce(continued[1]) == 4


def test_requests_without_a_length_or_malformed_are_refused_and_closed(nuseal_tsa_url: str) -> None:
    no_length = b"POST / HTTP/1.1\r\nHost: tsa\r\nContent-Type: application/timestamp-query\r\n\r\n"
    answer = _raw_exchange(nuseal_tsa_url, no_length)[0]
    assert _status(answer) == 411 and b"Connection: close" in answer
    answer = _raw_exchange(nuseal_tsa_url, b"NOT HTTP AT ALL\r\n\r\n")[0]
    assert _status(answer) == 400 and b"Connection: close" in answer


def test_plain_requests_are_answered_with_the_bytes_h11_writes(
    pki: TestPki, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast path (``_plain_head``) and h11 answer the same request with the same bytes: one server answers it
    in the plain form, another (a fresh authority with the same fixed clock) after a ``Connection: keep-alive``
    header, which sends it to h11."""
    from nuseal.timestamp import tsa as tsa_module

    monkeypatch.setattr(tsa_module, "_http_date", lambda: "Wed, 02 Dec 2026 03:00:00 GMT")
    moment = pki.now.replace(microsecond=0)
    body = make_request(nonce=11)
    answers = []
    for extra in (b"", b"Connection: keep-alive\r\n"):
        authority = TimestampAuthority(pki.tsa.cert, pki.tsa.key, pki.tsa.chain, clock=lambda: moment)
        server = make_server(authority, "127.0.0.1", 0)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            answers.append(_raw_exchange(f"http://127.0.0.1:{server.server_address[1]}/", _post(body, extra))[0])
        finally:
            server.shutdown()
            server.server_close()
    assert answers[0] == answers[1]
    assert _status(answers[0]) == 200 and _token_nonce(answers[0]) == 11


@pytest.mark.parametrize("second", [
    b"POST / HTTP/1.1\r\nHost: tsa\r\nContent-Type: application/timestamp-query\r\nTransfer-Encoding: chunked\r\n"
    b"\r\n",
    b"POST http://tsa/ HTTP/1.1\r\nHost: tsa\r\nContent-Type: application/timestamp-query\r\n",
    # obsolete line folding: h11 unfolds it
    b"POST / HTTP/1.1\r\nHost: tsa\r\nContent-Type: application/timestamp-query\r\nX-Folded: a\r\n b\r\n",
])  # fmt: skip
def test_a_connection_goes_on_with_h11_after_a_request_the_fast_path_does_not_read(
    nuseal_tsa_url: str, second: bytes
) -> None:
    body = make_request(nonce=22)
    if b"chunked" in second:
        request = second + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    else:
        request = second + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    answers = _raw_exchange(nuseal_tsa_url, _post(make_request(nonce=21)) + request + _post(make_request(nonce=23)),
                            replies=3)
    assert [_status(a) for a in answers] == [200, 200, 200]
    assert _token_nonce(answers[0]) == 21
    assert [_token_nonce(answers[1]), _token_nonce(answers[2])] == [22, 23]


def test_a_client_closing_mid_body_or_mid_head_does_not_stop_the_server(nuseal_tsa_url: str) -> None:
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(nuseal_tsa_url)
    for partial in (_post(make_request(nonce=31))[:-5], b"POST / HTTP/1.1\r\nHost: tsa\r\n"):
        with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
            sock.sendall(partial)
    assert _token_nonce(_raw_exchange(nuseal_tsa_url, _post(make_request(nonce=32)))[0]) == 32


# --- the event loop: many connections on one thread ----------------------------------------------------------


def _connect(url: str, **options: int) -> socket.socket:
    """A TCP connection to the TSA; ``options`` are SOL_SOCKET options set before connecting (e.g. SO_RCVBUF)."""
    parts = urlsplit(url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    for name, value in options.items():
        sock.setsockopt(socket.SOL_SOCKET, getattr(socket, name), value)
    sock.settimeout(10)
    sock.connect((parts.hostname, parts.port))
    return sock


def _read_replies(sock: socket.socket, count: int) -> list[bytes]:
    buffer = b""
    answers: list[bytes] = []
    while len(answers) < count:
        while b"\r\n\r\n" not in buffer:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed after {len(answers)} replies: {buffer!r}"
            buffer += chunk
        head, _, rest = buffer.partition(b"\r\n\r\n")
        if head.startswith(b"HTTP/1.1 100"):
            buffer = rest
            answers.append(head)
            continue
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        while len(rest) < length:
            chunk = sock.recv(65536)
            assert chunk, "connection closed in a body"
            rest += chunk
        answers.append(head + b"\r\n\r\n" + rest[:length])
        buffer = rest[length:]
    return answers


def _connection_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "nuseal-tsa-connection")


def test_many_keep_alive_connections_are_served_together_by_the_loop(nuseal_tsa_url: str) -> None:
    connections = [_connect(nuseal_tsa_url) for _ in range(24)]
    try:
        for round_ in range(3):
            for index, sock in enumerate(connections):  # every connection has a request in flight at once
                sock.sendall(_post(make_request(nonce=1000 * round_ + index)))
            for index, sock in enumerate(connections):
                assert _token_nonce(_read_replies(sock, 1)[0]) == 1000 * round_ + index
    finally:
        for sock in connections:
            sock.close()
    assert _connection_threads() == 0  # plain requests never leave the loop's thread


def test_pipelined_requests_are_answered_in_order(nuseal_tsa_url: str) -> None:
    answers = _raw_exchange(nuseal_tsa_url, b"".join(_post(make_request(nonce=n)) for n in range(40, 50)), replies=10)
    assert [_token_nonce(a) for a in answers] == list(range(40, 50))


def test_a_slow_client_does_not_hold_up_the_others(nuseal_tsa_url: str) -> None:
    request = _post(make_request(nonce=51))
    slow = _connect(nuseal_tsa_url)
    try:
        slow.sendall(request[:20])  # half a request line, then nothing for now
        other = _connect(nuseal_tsa_url)
        with other:
            other.sendall(_post(make_request(nonce=52)))
            assert _token_nonce(_read_replies(other, 1)[0]) == 52
        slow.sendall(request[20:-10])
        time.sleep(0.05)
        slow.sendall(request[-10:])
        assert _token_nonce(_read_replies(slow, 1)[0]) == 51
    finally:
        slow.close()


def test_a_client_that_reads_its_replies_late_gets_them_all(tsa_authority: TimestampAuthority) -> None:
    """Replies that do not fit the socket buffers wait in the loop (sent as the client reads) while the other
    connections are served."""
    server = make_server(tsa_authority, "127.0.0.1", 0)
    accept = server.get_request

    def small_send_buffer() -> tuple[socket.socket, object]:
        sock, address = accept()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # fixed and small: no autotuning
        return sock, address

    server.get_request = small_send_buffer  # type: ignore[method-assign]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    sock = _connect(url, SO_RCVBUF=4096)
    try:
        count = 200  # ~470 KB of replies, far more than the buffers hold
        sender = threading.Thread(target=sock.sendall,
                                  args=(b"".join(_post(make_request(nonce=n)) for n in range(count)),))
        sender.start()
        time.sleep(0.3)
        assert _token_nonce(_raw_exchange(url, _post(make_request(nonce=9999)))[0]) == 9999
        answers = _read_replies(sock, count)
        sender.join(10)
        assert [_token_nonce(a) for a in answers] == list(range(count))
    finally:
        sock.close()
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_reply_to_a_full_socket_waits_in_the_outbox() -> None:
    """A send to a socket whose buffer is full raises instead of returning 0: the reply must wait, not be lost."""
    from nuseal.timestamp.tsa import TimestampServer, _Client

    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while True:
                ours.send(b"x" * 65536)
        client = _Client(ours, ("127.0.0.1", 0))
        TimestampServer._send(client, b"reply")
        assert client.outbox == b"reply"
        theirs.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while theirs.recv(1 << 20):
                pass
        TimestampServer._send(client, b"")
        assert client.outbox == b""


def test_clients_that_vanish_mid_exchange_do_not_stop_the_loop(nuseal_tsa_url: str) -> None:
    for partial in (_post(make_request(nonce=61)), _post(make_request(nonce=62))[:-3], b"POST / HT"):
        sock = _connect(nuseal_tsa_url)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a reset
        sock.sendall(partial)
        sock.close()
    assert _token_nonce(_raw_exchange(nuseal_tsa_url, _post(make_request(nonce=63)))[0]) == 63


def test_idle_connections_are_closed(tsa_authority: TimestampAuthority, monkeypatch: pytest.MonkeyPatch) -> None:
    from nuseal.timestamp import tsa as tsa_module

    monkeypatch.setattr(tsa_module, "IDLE_TIMEOUT_SECONDS", 0.2)
    server = make_server(tsa_authority, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with _connect(f"http://127.0.0.1:{server.server_address[1]}/") as sock:
            sock.sendall(_post(make_request(nonce=71)))
            assert _token_nonce(_read_replies(sock, 1)[0]) == 71
            started = time.monotonic()
            assert sock.recv(1) == b""  # closed by the server, within a sweep of the timeout
            assert time.monotonic() - started < 5
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_shutdown_stops_the_loop_and_closes_its_connections(tsa_authority: TimestampAuthority) -> None:
    server = make_server(tsa_authority, "127.0.0.1", 0)
    server.shutdown()  # not serving yet: returns at once
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    with _connect(url) as sock:
        sock.sendall(_post(make_request(nonce=81)))
        assert _token_nonce(_read_replies(sock, 1)[0]) == 81
        started = time.monotonic()
        server.shutdown()
        assert time.monotonic() - started < 2  # woken at once, not after a polling interval
        thread.join(5)
        assert not thread.is_alive()
        assert sock.recv(1) == b""
    server.server_close()
    with pytest.raises(OSError):
        _connect(url).close()


class _WaitingAuthority(TimestampAuthority):
    """An authority whose tokens take 0.2 s (as one signing on an HSM would), counting the calls in progress."""

    def __init__(self, pki: TestPki) -> None:
        super().__init__(pki.tsa.cert, pki.tsa.key, pki.tsa.chain[1:], clock=lambda: pki.now)
        self.active = 0
        self.peak = 0
        self._count = threading.Lock()

    def respond(self, request_der: bytes) -> bytes:
        with self._count:
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            time.sleep(0.2)
            return super().respond(request_der)
        finally:
            with self._count:
                self.active -= 1


def test_an_authority_that_waits_gets_a_thread_per_connection(pki: TestPki) -> None:
    authority = _WaitingAuthority(pki)
    server = make_server(authority, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        for nonce in (89, 90):  # seen to wait twice: one slow call could be a stall of the machine
            assert _token_nonce(_raw_exchange(url, _post(make_request(nonce=nonce)))[0]) == nonce
        connections = [_connect(url) for _ in range(4)]
        try:
            for index, sock in enumerate(connections):
                sock.sendall(_post(make_request(nonce=91 + index)))
            for index, sock in enumerate(connections):
                assert _token_nonce(_read_replies(sock, 1)[0]) == 91 + index
        finally:
            for sock in connections:
                sock.close()
        assert authority.peak >= 2  # answered side by side, not one after the other
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
