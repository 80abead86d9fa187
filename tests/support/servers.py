"""Real loopback HTTP servers for tests: CRL/caIssuers server, OCSP responder (RFC 6960) and the nuseal TSA.

Each runs a ``ThreadingHTTPServer`` in a daemon thread on 127.0.0.1. The first start uses the socket
reserved by :class:`tests.support.pki.PortReservation` (so the port matches the URLs inside the
certificates); ``stop()`` closes it ("responder down") and ``start()`` binds the same port again. ``hits``
records ``(method, path)`` of every request, ``force_status`` makes the server answer every request with that
HTTP status and ``delay_seconds`` makes it slow (for client timeout tests).
"""

from __future__ import annotations

import base64
import hashlib
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from asn1crypto import keys as asn1_keys
from asn1crypto import tsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from tests.support.pki import IssuedCert, TestPki

MAX_BODY = 64 * 1024


@dataclass(frozen=True)
class Reply:
    status: int
    content_type: str = "application/octet-stream"
    body: bytes = b""


#: ``(method, path, body) -> Reply``: what a server does with one request.
Responder = Callable[[str, str, bytes], Reply]


class LoopbackServer:
    """A restartable HTTP server on 127.0.0.1 delegating every request to a :data:`Responder`."""

    def __init__(self, name: str, responder: Responder, sock: socket.socket | None = None) -> None:
        self.name = name
        self.responder = responder
        self._reserved = sock
        self.port: int = sock.getsockname()[1] if sock is not None else 0
        self.hits: list[tuple[str, str]] = []
        self.force_status: int | None = None
        self.delay_seconds: float = 0.0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> LoopbackServer:
        if self._server is not None:
            return self
        handler = _handler_class(self)
        if self._reserved is not None:
            server = ThreadingHTTPServer(("127.0.0.1", self.port), handler, bind_and_activate=False)
            server.socket.close()
            server.socket = self._reserved
            server.server_address = self._reserved.getsockname()
            self._reserved = None
            server.server_activate()
        else:
            # HTTPServer sets allow_reuse_address, so the port freed by stop() can be bound again at once.
            server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name=f"{self.name}-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    @contextmanager
    def stopped(self) -> Iterator[None]:
        """Take the server down for the duration of a ``with`` block, then bring it back on the same port."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    @contextmanager
    def answering(self, status: int) -> Iterator[None]:
        """Answer every request with HTTP ``status`` inside the ``with`` block."""
        self.force_status = status
        try:
            yield
        finally:
            self.force_status = None

    def close(self) -> None:
        self.stop()
        if self._reserved is not None:
            self._reserved.close()
            self._reserved = None


def _handler_class(owner: LoopbackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._dispatch("GET", b"")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._send(Reply(413, "text/plain", b"request too large"))
                return
            self._dispatch("POST", self.rfile.read(length))

        def _dispatch(self, method: str, body: bytes) -> None:
            owner.hits.append((method, self.path))
            if owner.delay_seconds:
                time.sleep(owner.delay_seconds)
            if owner.force_status is not None:
                reply = Reply(owner.force_status, "text/plain", b"forced by test")
            else:
                try:
                    reply = owner.responder(method, self.path, body)
                except Exception as exc:  # a test server must answer, never hang the client
                    reply = Reply(500, "text/plain", repr(exc).encode())
            self._send(reply)

        def _send(self, reply: Reply) -> None:
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
                self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
            return

    return Handler


# --- CRL and caIssuers ------------------------------------------------------------------------------------


def crl_responder(pki: TestPki) -> Responder:
    """GET ``/<ca>.crl`` -> a freshly signed DER CRL; GET ``/<ca>.cer`` -> the CA certificate (DER)."""

    def respond(method: str, path: str, body: bytes) -> Reply:
        name, _, extension = path.lstrip("/").rpartition(".")
        ca = pki.ca_named(name)
        if method != "GET" or ca is None or extension not in ("crl", "cer"):
            return Reply(404, "text/plain", b"not found")
        if extension == "crl":
            return Reply(200, "application/pkix-crl", pki.crl_der(ca))
        return Reply(200, "application/pkix-cert", ca.der)

    return respond


# --- OCSP ------------------------------------------------------------------------------------------------


def _key_hash(cert: x509.Certificate, algorithm: hashes.HashAlgorithm) -> bytes:
    spki = asn1_keys.PublicKeyInfo.load(cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ))  # fmt: skip
    return hashlib.new(algorithm.name, spki["public_key"].contents[1:]).digest()


def _name_hash(cert: x509.Certificate, algorithm: hashes.HashAlgorithm) -> bytes:
    return hashlib.new(algorithm.name, cert.subject.public_bytes()).digest()


def ocsp_response_der(pki: TestPki, request_der: bytes, now: datetime | None = None) -> bytes:
    """Answer one RFC 6960 request from the PKI's revocation data (good / revoked / unknown, nonce echoed)."""
    now = now or datetime.now(UTC)
    try:
        request = ocsp.load_der_ocsp_request(request_der)
    except ValueError:
        return _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
    issuer = next(
        (
            ca
            for ca in pki.cas
            if _name_hash(ca.cert, request.hash_algorithm) == request.issuer_name_hash
            and _key_hash(ca.cert, request.hash_algorithm) == request.issuer_key_hash
        ),
        None,
    )
    if issuer is None:
        return _unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)
    issuer_name = issuer.cert.subject.public_bytes()
    revocation = pki.revocations.revocation_of(issuer_name, request.serial_number)
    revocation_time: datetime | None = None
    reason: x509.ReasonFlags | None = None
    if revocation is not None:
        status = ocsp.OCSPCertStatus.REVOKED
        revocation_time, reason = revocation.when, revocation.reason
    elif pki.revocations.is_marked_unknown(issuer_name, request.serial_number) or not pki.is_issued(
        issuer, request.serial_number
    ):
        status = ocsp.OCSPCertStatus.UNKNOWN
    else:
        status = ocsp.OCSPCertStatus.GOOD
    # The intermediate delegates to the ``ocsp`` responder certificate; the roots sign their own answers.
    responder: IssuedCert = pki.ocsp if issuer is pki.intermediate else issuer
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response_by_hash(
            issuer_name_hash=request.issuer_name_hash,
            issuer_key_hash=request.issuer_key_hash,
            serial_number=request.serial_number,
            algorithm=request.hash_algorithm,
            cert_status=status,
            this_update=now - timedelta(minutes=1),
            next_update=now + timedelta(days=1),
            revocation_time=revocation_time,
            revocation_reason=reason,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, responder.cert)
    )
    if responder is not issuer:
        builder = builder.certificates([responder.cert])
    try:
        nonce = request.extensions.get_extension_for_class(x509.OCSPNonce).value
        builder = builder.add_extension(x509.OCSPNonce(nonce.nonce), critical=False)
    except x509.ExtensionNotFound:
        pass
    return builder.sign(responder.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def _unsuccessful(status: ocsp.OCSPResponseStatus) -> bytes:
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(serialization.Encoding.DER)


def ocsp_responder(pki: TestPki) -> Responder:
    """POST the DER request, or GET ``/<url-encoded base64 of it>`` (RFC 6960 appendix A.1)."""

    def respond(method: str, path: str, body: bytes) -> Reply:
        if method == "GET":
            try:
                body = base64.b64decode(urllib.parse.unquote(path.lstrip("/")), validate=True)
            except ValueError:
                body = b""
        return Reply(200, "application/ocsp-response", ocsp_response_der(pki, body))

    return respond


# --- TSA -------------------------------------------------------------------------------------------------


def tsa_responder(respond_der: Callable[[bytes], bytes]) -> Responder:
    """POST ``application/timestamp-query`` -> ``application/timestamp-reply`` (RFC 3161 §3.4)."""

    def respond(method: str, path: str, body: bytes) -> Reply:
        if method != "POST":
            return Reply(405, "text/plain", b"POST a TimeStampReq")
        return Reply(200, "application/timestamp-reply", respond_der(body))

    return respond


def timestamp_request(
    data: bytes = b"signature value",
    *,
    algorithm: str = "sha256",
    nonce: int | None = 0x1234567890ABCDEF,
    cert_req: bool = True,
    policy: str | None = None,
    digest: bytes | None = None,
) -> bytes:
    """A DER ``TimeStampReq`` over HASH(data) (or the given ``digest``), as NuGet sends it by default."""
    fields: dict[str, object] = {
        "version": "v1",
        "message_imprint": {
            "hash_algorithm": {"algorithm": algorithm},
            "hashed_message": digest if digest is not None else hashlib.new(algorithm, data).digest(),
        },
        "cert_req": cert_req,
    }
    if nonce is not None:
        fields["nonce"] = nonce
    if policy is not None:
        fields["req_policy"] = policy
    return bytes(tsp.TimeStampReq(fields).dump())
