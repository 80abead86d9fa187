"""A real RFC 3161 Time-Stamp Authority: ``TimeStampReq`` DER in, ``TimeStampResp`` DER out, plus HTTP.

The token is a CMS SignedData over a TSTInfo v1, signed with RSA PKCS#1 v1.5 / SHA-256, whose signed
attributes are content-type (id-ct-TSTInfo), signing-time, message-digest and signing-certificate-v2 with
issuerSerial (what NuGet's timestamp loader requires, spec §5.3). Bad requests get a ``rejection`` status
with a failInfo; ``respond`` never raises for anything a client can send.

Requests in the form every client sends (NuGet's, OpenSSL's: DER, the three SHA-2 imprints, no policy, no
extensions) are read by the DER walker (``_read_plain_request``); anything else, malformed or merely unusual, is
judged by asn1crypto, whose wording the rejections keep. Tokens are assembled from DER pieces (``nuseal.cms.encode``):
everything that does not change between tokens (the TSA name, the issuer and serial, the signing-certificate-v2
attribute, the certificate set) is encoded once with asn1crypto when the authority is made, and each token only
encodes its TSTInfo and its signed attributes (their times once a second); the bytes around those two and the
signature depend only on their sizes, so they are encoded once per set of sizes (``_frame``). Building every
token with asn1crypto cost ~2 ms of CPU, more than the RSA signature, and a signing server's throughput is bounded
by its TSA (bench/timestamp).

HTTP is served by one event loop (``TimestampServer``, non-blocking sockets and ``selectors``) for every connection
whose requests are in the form every timestamp client sends (``POST`` of a Content-Length body with
``application/timestamp-query``, HTTP/1.1, no ``Expect``, ``Connection`` or ``Transfer-Encoding`` header, strictly
formed lines): they are read and answered without h11, with the bytes h11 would write (``_plain_head``: h11's state
machine cost ~0.3 ms of CPU per token, a third of the RSA signature), pipelined answers in one write. A thread per
connection cost ~25 futex calls per token with 8 clients (the GIL handed between connection threads around the RSA
signature, which releases it). A connection whose next request is not in that form goes, with what was read of it,
to a thread of its own speaking HTTP/1.1 through ``h11`` (keep-alive, Content-Length or chunked bodies,
``Expect: 100-continue``, worded refusals), as every connection did before; so does every connection once
``respond`` calls have been seen to wait (an authority signing on an HSM would otherwise hold up all clients).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import selectors
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import formatdate
from http.server import ThreadingHTTPServer

import h11
from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from nuseal import oids
from nuseal.cms import encode
from nuseal.errors import CertificateError
from nuseal.x509 import der as walker

#: Imprint hash algorithms the TSA accepts: the ones NuGet accepts (spec §5.2-5.3); anything else is badAlg.
ACCEPTED_IMPRINT_ALGORITHMS: dict[str, int] = {"sha256": 32, "sha384": 48, "sha512": 64}
DEFAULT_POLICY_OID = "1.2.3.4.1"
#: A TimeStampReq is ~100 bytes; anything far bigger is not one.
MAX_REQUEST_BYTES = 16 * 1024
QUERY_CONTENT_TYPE = "application/timestamp-query"
REPLY_CONTENT_TYPE = "application/timestamp-reply"

# Constant DER pieces of every token (encoded once with asn1crypto).
_GRANTED = tsp.PKIStatusInfo({"status": "granted"}).dump()
_SHA256_ALGORITHM = algos.DigestAlgorithm({"algorithm": "sha256"}).dump()
_RSA_ALGORITHM = algos.SignedDigestAlgorithm({"algorithm": "rsassa_pkcs1v15"}).dump()
_SIGNED_DATA_OID = cms.ContentType("signed_data").dump()
_TST_INFO_OID = cms.ContentType("tst_info").dump()
_SIGNING_TIME_OID = cms.CMSAttributeType("signing_time").dump()
_MESSAGE_DIGEST_OID = cms.CMSAttributeType("message_digest").dump()
_CONTENT_TYPE_TST_INFO = cms.CMSAttribute({"type": "content_type", "values": ["tst_info"]}).dump()
_VERSION_1 = encode.integer(1)
_VERSION_3 = encode.integer(3)  # RFC 5652 §5.1: eContentType other than id-data
_DIGEST_ALGORITHMS = encode.set_of(_SHA256_ALGORITHM)
#: The message-digest attribute of a SHA-256 digest, but for the 32 digest octets that end it.
_MESSAGE_DIGEST_HEAD = encode.sequence(_MESSAGE_DIGEST_OID, encode.set_of(encode.octet_string(bytes(32))))[:-32]
_PKCS1V15 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()


class TimeStampResponse(core.Sequence):  # type: ignore[misc]
    """RFC 3161 ``TimeStampResp`` with the token OPTIONAL, as the RFC says (asn1crypto makes it mandatory)."""

    _fields = [  # noqa: RUF012 (asn1crypto class protocol)
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


@dataclass(frozen=True)
class _Request:
    """What a token needs from an accepted request: the MessageImprint as sent (its DER, copied into the TSTInfo),
    the nonce and certReq."""

    message_imprint: bytes
    nonce: int | None
    cert_req: bool


#: MessageImprint hashAlgorithm TLVs the walker accepts (the three SHA-2 OIDs, parameters absent or NULL), with the
#: imprint length each needs.
_PLAIN_IMPRINT_ALGORITHMS: dict[bytes, int] = {
    core.ObjectIdentifier(oid).dump() + parameters: ACCEPTED_IMPRINT_ALGORITHMS[name]
    for oid, name in oids.SHA2_HASHES.items()
    for parameters in (b"", b"\x05\x00")
}


def _read_plain_request(request_der: bytes) -> _Request | None:
    """A TimeStampReq in the form every client sends, read by the DER walker: version 1, a SHA-2 imprint of the
    right length, no policy, an optional nonce, certReq TRUE, FALSE or absent, no extensions, nothing after it, short
    tags and definite lengths only (the imprint is copied into the TSTInfo as sent, as asn1crypto's ``dump`` of
    the parsed value did). None for anything else (asn1crypto then judges and words it)."""
    try:
        if request_der[:1] != b"\x30":
            return None
        fields = walker.tlvs(walker.contents_of(request_der))
        if len(fields) < 2 or fields[0] != b"\x02\x01\x01" or fields[1][:1] != b"\x30":
            return None
        imprint = walker.tlvs(walker.contents_of(fields[1]))
        if len(imprint) != 2 or imprint[0][:1] != b"\x30" or imprint[1][:1] != b"\x04":
            return None
        size = _PLAIN_IMPRINT_ALGORITHMS.get(walker.contents_of(imprint[0]))
        if size is None or len(walker.contents_of(imprint[1])) != size:
            return None
        nonce: int | None = None
        cert_req = False
        rest = fields[2:]
        if rest and rest[0][:1] == b"\x02":
            contents = walker.contents_of(rest[0])
            if not contents:
                return None
            nonce = int.from_bytes(contents, "big", signed=True)
            rest = rest[1:]
        if rest and rest[0] in (b"\x01\x01\xff", b"\x01\x01\x00"):
            cert_req = rest[0] == b"\x01\x01\xff"
            rest = rest[1:]
        if rest:
            return None  # a policy, extensions or anything else: asn1crypto's reading decides
    except walker.ASN1_ERRORS:
        return None
    if 0x80 in (request_der[1], fields[1][1], imprint[0][1]):
        return None  # an indefinite length (BER): asn1crypto's reading decides
    return _Request(fields[1], nonce, cert_req)


class _Rejection(Exception):
    def __init__(self, fail_info: str, text: str) -> None:
        super().__init__(text)
        self.fail_info = fail_info
        self.text = text


def _cert_der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _require_timestamping_certificate(cert: x509.Certificate, key: rsa.RSAPrivateKey) -> None:
    subject = cert.subject.rfc4514_string()
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        eku = None
    # RFC 3161 §2.3 (and OpenSSL's TSA): the EKU must be critical and contain timeStamping.
    if eku is None or not eku.critical or ExtendedKeyUsageOID.TIME_STAMPING not in eku.value:
        raise CertificateError(
            f"The certificate '{subject}' cannot be used by a timestamp authority: it needs a critical "
            "extended key usage extension containing id-kp-timeStamping (1.3.6.1.5.5.7.3.8)."
        )
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CertificateError(f"The timestamp authority key for '{subject}' must be an RSA key.")
    if key.public_key().public_numbers() != cert.public_key().public_numbers():  # type: ignore[union-attr]
        raise CertificateError(f"The private key does not belong to the certificate '{subject}'.")


class TimestampAuthority:
    """Issues RFC 3161 tokens with the given certificate and key. ``clock`` gives genTime (tz-aware UTC)."""

    def __init__(
        self,
        certificate: x509.Certificate,
        private_key: rsa.RSAPrivateKey,
        chain: Sequence[x509.Certificate] = (),
        *,
        clock: Callable[[], datetime],
        policy_oid: str = DEFAULT_POLICY_OID,
        accuracy_seconds: int = 1,
    ) -> None:
        _require_timestamping_certificate(certificate, private_key)
        self.certificate = certificate
        self.private_key = private_key
        # The chain above the TSA certificate (intermediates, maybe the root); the leaf is never repeated.
        self.chain = [c for c in chain if c != certificate]
        self.clock = clock
        self.policy_oid = policy_oid
        self.accuracy_seconds = accuracy_seconds
        self._asn1_cert = asn1_x509.Certificate.load(_cert_der(certificate))
        self._lock = threading.Lock()
        self._last_serial = 0
        self._time_cache: tuple[datetime, bytes, bytes] | None = None
        self._frames: dict[tuple[int, int, int, bool], tuple[bytes, bytes, bytes]] = {}
        self._encode_constant_parts()

    # --- public ---------------------------------------------------------------------------------------------

    def respond(self, request_der: bytes) -> bytes:
        """Answer one ``TimeStampReq`` (DER) with a ``TimeStampResp`` (DER): granted or rejection."""
        try:
            request = self._parse_request(request_der)
        except _Rejection as rejection:
            return self._rejection(rejection.fail_info, rejection.text)
        try:
            return self._granted(request)
        except Exception as exc:  # a signing failure is the TSA's fault: report it, never crash the server
            return self._rejection("system_failure", f"The timestamp could not be signed: {exc}")

    # --- request --------------------------------------------------------------------------------------------

    def _parse_request(self, request_der: bytes) -> _Request:
        if len(request_der) > MAX_REQUEST_BYTES:
            raise _Rejection("bad_data_format", f"The request is larger than {MAX_REQUEST_BYTES} bytes.")
        plain = _read_plain_request(request_der)
        if plain is not None:
            return plain
        try:
            request = tsp.TimeStampReq.load(request_der, strict=True)
            _ = request.native  # forces a full parse: asn1crypto decodes lazily
        except (ValueError, TypeError, KeyError) as exc:
            raise _Rejection("bad_data_format", f"The request is not a DER TimeStampReq: {exc}") from None
        if request["version"].native != "v1":
            raise _Rejection("bad_request", "Only TimeStampReq version 1 is supported.")
        imprint = request["message_imprint"]
        algorithm = imprint["hash_algorithm"]["algorithm"].native
        if algorithm not in ACCEPTED_IMPRINT_ALGORITHMS:
            raise _Rejection("bad_alg", f"The message imprint hash algorithm '{algorithm}' is not accepted.")
        if len(imprint["hashed_message"].native) != ACCEPTED_IMPRINT_ALGORITHMS[algorithm]:
            raise _Rejection("bad_data_format", f"The message imprint length does not match {algorithm}.")
        policy = request["req_policy"].dotted if request["req_policy"].native is not None else None
        if policy is not None and policy != self.policy_oid:
            raise _Rejection("unaccepted_policy", f"The policy '{policy}' is not offered by this authority.")
        if request["extensions"].native:
            raise _Rejection("unaccepted_extensions", "Request extensions are not supported.")
        return _Request(bytes(imprint.dump()), request["nonce"].native, bool(request["cert_req"].native))

    def _rejection(self, fail_info: str, text: str) -> bytes:
        status = tsp.PKIStatusInfo(
            {"status": "rejection", "status_string": [text], "fail_info": tsp.PKIFailureInfo({fail_info})}
        )
        return bytes(TimeStampResponse({"status": status}).dump())

    # --- token ----------------------------------------------------------------------------------------------

    def _next_serial(self, gen_time: datetime) -> int:
        # Unique and increasing within this authority, and (being time-based) across restarts.
        with self._lock:
            self._last_serial = max(self._last_serial + 1, int(gen_time.timestamp() * 1_000_000))
            return self._last_serial

    def _granted(self, request: _Request) -> bytes:
        """The granted ``TimeStampResp`` answering ``request``."""
        # Whole seconds: the accuracy is whole seconds anyway, and it keeps GeneralizedTime free of fractions.
        gen_time = self.clock().replace(microsecond=0)
        if gen_time.tzinfo is None:
            raise ValueError("the TSA clock must return timezone-aware datetimes")
        gen_time = gen_time.astimezone(UTC)
        gen_time_der, signing_time_attribute = self._time_parts(gen_time)
        nonce = request.nonce
        tst_der = encode.sequence(
            self._tst_info_head,
            request.message_imprint,
            encode.integer(self._next_serial(gen_time)),
            gen_time_der,
            self._accuracy,
            encode.integer(nonce) if nonce is not None else b"",
            self._tsa_name,
        )
        signed_attrs = b"".join(sorted((
            _CONTENT_TYPE_TST_INFO,
            signing_time_attribute,
            _MESSAGE_DIGEST_HEAD + hashlib.sha256(tst_der).digest(),
            self._signing_certificate_attribute,
        )))  # fmt: skip
        # The signature covers the attributes as a SET OF (tag 0x31); the SignerInfo carries them as [0] IMPLICIT.
        signature = self.private_key.sign(encode.tlv(0x31, signed_attrs), _PKCS1V15, _SHA256)
        sizes = (len(tst_der), len(signed_attrs), len(signature), request.cert_req)
        frame = self._frames.get(sizes)
        if frame is None:
            frame = self._frame(sizes)
            if len(self._frames) < 64:
                self._frames[sizes] = frame
        before_tst, before_attrs, before_signature = frame
        return b"".join((before_tst, tst_der, before_attrs, signed_attrs, before_signature, signature))

    def _assemble(self, tst_der: bytes, signed_attrs: bytes, signature: bytes, cert_req: bool) -> bytes:
        """The granted ``TimeStampResp`` around a token's three variable parts (TSTInfo, signed attributes,
        signature value)."""
        signer_info = encode.sequence(
            self._signer_info_head, encode.tlv(0xA0, signed_attrs), _RSA_ALGORITHM, encode.octet_string(signature))
        signed_data = encode.sequence(
            _VERSION_3,
            _DIGEST_ALGORITHMS,
            encode.sequence(_TST_INFO_OID, encode.tlv(0xA0, encode.octet_string(tst_der))),
            self._certificates if cert_req else b"",
            encode.tlv(0x31, signer_info),  # a SET OF one SignerInfo
        )
        return encode.sequence(_GRANTED, encode.sequence(_SIGNED_DATA_OID, encode.tlv(0xA0, signed_data)))

    def _frame(self, sizes: tuple[int, int, int, bool]) -> tuple[bytes, bytes, bytes]:
        """The bytes of a granted response before its TSTInfo, between it and the signed attributes, and between
        those and the signature value (which ends it): they depend only on the three parts' sizes and certReq, so
        they are encoded once per set of sizes (~25 encoding calls a token otherwise), around random stand-ins for
        the parts, and cut where those are."""
        tst_size, attrs_size, signature_size, cert_req = sizes
        while True:
            tst, attrs, signature = (os.urandom(size) for size in (tst_size, attrs_size, signature_size))
            whole = self._assemble(tst, attrs, signature, cert_req)
            cuts = [whole.find(part) for part in (tst, attrs, signature)]
            # Each stand-in found once (random bytes of ~100 octets or more: anything else is vanishingly rare).
            if all(cut >= 0 and whole.rfind(part) == cut for part, cut in zip((tst, attrs, signature), cuts,
                                                                              strict=True)):
                break
        at_tst, at_attrs, at_signature = cuts
        if not at_tst < at_attrs < at_signature == len(whole) - signature_size:
            raise RuntimeError("the token's parts are not where the frame expects them")
        return whole[:at_tst], whole[at_tst + tst_size:at_attrs], whole[at_attrs + attrs_size:at_signature]

    def _time_parts(self, gen_time: datetime) -> tuple[bytes, bytes]:
        """genTime's GeneralizedTime and the signing-time attribute: the same for every token of the same second,
        so encoded once per second."""
        cached = self._time_cache
        if cached is not None and cached[0] == gen_time:
            return cached[1], cached[2]
        parts = (encode.generalized_time(gen_time),
                 encode.sequence(_SIGNING_TIME_OID, encode.set_of(encode.cms_time(gen_time))))
        self._time_cache = (gen_time, *parts)
        return parts

    def _encode_constant_parts(self) -> None:
        """Encode, once and with asn1crypto, every part of a token that is the same for all tokens."""
        tsa_name = asn1_x509.GeneralName({"directory_name": self._asn1_cert.subject}).dump()
        self._tsa_name = encode.tlv(0xA0, tsa_name)  # tsa [0] EXPLICIT GeneralName
        self._tst_info_head = encode.integer(1) + core.ObjectIdentifier(self.policy_oid).dump()
        self._accuracy = encode.sequence(encode.integer(self.accuracy_seconds))
        self._signer_identifier = cms.IssuerAndSerialNumber(
            {"issuer": self._asn1_cert.issuer, "serial_number": self._asn1_cert.serial_number}
        ).dump()
        self._signer_info_head = _VERSION_1 + self._signer_identifier + _SHA256_ALGORITHM
        self._signing_certificate_attribute = self._encode_signing_certificate_attribute()
        # certificates [0] IMPLICIT CertificateSet: the SET's encoding with its tag replaced (both constructed).
        self._certificates = b"\xa0" + self._certificate_set().dump()[1:]

    def _encode_signing_certificate_attribute(self) -> bytes:
        """signing-certificate-v2 naming the TSA certificate: the same for every token, so encoded once."""
        ess_cert_id = {
            # hashAlgorithm left out: SHA-256 is its DEFAULT, so DER omits it.
            "cert_hash": hashlib.sha256(_cert_der(self.certificate)).digest(),
            "issuer_serial": {
                "issuer": [asn1_x509.GeneralName({"directory_name": self._asn1_cert.issuer})],
                "serial_number": self._asn1_cert.serial_number,
            },
        }
        value = tsp.SigningCertificateV2({"certs": [ess_cert_id]})
        return bytes(cms.CMSAttribute({"type": "signing_certificate_v2", "values": [value]}).dump(force=True))

    def _certificate_set(self) -> cms.CertificateSet:
        # DER orders a SET OF by encoding; strict parsers reject other orders (stack.md §1.6).
        ders = sorted(_cert_der(c) for c in [self.certificate, *self.chain])
        return cms.CertificateSet(
            [cms.CertificateChoices({"certificate": asn1_x509.Certificate.load(d)}) for d in ders]
        )


# --- HTTP ---------------------------------------------------------------------------------------------------


#: Largest request head (request line and headers) the TSA reads; a TimeStampReq client sends a few hundred bytes.
MAX_HEAD_BYTES = 16 * 1024
#: Idle keep-alive connections are closed after this many seconds.
IDLE_TIMEOUT_SECONDS = 300.0
#: A ``respond`` call longer than this waited for something (an RSA signature takes well under a millisecond): after
#: two, the server serves each connection on a thread of its own so that one slow token does not hold up the others.
SLOW_RESPOND_SECONDS = 0.05
_RECEIVE_BYTES = 64 * 1024


_date_cache: tuple[int, str] = (0, "")


def _http_date() -> str:
    """The Date header, formatted once per second."""
    global _date_cache
    now = int(time.time())
    second, text = _date_cache
    if second != now:
        text = formatdate(now, usegmt=True)
        _date_cache = (now, text)
    return text


#: A request line and header lines in the one form the fast path reads (anything else goes to h11): origin-form
#: target of visible ASCII, HTTP/1.1; header names are tokens, values visible ASCII with inner spaces or tabs.
_PLAIN_REQUEST_LINE = re.compile(rb"POST (/[\x21-\x7e]*) HTTP/1\.1")
_PLAIN_HEADER = re.compile(
    rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*((?:[\x21-\x7e](?:[\x20-\x7e\t]*[\x21-\x7e])?)?)[ \t]*")
#: Headers that change how the request is framed or the connection used: their requests go to h11.
_FRAMING_HEADERS = frozenset((b"transfer-encoding", b"expect", b"connection", b"upgrade"))


def _plain_head(head: bytes) -> tuple[bytes, int] | None:
    """The target and Content-Length of a request head (without its final empty line) in the form every timestamp
    client sends, with the right Content-Type and a body of at most ``MAX_REQUEST_BYTES``; None for anything else,
    which h11 reads and answers."""
    lines = head.split(b"\r\n")
    first = _PLAIN_REQUEST_LINE.fullmatch(lines[0])
    if first is None or len(lines) > 101:
        return None
    length: int | None = None
    content_type_ok = False
    hosts = 0
    for line in lines[1:]:
        header = _PLAIN_HEADER.fullmatch(line)
        if header is None:
            return None
        name = header[1].lower()
        if name == b"content-length":
            if length is not None or not header[2].isdigit() or len(header[2]) > 9:
                return None
            length = int(header[2])
        elif name == b"content-type":
            if content_type_ok or header[2].split(b";")[0].strip().lower() != QUERY_CONTENT_TYPE.encode():
                return None
            content_type_ok = True
        elif name == b"host":
            hosts += 1
        elif name in _FRAMING_HEADERS:
            return None
    # HTTP/1.1 requires exactly one Host header (h11 answers 400 without it).
    if length is None or not content_type_ok or hosts != 1 or length > MAX_REQUEST_BYTES:
        return None
    return first[1], length


_PLAIN_REPLY_HEAD = b"HTTP/1.1 200 \r\nContent-Type: " + REPLY_CONTENT_TYPE.encode() + b"\r\nContent-Length: "


def _plain_reply(body: bytes) -> bytes:
    """The 200 answer to a plain request, byte for byte what the h11 path writes for it."""
    return b"".join((_PLAIN_REPLY_HEAD, str(len(body)).encode(), b"\r\nDate: ", _http_date().encode(),
                     b"\r\nServer: nuseal-tsa\r\n\r\n", body))


class _Reply(Exception):
    """An HTTP answer decided before the body was read (the connection is closed after it)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.body = text.encode()


