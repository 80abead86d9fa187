"""RFC 3161 timestamp clients: :class:`HttpTimestamper` (HTTP) and :class:`InProcessTimestamper`.

Both timestamp the SignerInfo *signature value*: the message imprint is HASH(signature value) (spec §5.1).
The request is NuGet's (spec §5.2): imprint, certReq TRUE, no policy, no extensions, a 32-byte nonce with the
top bit cleared. The response checks run in NuGet's order: status, nonce (NU3026), imprint (NU3019), then
the token checks of ``nuseal.timestamp.token`` (NU3020-NU3025, NU3036) via :func:`_check_token`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import socket
    from typing import BinaryIO

    import httpx

    from nuseal.timestamp.tsa import TimestampAuthority

import hashlib
import os
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Protocol
from urllib.parse import urlsplit

from nuseal import oids
from nuseal.cms import der as _walker
from nuseal.cms import encode
from nuseal.codes import Messages, NuCode
from nuseal.errors import FetchError, TimestampError
from nuseal.record import Struct
from nuseal.timestamp import token as token_rules

QUERY_CONTENT_TYPE = "application/timestamp-query"
#: Imprint algorithms NuGet offers for ``--timestamp-hash-algorithm`` (spec §5.1).
_DIGEST_SIZES = {"sha256": 32, "sha384": 48, "sha512": 64}
_NONCE_LENGTH = 32
_MAX_RESPONSE_BYTES = 1024 * 1024
NONCE_MISMATCH = "The timestamp response is invalid. Nonces did not match."


class Timestamper(Protocol):
    """Gets a TimeStampToken (ContentInfo DER) over HASH(``data``), ``data`` being a SignerInfo signature."""

    def timestamp(self, data: bytes, hash_algorithm: str) -> bytes: ...


def _algorithm_name(hash_algorithm: str) -> str:
    # Accepts HashAlgorithmName members ("SHA256", a str enum) and hashlib spellings ("sha256").
    name = str(getattr(hash_algorithm, "value", hash_algorithm)).lower().replace("-", "")
    if name not in _DIGEST_SIZES:
        raise ValueError(f"unsupported timestamp hash algorithm {hash_algorithm!r}: use SHA256, SHA384 or SHA512")
    return name


def new_nonce() -> bytes:
    """32 random bytes, most significant bit cleared so the INTEGER stays positive (NuGet on .NET Core)."""
    nonce = bytearray(os.urandom(_NONCE_LENGTH))
    nonce[0] &= 0x7F
    return bytes(nonce)


class TimestampRequest(Struct, frozen=True):
    """One request as sent, with what the response must echo."""

    algorithm: str
    digest: bytes
    nonce: bytes

    @classmethod
    def over(cls, data: bytes, hash_algorithm: str, nonce: bytes | None = None) -> TimestampRequest:
        algorithm = _algorithm_name(hash_algorithm)
        return cls(algorithm, hashlib.new(algorithm, data).digest(), nonce if nonce is not None else new_nonce())

    def to_der(self) -> bytes:
        """``TimeStampReq`` DER (RFC 3161 §2.4.1), by hand: byte for byte what asn1crypto's ``TimeStampReq`` gives
        (tested), without building its object tree for every request."""
        return encode.sequence(
            encode.integer(1),  # version v1
            encode.sequence(
                encode.sequence(_HASH_OID_TLVS[self.algorithm], b"\x05\x00"), encode.octet_string(self.digest)
            ),
            encode.integer(int.from_bytes(self.nonce, "big")),
            b"\x01\x01\xff",  # certReq TRUE
        )


#: The OBJECT IDENTIFIER TLVs of the imprint algorithms (2.16.840.1.101.3.4.2.1-3).
_HASH_OID_TLVS = {"sha256": bytes.fromhex("0609608648016503040201"),
                  "sha384": bytes.fromhex("0609608648016503040202"),
                  "sha512": bytes.fromhex("0609608648016503040203")}
#: The same algorithms by dotted OID, as the token reader gives them.
_HASH_NAMES = oids.SHA2_HASHES


def read_response(response_der: bytes, request: TimestampRequest, source: str) -> bytes:
    """Check a ``TimeStampResp`` against its request; return the token (ContentInfo DER).

    ``TimestampError`` for a refusal, an undecodable answer, a nonce mismatch (NU3026) or an imprint that
    is not HASH(data) (NU3019).
    """
    fast = _granted_token(response_der)
    if fast is not None:
        token_der, nonce, imprint_algorithm, imprint_digest = fast
        return _matched(token_der, request, nonce, imprint_algorithm, imprint_digest)
    # Refusals and unusual encodings: asn1crypto reads and words them (imported only here: signing start-up).
    from asn1crypto import cms
    from asn1crypto.core import Void

    from nuseal.timestamp.tsa import TimeStampResponse

    try:
        response = TimeStampResponse.load(response_der)
        status = response["status"]
        status_name = status["status"].native
    except (ValueError, TypeError, KeyError) as exc:
        raise TimestampError(f"The timestamp response from {source} could not be decoded: {exc}.") from None
    if status_name not in ("granted", "granted_with_mods"):
        text = "; ".join(status["status_string"].native or [])
        fail_info = ", ".join(sorted(status["fail_info"].native or []))
        details = ", ".join(part for part in (text and f"'{text}'", fail_info and f"failInfo {fail_info}") if part)
        raise TimestampError(
            f"The timestamp service {source} did not grant the request: status '{status_name}'"
            + (f" ({details})." if details else ".")
        )
    field = response["time_stamp_token"]
    if isinstance(field, Void):
        raise TimestampError(
            Messages.TIMESTAMP_INVALID.format("signature") + " the response has no timeStampToken.", NuCode.NU3021
        )
    # The token's bytes as received, taken before anything below parses into it: asn1crypto re-encodes a
    # structure once its children were touched, which cost ~0.3 s per token and could alter the bytes.
    token_der = bytes(field.dump())
    try:
        token = cms.ContentInfo.load(token_der)
        if token["content_type"].native != "signed_data":
            raise ValueError(f"the token content type is {token['content_type'].native}, not signedData")
        encap = token["content"]["encap_content_info"]
        if encap["content_type"].native != "tst_info":
            raise ValueError("the token does not carry a TSTInfo")
        tst_info = encap["content"].parsed
        nonce = tst_info["nonce"].native
        imprint = tst_info["message_imprint"]
        imprint_algorithm = imprint["hash_algorithm"]["algorithm"].native
        imprint_digest = imprint["hashed_message"].native
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise TimestampError(Messages.TIMESTAMP_INVALID.format("signature") + f" {exc}.", NuCode.NU3021) from None
    return _matched(token_der, request, nonce, imprint_algorithm, imprint_digest)


def _matched(token_der: bytes, request: TimestampRequest, nonce: int | None, imprint_algorithm: str | None,
             imprint_digest: bytes) -> bytes:
    """The token, once its TSTInfo answers ``request`` (NU3026 for the nonce, NU3019 for the imprint)."""
    if nonce != int.from_bytes(request.nonce, "big"):
        raise TimestampError(NONCE_MISMATCH, NuCode.NU3026)
    if imprint_algorithm != request.algorithm or imprint_digest != request.digest:
        raise TimestampError(
            "The timestamp integrity check failed: the message imprint is not the hash of the signature value.",
            NuCode.NU3019,
        )
    return token_der


def _granted_token(response_der: bytes) -> tuple[bytes, int | None, str | None, bytes] | None:
    """A granted response's token and its TSTInfo's nonce, imprint algorithm (hashlib name, or None when not one
    of the three) and imprint, read by the DER walker; None for anything else (a refusal, an unusual or malformed
    encoding), which the asn1crypto reading in ``read_response`` judges and words."""
    try:
        parts = _walker.tlvs(_walker.contents_of(response_der, 0x30))
        if len(parts) != 2 or parts[0][0] != 0x30 or parts[1][0] != 0x30:
            return None
        status = _walker.tlvs(_walker.contents_of(parts[0]))
        if not status or status[0][0] != 0x02 or _walker.integer_of(status[0]) not in (0, 1):
            return None
        token_der = parts[1]
        signed_data = _walker.read_signed_data(token_der)
        if signed_data.content_type != oids.TST_INFO or signed_data.content is None:
            return None
        tst = token_rules.read_tst_info(signed_data.content)
    except _walker.DECODE_ERRORS:
        return None
    return token_der, tst.nonce, _HASH_NAMES.get(tst.imprint_algorithm_oid), tst.imprint


def _check_token(token_der: bytes, signature_value: bytes, now: datetime | None) -> None:
    """Run ``nuseal.timestamp.token``'s load and check rules (NU3020-NU3025, NU3029, NU3030, NU3036).

    ``now`` defaults to the token's own genTime: the client never reads the clock itself.
    """
    timestamp = token_rules.load_timestamp(token_der)
    reference = now if now is not None else timestamp.gen_time
    for code, message in token_rules.check_timestamp(timestamp, signature_value, reference):
        raise TimestampError(message, code)


class _TimestamperBase(ABC):
    """Request building, response reading and token checks; subclasses only move the bytes."""

    def __init__(self, clock: Callable[[], datetime] | None) -> None:
        self.clock = clock

    @abstractmethod
    def _exchange(self, request_der: bytes) -> bytes:
        """Send a DER TimeStampReq, return the DER TimeStampResp."""

    @property
    @abstractmethod
    def source(self) -> str:
        """Where tokens come from, for error messages."""

    def timestamp(self, data: bytes, hash_algorithm: str) -> bytes:
        request = TimestampRequest.over(data, hash_algorithm)
        token = read_response(self._exchange(request.to_der()), request, self.source)
        _check_token(token, data, self.clock() if self.clock is not None else None)
        return token


class HttpTimestamper(_TimestamperBase):
    """POSTs NuGet's TimeStampReq to an RFC 3161 service.

    ``client`` is injected, or made on first use and kept so a batch reuses one connection (and one TLS
    context, which alone costs ~40 ms to build); ``close()`` or a ``with`` block releases it. One timestamper may
    serve several threads at once: each request then takes a keep-alive connection of the client's pool (requests
    are concurrent, never interleaved on one connection). ``sign_batch`` workers each have their own.

    A plain ``http://`` service (most TSAs) with no proxy configured and no injected client is reached through
    :class:`_PlainHttpPool` instead: keep-alive HTTP/1.1 connections over ``socket``, which cost a small part of
    httpx's CPU per request (~5 ms measured for httpx, ~0.25 ms for ``http.client``, ~0.1 ms for the pool; at
    hundreds of signatures per second that was the largest cost of a timestamped signature) and need no import of
    httpx.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        client: httpx.Client | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(clock)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise TimestampError(f"The timestamp service URL '{url}' is not an absolute http or https URL.")
        self.url = url
        self.timeout = timeout
        self.client = client
        self._owned: httpx.Client | None = None
        self._plain = _PlainHttpPool.for_url(url, timeout) if client is None else None
        self._lock = threading.Lock()  # the owned client is made once, even when threads start together

    def __enter__(self) -> HttpTimestamper:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the client this timestamper made for itself (an injected one is the caller's)."""
        with self._lock:
            if self._owned is not None:
                self._owned.close()
                self._owned = None
        if self._plain is not None:
            self._plain.close()

    @property
    def source(self) -> str:
        return f"'{self.url}'"

    def _exchange(self, request_der: bytes) -> bytes:
        if self._plain is not None:
            status, reason, body = self._plain.post(request_der)
            return self._checked(status, reason, body)
        import httpx  # lazily: importing httpx costs ~150 ms of CLI start-up
        try:
            client = self.client
            if client is None:
                with self._lock:
                    if self._owned is None:
                        self._owned = _client_for(self.url)
                    client = self._owned
            response = self._post(client, request_der)
        except httpx.TimeoutException:
            raise FetchError(
                f"The timestamp service '{self.url}' did not answer within {self.timeout:g} seconds."
            ) from None
        except httpx.HTTPError as exc:
            raise FetchError(f"The timestamp service '{self.url}' could not be reached: {exc}.") from None
        return self._checked(response.status_code, response.reason_phrase, response.content)

    def _checked(self, status: int, reason: str, body: bytes) -> bytes:
        if not 200 <= status < 300:
            raise TimestampError(f"The timestamp service responded with HTTP status code '{status}' "
                                 f"('{_reason_phrase(status, reason)}').")
        if len(body) > _MAX_RESPONSE_BYTES:
            raise TimestampError(f"The timestamp response from '{self.url}' is larger than 1 MiB.")
        return body

    def _post(self, client: httpx.Client, request_der: bytes) -> httpx.Response:
        return client.post(
            self.url,
            content=request_der,
            headers={"Content-Type": QUERY_CONTENT_TYPE},
            timeout=self.timeout,
            follow_redirects=False,
        )


#: Environment variables that route plain HTTP through a proxy (httpx honours them; ``_PlainHttpPool`` does not,
#: so their presence keeps httpx).
_PROXY_VARIABLES = ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY")


class _PlainHttpPool:
    """Keep-alive HTTP/1.1 connections to one plain-HTTP service, shared by threads (one request per connection at
    a time; an idle connection is reused, a new one opened when all are busy).

    Hand-written over ``socket`` rather than ``http.client``: at hundreds of timestamps per second per process,
    ``http.client``'s request and response objects (its header parsing goes through ``email.parser``) cost
    ~0.25 ms of CPU per request, three times this, and importing it (``http``, ``email.parser``,
    ``email.message``, ...) added ~20 ms to every signing command's start-up (issue 12). Only the narrow case it
    serves is handled: a POST of a small body to a fixed ``http://`` URL, no proxy, no credentials, no redirects (a
    3xx is an error, as with httpx's ``follow_redirects=False``); the response may have a ``Content-Length``, be
    chunked, or end with the connection. A connection the server closed while idle is retried once on a new one
    (an RFC 3161 request may be repeated: the nonce makes every answer distinct, and only the last is used).
    """

    def __init__(self, url: str, host: str, port: int, target: str, timeout: float) -> None:
        # Imported when a pool is made, not at the first request: a batch's worker processes are forked after
        # the pool exists and then share this import instead of each paying it.
        import socket  # noqa: F401

        self.url = url
        self.host, self.port, self.target, self.timeout = host, port, target, timeout
        host_header = f"[{host}]" if ":" in host else host
        if port != 80:
            host_header += f":{port}"
        # What http.client sent: the request line, Host, Accept-Encoding identity (no compressed answers), the body.
        self._head = (f"POST {target} HTTP/1.1\r\nHost: {host_header}\r\nAccept-Encoding: identity\r\n"
                      f"Content-Type: {QUERY_CONTENT_TYPE}\r\nContent-Length: ").encode("latin-1")
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()

    @classmethod
    def for_url(cls, url: str, timeout: float) -> _PlainHttpPool | None:
        """A pool for ``url`` when it is a case this class serves, else None (httpx then)."""
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.username is not None or parts.hostname is None:
            return None
        if any(os.environ.get(name) for name in _PROXY_VARIABLES):
            return None
        try:
            port = parts.port or 80
        except ValueError:
            return None
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if any(c in target for c in " \r\n") or not (target.isascii() and parts.hostname.isascii()):
            return None  # httpx quotes (and IDNA-encodes) what a request line or Host header cannot carry as is
        return cls(url, parts.hostname, port, target, timeout)

    def post(self, body: bytes) -> tuple[int, str, bytes]:
        """POST a timestamp query; the status, the server's reason phrase and the body (at most 1 MiB + 1 bytes
        read)."""
        request = self._head + b"%d\r\n\r\n" % len(body) + body
        for attempt in (1, 2):
            connection, reused = self._take()
            try:
                connection.send(request)
                status, reason, data, keep = connection.read_response()
            except TimeoutError:
                connection.close()
                raise FetchError(
                    f"The timestamp service '{self.url}' did not answer within {self.timeout:g} seconds."
                ) from None
            except (_ClosedBeforeAnswer, ConnectionResetError, BrokenPipeError) as exc:
                connection.close()
                if reused and attempt == 1:
                    continue  # the server closed the idle connection: once more on a new one
                raise FetchError(f"The timestamp service '{self.url}' could not be reached: {exc}.") from None
            except (OSError, _BadResponse) as exc:
                connection.close()
                raise FetchError(f"The timestamp service '{self.url}' could not be reached: {exc}.") from None
            if keep:
                with self._lock:
                    self._idle.append(connection)
            else:
                connection.close()
            return status, reason, data
        raise AssertionError("unreachable: the second attempt returns or raises")

    def _take(self) -> tuple[_Connection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return _Connection(self.host, self.port, self.timeout), False

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


class _BadResponse(Exception):
    """The server's answer is not HTTP/1.x as this client reads it (named in the FetchError)."""


class _ClosedBeforeAnswer(_BadResponse):
    """The connection ended before a status line: a server closing an idle keep-alive connection."""

    def __init__(self) -> None:
        super().__init__("the connection was closed without a response")


#: Limits as http.client's: a header line, and the number of header lines, of one response.
_MAX_LINE = 65536
_MAX_HEADERS = 100


class _Connection:
    """One TCP connection, opened by the first request (so that its errors are the request's), and its buffered
    reader."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        # The host as bytes (it is ASCII, ``for_url`` checked): ``getaddrinfo`` encodes a str host with the "idna"
        # codec, whose import (``encodings.idna``, ``stringprep``, ``unicodedata``) cost every signing process ~6 ms.
        self._address = (host.encode("ascii"), port)
        self._timeout = timeout
        self._sock: socket.socket | None = None
        self._file: BinaryIO | None = None

    def send(self, data: bytes) -> None:
        if self._sock is None:
            import socket

            # typeshed lists only str hosts; getaddrinfo takes bytes as well (and then skips the codec).
            self._sock = socket.create_connection(self._address, self._timeout)  # type: ignore[arg-type]
            # One write per request: no Nagle delay to wait for, and none for the server's small answers either.
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._file = self._sock.makefile("rb")
        self._sock.sendall(data)

    def _line(self) -> bytes:
        assert self._file is not None, "send() opened the connection"
        line = self._file.readline(_MAX_LINE + 1)
        if len(line) > _MAX_LINE:
            raise _BadResponse("a response line is longer than 65536 bytes")
        return line

    def read_response(self) -> tuple[int, str, bytes, bool]:
        """Status, reason, body (at most 1 MiB + 1 bytes) and whether the connection can carry another request."""
        while True:
            line = self._line()
            if not line:
                raise _ClosedBeforeAnswer
            version, _, rest = line.rstrip(b"\r\n").partition(b" ")
            code, _, reason = rest.partition(b" ")
            if version[:7] != b"HTTP/1." or len(code) != 3 or not code.isdigit():
                raise _BadResponse(f"not an HTTP/1.x status line: {line[:80]!r}")
            status = int(code)
            headers = self._headers()
            if status >= 200 or status == 101:
                break
            # 1xx interim answers (100 Continue, 103 Early Hints) precede the real one: skipped, as http.client does.
        if status == 101:
            raise _BadResponse("the server switched protocols")
        connection = headers.get(b"connection", b"").lower()
        keep = b"close" not in connection and (version != b"HTTP/1.0" or b"keep-alive" in connection)
        if status in (204, 304):
            return status, reason.decode("latin-1"), b"", keep
        assert self._file is not None
        if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
            body, complete = self._chunked()
        elif b"content-length" in headers:
            text = headers[b"content-length"].strip()
            if not text.isdigit():
                raise _BadResponse(f"invalid Content-Length {text[:40]!r}")
            length = int(text)
            body = self._file.read(min(length, _MAX_RESPONSE_BYTES + 1))
            if len(body) < min(length, _MAX_RESPONSE_BYTES + 1):
                raise _BadResponse(f"the response ended after {len(body)} of {length} bytes")
            complete = length <= _MAX_RESPONSE_BYTES
        else:  # the body ends with the connection
            body, complete = self._file.read(_MAX_RESPONSE_BYTES + 1), False
        return status, reason.decode("latin-1"), body, keep and complete

    def _headers(self) -> dict[bytes, bytes]:
        headers: dict[bytes, bytes] = {}
        for _ in range(_MAX_HEADERS + 1):
            line = self._line()
            if line in (b"\r\n", b"\n", b""):
                return headers
            name, colon, value = line.partition(b":")
            if not colon:
                raise _BadResponse(f"a malformed header line: {line[:80]!r}")
            key = name.strip().lower()
            value = value.strip()
            # Repeated fields combine (RFC 9110 §5.3); two different Content-Lengths are refused below by isdigit.
            headers[key] = headers[key] + b", " + value if key in headers else value
        raise _BadResponse(f"more than {_MAX_HEADERS} header lines")

    def _chunked(self) -> tuple[bytes, bool]:
        """A chunked body, up to 1 MiB + 1 bytes; True when it was read to its end (the connection is reusable)."""
        assert self._file is not None
        parts: list[bytes] = []
        size = 0
        while True:
            line = self._line()
            text = line.split(b";", 1)[0].strip()
            try:
                chunk = int(text, 16)
            except ValueError:
                raise _BadResponse(f"invalid chunk size {text[:40]!r}") from None
            if chunk < 0:
                raise _BadResponse(f"invalid chunk size {text[:40]!r}")
            if chunk == 0:
                self._headers()  # trailer fields, then the blank line
                return b"".join(parts), True
            if size + chunk > _MAX_RESPONSE_BYTES:
                parts.append(self._file.read(_MAX_RESPONSE_BYTES + 1 - size))
                return b"".join(parts), False
            data = self._file.read(chunk)
            if len(data) < chunk or self._file.read(2) != b"\r\n":
                raise _BadResponse("the chunked response ended early")
            parts.append(data)
            size += chunk

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._sock is not None:
            self._sock.close()


def _reason_phrase(status: int, given: str) -> str:
    """The standard phrase of ``status`` (as httpx reports it), else the server's."""
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return given


def _client_for(url: str) -> httpx.Client:
    """An HTTP client for ``url``. A plain ``http://`` service (most TSAs) needs no TLS, so its client skips loading
    the CA bundle (~40-100 ms per process, paid again by every signing worker) and gets a TLS context that trusts
    nothing: the one case that would still use TLS, an ``https://`` proxy in ``HTTP_PROXY``, fails closed with a
    certificate error instead of going unverified."""
    import ssl

    import httpx

    if urlsplit(url).scheme == "http":
        return httpx.Client(verify=ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    return httpx.Client()


class InProcessTimestamper(_TimestamperBase):
    """Timestamps through a :class:`TimestampAuthority` in this process (same DER bytes path as HTTP)."""

    def __init__(self, tsa: TimestampAuthority, *, clock: Callable[[], datetime] | None = None) -> None:
        super().__init__(clock)
        self.tsa = tsa

    @property
    def source(self) -> str:
        return "(in-process authority)"

    def _exchange(self, request_der: bytes) -> bytes:
        return self.tsa.respond(request_der)
