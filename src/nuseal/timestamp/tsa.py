"""A real RFC 3161 Time-Stamp Authority: ``TimeStampReq`` DER in, ``TimeStampResp`` DER out, plus HTTP.

The token is a CMS SignedData over a TSTInfo v1, signed with RSA PKCS#1 v1.5 / SHA-256, whose signed
attributes are content-type (id-ct-TSTInfo), signing-time, message-digest and signing-certificate-v2 with
issuerSerial (what NuGet's timestamp loader requires, spec §5.3). Bad requests get a ``rejection`` status
with a failInfo; ``respond`` never raises for anything a client can send.

Requests are parsed with asn1crypto. Tokens are assembled from DER pieces (``_der``): everything that does not
change between tokens (the TSA name, the issuer and serial, the signing-certificate-v2 attribute, the certificate
set) is encoded once with asn1crypto when the authority is made, and each token only encodes its TSTInfo, its
signed attributes and the signature around them. Building every token with asn1crypto cost ~2 ms of CPU, more
than the RSA signature, and a signing server's throughput is bounded by its TSA (bench/timestamp).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from nuseal.errors import CertificateError
from nuseal.timestamp import _der

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


class TimeStampResponse(core.Sequence):  # type: ignore[misc]
    """RFC 3161 ``TimeStampResp`` with the token OPTIONAL, as the RFC says (asn1crypto makes it mandatory)."""

    _fields = [  # noqa: RUF012 (asn1crypto class protocol)
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


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
        self._encode_constant_parts()

    # --- public ---------------------------------------------------------------------------------------------

    def respond(self, request_der: bytes) -> bytes:
        """Answer one ``TimeStampReq`` (DER) with a ``TimeStampResp`` (DER): granted or rejection."""
        try:
            request = self._parse_request(request_der)
        except _Rejection as rejection:
            return self._rejection(rejection.fail_info, rejection.text)
        try:
            token = self._issue_token(request)
        except Exception as exc:  # a signing failure is the TSA's fault: report it, never crash the server
            return self._rejection("system_failure", f"The timestamp could not be signed: {exc}")
        return _der.sequence(_GRANTED, token)

    # --- request --------------------------------------------------------------------------------------------

    def _parse_request(self, request_der: bytes) -> tsp.TimeStampReq:
        if len(request_der) > MAX_REQUEST_BYTES:
            raise _Rejection("bad_data_format", f"The request is larger than {MAX_REQUEST_BYTES} bytes.")
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
        return request

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

    def _issue_token(self, request: tsp.TimeStampReq) -> bytes:
        """The TimeStampToken (ContentInfo DER) answering ``request``."""
        # Whole seconds: the accuracy is whole seconds anyway, and it keeps GeneralizedTime free of fractions.
        gen_time = self.clock().replace(microsecond=0)
        if gen_time.tzinfo is None:
            raise ValueError("the TSA clock must return timezone-aware datetimes")
        gen_time = gen_time.astimezone(UTC)
        nonce = request["nonce"].native
        tst_der = _der.sequence(
            self._tst_info_head,
            request["message_imprint"].dump(),
            _der.integer(self._next_serial(gen_time)),
            _der.generalized_time(gen_time),
            self._accuracy,
            _der.integer(nonce) if nonce is not None else b"",
            self._tsa_name,
        )
        signed_attrs = b"".join(sorted((
            _CONTENT_TYPE_TST_INFO,
            _der.sequence(_SIGNING_TIME_OID, _der.set_of(_der.cms_time(gen_time))),
            _der.sequence(_MESSAGE_DIGEST_OID, _der.set_of(_der.octet_string(hashlib.sha256(tst_der).digest()))),
            self._signing_certificate_attribute,
        )))  # fmt: skip
        # The signature covers the attributes as a SET OF (tag 0x31); the SignerInfo carries them as [0] IMPLICIT.
        signature = self.private_key.sign(_der.tlv(0x31, signed_attrs), padding.PKCS1v15(), hashes.SHA256())
        signer_info = _der.sequence(
            _der.integer(1), self._signer_identifier, _SHA256_ALGORITHM, _der.tlv(0xA0, signed_attrs),
            _RSA_ALGORITHM, _der.octet_string(signature),
        )  # fmt: skip
        signed_data = _der.sequence(
            _der.integer(3),  # RFC 5652 §5.1: eContentType other than id-data
            _der.set_of(_SHA256_ALGORITHM),
            _der.sequence(_TST_INFO_OID, _der.tlv(0xA0, _der.octet_string(tst_der))),
            self._certificates if request["cert_req"].native else b"",
            _der.set_of(signer_info),
        )
        return _der.sequence(_SIGNED_DATA_OID, _der.tlv(0xA0, signed_data))

    def _encode_constant_parts(self) -> None:
        """Encode, once and with asn1crypto, every part of a token that is the same for all tokens."""
        tsa_name = asn1_x509.GeneralName({"directory_name": self._asn1_cert.subject}).dump()
        self._tsa_name = _der.tlv(0xA0, tsa_name)  # tsa [0] EXPLICIT GeneralName
        self._tst_info_head = _der.integer(1) + core.ObjectIdentifier(self.policy_oid).dump()
        self._accuracy = _der.sequence(_der.integer(self.accuracy_seconds))
        self._signer_identifier = cms.IssuerAndSerialNumber(
            {"issuer": self._asn1_cert.issuer, "serial_number": self._asn1_cert.serial_number}
        ).dump()
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


def _handler_class(
    tsa: TimestampAuthority, log: Callable[[str], None] | None
) -> type[BaseHTTPRequestHandler]:
    class TimestampHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "nuseal-tsa"
        # Headers and body go out in two writes; with Nagle on, a keep-alive client's delayed ACK held the
        # body back ~40 ms per token.
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            content_type = (self.headers.get("Content-Type") or QUERY_CONTENT_TYPE).split(";")[0].strip()
            if content_type.lower() != QUERY_CONTENT_TYPE:
                self._reply(415, "text/plain", f"Expected Content-Type {QUERY_CONTENT_TYPE}.".encode())
                return
            length_header = self.headers.get("Content-Length")
            if length_header is None or not length_header.isdigit():
                self._reply(411, "text/plain", b"Content-Length is required.")
                return
            if int(length_header) > MAX_REQUEST_BYTES:
                self._reply(413, "text/plain", f"Requests are limited to {MAX_REQUEST_BYTES} bytes.".encode())
                self.close_connection = True
                return
            self._reply(200, REPLY_CONTENT_TYPE, tsa.respond(self.rfile.read(int(length_header))))

        def do_GET(self) -> None:
            self._reply(405, "text/plain", b"POST an application/timestamp-query body.")

        def _reply(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            if log is not None:
                log(f"{self.address_string()} {format % args}")

    return TimestampHandler


def make_server(
    tsa: TimestampAuthority,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    log: Callable[[str], None] | None = None,
) -> ThreadingHTTPServer:
    """Bind (not yet serve) the TSA's HTTP server; ``port=0`` lets the OS choose (see ``server_address``)."""
    server = ThreadingHTTPServer((host, port), _handler_class(tsa, log))
    server.daemon_threads = True
    return server


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