class _ConnectionThread:
    """One connection served by a thread of its own (how every connection was served before the event loop): plain
    requests read by hand until one is not in that form, then HTTP/1.1 through h11 (keep-alive, chunked bodies,
    ``Expect: 100-continue``, worded refusals), each answer in one write."""

    def __init__(self, sock: socket.socket, address: tuple[str, int], tsa: TimestampAuthority,
                 log: Callable[[str], None] | None) -> None:
        self.sock = sock
        self.address = address
        self.tsa = tsa
        self.log = log
        self.connection = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)

    def run(self, received: bytes) -> None:
        """Serve the connection, ``received`` being what was read from it and not answered yet."""
        self.sock.settimeout(IDLE_TIMEOUT_SECONDS)
        try:
            rest = self._plain_exchanges(received)
            if rest is None:
                return  # the client closed the connection
            self.connection.receive_data(rest)
            while self._one_exchange():
                self.connection.start_next_cycle()
        except (OSError, h11.LocalProtocolError):
            pass  # the client went away (or timed out): nothing to answer

    def _plain_exchanges(self, buffer: bytes) -> bytes | None:
        """Answer requests in the plain form (``_plain_head``) until one is not, or the client closes (None).
        Returns the bytes received and not answered, from the start of the first request that is not plain:
        h11 reads them and serves the rest of the connection."""
        while True:
            end = buffer.find(b"\r\n\r\n")
            while end < 0:
                if len(buffer) > MAX_HEAD_BYTES:
                    return buffer
                data = self.sock.recv(_RECEIVE_BYTES)
                if not data:
                    return buffer or None
                buffer += data
                end = buffer.find(b"\r\n\r\n", max(0, len(buffer) - len(data) - 3))
            plain = _plain_head(buffer[:end]) if end <= MAX_HEAD_BYTES else None
            if plain is None:
                return buffer
            target, length = plain
            start = end + 4
            while len(buffer) - start < length:
                data = self.sock.recv(_RECEIVE_BYTES)
                if not data:
                    return None  # the body ended early: the client went away
                buffer += data
            body = buffer[start:start + length]
            buffer = buffer[start + length:]
            answer = self.tsa.respond(body)
            self.sock.sendall(_plain_reply(answer))
            if self.log is not None:
                self.log(f'{self.address[0]} "POST {target.decode("ascii")} HTTP/1.1" 200 {len(answer)}')

    def _one_exchange(self) -> bool:
        """Read one request and answer it; False when the connection must close."""
        conn = self.connection
        try:
            request = self._next_event()
            if not isinstance(request, h11.Request):
                return False  # closed by the client between requests
            status, content_type, body = self._answer(request)
            close = False
        except _Reply as early:
            status, content_type, body, close = early.status, "text/plain", early.body, True
            request = None
        except h11.RemoteProtocolError as exc:
            if conn.our_state is not h11.SEND_RESPONSE and conn.our_state is not h11.IDLE:
                return False
            status, content_type, body, close = exc.error_status_hint, "text/plain", f"{exc}".encode(), True
            request = None
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body))),
                   ("Date", _http_date()), ("Server", "nuseal-tsa")]
        if close:
            headers.append(("Connection", "close"))
        try:
            data = conn.send(h11.Response(status_code=status, headers=headers))
        except h11.LocalProtocolError:
            return False
        data = (data or b"") + (conn.send(h11.Data(data=body)) or b"") + (conn.send(h11.EndOfMessage()) or b"")
        self.sock.sendall(data)
        if self.log is not None:
            line = f'{request.method.decode("ascii", "replace")} {request.target.decode("ascii", "replace")} ' \
                   f'HTTP/{request.http_version.decode("ascii", "replace")}' if request is not None else "-"
            self.log(f'{self.address[0]} "{line}" {status} {len(body)}')
        return not close and conn.our_state is h11.DONE and conn.their_state is h11.DONE

    def _answer(self, request: h11.Request) -> tuple[int, str, bytes]:
        if request.method != b"POST":
            self._skip_body()
            return 405, "text/plain", b"POST an application/timestamp-query body."
        headers = {name: value for name, value in request.headers}
        content_type = headers.get(b"content-type", QUERY_CONTENT_TYPE.encode()).split(b";")[0].strip()
        if content_type.lower() != QUERY_CONTENT_TYPE.encode():
            self._skip_body()
            return 415, "text/plain", f"Expected Content-Type {QUERY_CONTENT_TYPE}.".encode()
        length = headers.get(b"content-length")
        if length is None and b"transfer-encoding" not in headers:
            raise _Reply(411, "Content-Length is required.")
        if length is not None and int(length) > MAX_REQUEST_BYTES:
            raise _Reply(413, f"Requests are limited to {MAX_REQUEST_BYTES} bytes.")
        return 200, REPLY_CONTENT_TYPE, self.tsa.respond(self._body(MAX_REQUEST_BYTES))

    def _body(self, limit: int) -> bytes:
        if self.connection.they_are_waiting_for_100_continue:
            self.sock.sendall(self.connection.send(h11.InformationalResponse(status_code=100, headers=[])))
        parts: list[bytes] = []
        size = 0
        while True:
            event = self._next_event()
            if isinstance(event, h11.EndOfMessage):
                return b"".join(parts)
            if not isinstance(event, h11.Data):
                raise _Reply(400, "The request body ended early.")
            size += len(event.data)
            if size > limit:
                raise _Reply(413, f"Requests are limited to {limit} bytes.")
            parts.append(bytes(event.data))

    def _skip_body(self) -> None:
        """Read (and drop) a small body so the connection can serve the next request; close for a large one."""
        if self.connection.they_are_waiting_for_100_continue:
            return  # the client has not sent it: h11 then ends the cycle by closing
        self._body(MAX_REQUEST_BYTES)

    def _next_event(self) -> h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED]:
        while True:
            event = self.connection.next_event()
            if event is not h11.NEED_DATA:
                return event
            self.connection.receive_data(self.sock.recv(_RECEIVE_BYTES))


class _Client:
    """A connection the event loop serves: bytes received and not answered, replies not yet sent."""

    __slots__ = ("address", "deadline", "eof", "handoff", "outbox", "received", "scanned", "sock")

    def __init__(self, sock: socket.socket, address: tuple[str, int]) -> None:
        self.sock = sock
        self.address = address
        self.received = b""
        self.scanned = 0  # how much of ``received`` is known to hold no end of head
        self.outbox = b""
        self.eof = False
        self.handoff = False  # the next request is not in the plain form: h11 serves the rest of the connection
        self.deadline = time.monotonic() + IDLE_TIMEOUT_SECONDS


class TimestampServer(ThreadingHTTPServer):
    """The TSA's HTTP server: one thread serves every connection with non-blocking sockets (``serve_forever``).

    A thread per connection cost ~25 futex calls per token under 8 concurrent keep-alive clients (the GIL handed
    between connection threads, around the RSA signature that releases it), more CPU than parsing and answering the
    request; one event loop signs the tokens one after the other, which is what two shared cores can do anyway.
    Requests in the plain form (``_plain_head``) are answered by the loop; a connection whose next request is not
    in that form (Expect, chunked, another method, anything malformed) is handed, with what was read of it, to a
    thread of its own speaking h11, as before."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], tsa: TimestampAuthority,
                 log: Callable[[str], None] | None = None) -> None:
        self.tsa = tsa
        self.log = log
        super().__init__(address, _handler_class(tsa, log))
        self._stop_requested = False
        self._slow_calls = 0
        self._threaded = False  # set once respond calls have been seen to wait
        self._heads: dict[bytes, tuple[bytes, int] | None] = {}
        self._stopped = threading.Event()
        self._stopped.set()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)

    # --- socketserver's interface ---------------------------------------------------------------------------------

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Serve until ``shutdown``; connections still open then are closed."""
        self._stopped.clear()
        clients: dict[int, _Client] = {}
        selector = selectors.DefaultSelector()
        try:
            self.socket.setblocking(False)
            selector.register(self.socket, selectors.EVENT_READ, None)
            selector.register(self._wake_reader, selectors.EVENT_READ, self._wake_reader)
            next_sweep = time.monotonic() + 1.0
            while not self._stop_requested:
                for key, events in selector.select(timeout=1.0):
                    client = key.data
                    if client is None:
                        self._accept(selector, clients)
                    elif isinstance(client, _Client):
                        self._serve(selector, clients, client, events)
                    else:
                        self._drain_wake()
                now = time.monotonic()
                if now >= next_sweep:
                    next_sweep = now + 1.0
                    for client in [c for c in clients.values() if c.deadline < now]:
                        self._drop(selector, clients, client)  # idle for IDLE_TIMEOUT_SECONDS
        finally:
            for client in list(clients.values()):
                self._drop(selector, clients, client)
            selector.close()
            self._stop_requested = False
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop ``serve_forever`` (called from another thread) and wait until it has returned."""
        if self._stopped.is_set():
            return
        self._stop_requested = True
        with contextlib.suppress(OSError):  # the wake-up socket is full: the loop is about to wake anyway
            self._wake_writer.send(b"\0")
        self._stopped.wait()

    def server_close(self) -> None:
        super().server_close()
        self._wake_reader.close()
        self._wake_writer.close()

    # --- the event loop -------------------------------------------------------------------------------------------

    def _drain_wake(self) -> None:
        with contextlib.suppress(OSError):
            while self._wake_reader.recv(64):
                pass

    def _accept(self, selector: selectors.BaseSelector, clients: dict[int, _Client]) -> None:
        for _ in range(64):  # several clients may connect at once; others get their turn after 64
            try:
                sock, address = self.get_request()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # e.g. the client reset before accept: nothing to serve
            try:
                sock.setblocking(False)
                # Replies go out in one write; without Nagle a keep-alive client's delayed ACK cannot hold them back.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                self.shutdown_request(sock)
                continue
            client = _Client(sock, address)
            clients[sock.fileno()] = client
            selector.register(sock, selectors.EVENT_READ, client)
            if self._threaded:
                self._hand_to_h11(selector, clients, client)

    def _serve(self, selector: selectors.BaseSelector, clients: dict[int, _Client], client: _Client,
               events: int) -> None:
        client.deadline = time.monotonic() + IDLE_TIMEOUT_SECONDS
        try:
            if events & selectors.EVENT_WRITE:
                self._send(client, b"")
            elif events & selectors.EVENT_READ:
                data = client.sock.recv(_RECEIVE_BYTES)
                if data:
                    client.received += data
                else:
                    client.eof = True
                self._answer(client)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(selector, clients, client)  # the client went away: nothing to answer
            return
        except Exception:
            # respond() answers anything a client can send; a failure here is a bug: report it, keep serving others.
            self.handle_error(client.sock, client.address)
            self._drop(selector, clients, client)
            return
        if client.outbox:
            selector.modify(client.sock, selectors.EVENT_WRITE, client)  # read more only once this is sent
        elif client.handoff:
            self._hand_to_h11(selector, clients, client)
        elif client.eof:
            self._drop(selector, clients, client)
        elif events & selectors.EVENT_WRITE:
            selector.modify(client.sock, selectors.EVENT_READ, client)

    def _answer(self, client: _Client) -> None:
        """Answer every complete plain request received, in one write; note a request that is not plain."""
        received = client.received
        replies: list[bytes] = []
        if self._threaded:
            client.handoff = True
        while received and not client.handoff:
            end = received.find(b"\r\n\r\n", client.scanned)
            if end < 0:
                client.scanned = max(0, len(received) - 3)
                if len(received) > MAX_HEAD_BYTES or client.eof:
                    client.handoff = True  # h11 words the refusal (or reads what a half-closed client sent)
                break
            plain = self._plain_head(received[:end]) if end <= MAX_HEAD_BYTES else None
            if plain is None:
                client.handoff = True
                break
            target, length = plain
            start = end + 4
            if len(received) - start < length:
                client.scanned = end  # the head is complete: wait for the body
                if client.eof:
                    received = b""  # the body ended early: the client went away
                break
            began = time.monotonic()
            answer = self.tsa.respond(received[start:start + length])
            if time.monotonic() - began > SLOW_RESPOND_SECONDS:
                # An authority that waits (a signer on an HSM or across the network) would hold up every other
                # connection of the loop: from the second such call on (one may be a stall of an overloaded
                # machine), each connection gets a thread of its own, as before the loop.
                self._slow_calls += 1
                if self._slow_calls >= 2:
                    self._threaded = True
                    client.handoff = True
            received = received[start + length:]
            client.scanned = 0
            replies.append(_plain_reply(answer))
            if self.log is not None:
                self.log(f'{client.address[0]} "POST {target.decode("ascii")} HTTP/1.1" 200 {len(answer)}')
        client.received = received
        if replies:
            self._send(client, b"".join(replies) if len(replies) > 1 else replies[0])

    def _plain_head(self, head: bytes) -> tuple[bytes, int] | None:
        """``_plain_head``, remembered: a client sends the same head with every request (but for the length)."""
        try:
            return self._heads[head]
        except KeyError:
            pass
        if len(self._heads) >= 256:
            self._heads.clear()
        found = self._heads[head] = _plain_head(head)
        return found

    @staticmethod
    def _send(client: _Client, data: bytes) -> None:
        pending = client.outbox + data if client.outbox else data
        try:
            sent = client.sock.send(pending)
        except (BlockingIOError, InterruptedError):
            sent = 0  # the socket's buffer is full: all of it waits for the client to read
        client.outbox = pending[sent:]

    def _hand_to_h11(self, selector: selectors.BaseSelector, clients: dict[int, _Client], client: _Client) -> None:
        selector.unregister(client.sock)
        del clients[client.sock.fileno()]
        client.sock.setblocking(True)
        worker = _ConnectionThread(client.sock, client.address, self.tsa, self.log)

        def serve() -> None:
            try:
                worker.run(client.received)
            finally:
                self.shutdown_request(client.sock)

        threading.Thread(target=serve, name="nuseal-tsa-connection", daemon=True).start()

    def _drop(self, selector: selectors.BaseSelector, clients: dict[int, _Client], client: _Client) -> None:
        selector.unregister(client.sock)
        del clients[client.sock.fileno()]
        self.shutdown_request(client.sock)


def _handler_class(
    tsa: TimestampAuthority, log: Callable[[str], None] | None
) -> type[socketserver.BaseRequestHandler]:
    class TimestampHandler(socketserver.BaseRequestHandler):
        """A whole connection on its thread (socketserver's ``handle_request``/``process_request``; the event loop
        hands connections to ``_ConnectionThread`` itself)."""

        def handle(self) -> None:
            _ConnectionThread(self.request, self.client_address, tsa, log).run(b"")

    return TimestampHandler


def make_server(
    tsa: TimestampAuthority,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    log: Callable[[str], None] | None = None,
) -> TimestampServer:
    """Bind (not yet serve) the TSA's HTTP server; ``port=0`` lets the OS choose (see ``server_address``)."""
    return TimestampServer((host, port), tsa, log)


def serve(
    tsa: TimestampAuthority,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    log: Callable[[str], None] | None = None,
    ready: Callable[[ThreadingHTTPServer], None] | None = None,
) -> None:
    """Serve POST ``application/timestamp-query`` until interrupted. ``ready`` is told the bound server."""
    with make_server(tsa, host, port, log=log) as server:
        if ready is not None:
            ready(server)
        server.serve_forever()
