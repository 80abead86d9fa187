"""Certificate revocation: OCSP first, then CRLs, with timeouts and a cache (spec §5.3, §6.4).

Why hand-written: NuGet's verdicts need .NET's distinction between *revoked*, *unknown* (an answer that cannot be
trusted or understood) and *offline* (no answer could be fetched: "the revocation server could not be reached").
Libraries that validate whole paths fold those together or stop at the first error, so this module answers one
question per certificate, built on ``cryptography``'s OCSP/CRL parsers and an injected ``httpx.Client``.

Order of sources for one certificate (``RevocationChecker.check``):

1. the in-memory cache (per issuer + serial), if the cached answer is still fresh;
2. OCSP responses and CRLs handed in by the caller (``ocsp_responses=``, ``crls=``), and CRLs already fetched;
3. online mode only: OCSP at each AIA-OCSP URL (POST, SHA-1 CertID as .NET sends it), then the CRL at each
   http(s) CRL distribution point. Every request is bounded by ``timeout`` (connect, read, write and pool) and the
   whole check by ``total_timeout``; an unreachable URL is remembered so later certificates do not wait on it again.

Results: ``good`` / ``revoked`` come from an authenticated, parseable answer (OCSP signed by the issuer or by a
delegated responder holding the OCSPSigning EKU and issued by the issuer; CRL signed by the issuer). ``unknown`` means
answers were fetched but none could be used (malformed, unauthenticated, stale, responder says "unknown", or the
certificate names no revocation source); ``offline`` means nothing could be fetched (network error, HTTP error,
timeout) or, in offline mode, nothing was at hand. .NET maps these to RevocationStatusUnknown and
OfflineRevocation + RevocationStatusUnknown; ``nuseal.x509.chain`` does that mapping.

Time: the core never reads the clock. Pass ``clock=`` to enable freshness checks (a "good" answer whose
``nextUpdate`` is more than ``STALE_GRACE`` in the past, or whose ``thisUpdate`` is in the future, is not used) and
cache expiry; without a clock, answers are taken as fresh and cached for the checker's lifetime (one command run).
A stale answer that says *revoked* still counts: revocation is permanent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx
    from cryptography.x509 import ocsp

import hashlib
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives._serialization import Encoding, PublicFormat  # see _ENUMS_NOTE
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from nuseal.enums import RevocationMode
from nuseal.errors import TrustConfigError
from nuseal.record import Struct, field, replace
from nuseal.x509.facts import facts

# _ENUMS_NOTE: Encoding and PublicFormat come from the module that defines them, which cryptography.x509 loads
# anyway: the public ``serialization`` package also imports cryptography's SSH and cipher modules, ~25 ms of CPU
# at every start-up (issue 12). tests/unit/x509/test_import_cost.py checks that they are the public objects.

__all__ = [
    "COMPROMISE_REASONS", "RevocationCache", "RevocationChecker", "RevocationMode", "RevocationResult",
    "RevocationStatus",
]

RevocationStatus = Literal["good", "revoked", "unknown", "offline"]

#: RFC 5280 CRLReason names (as ``cryptography.x509.ReasonFlags`` values) that mean the key itself is compromised.
COMPROMISE_REASONS: frozenset[str] = frozenset({"keyCompromise", "cACompromise", "aACompromise"})

#: How far past ``nextUpdate`` a "good" answer is still accepted ("honour nextUpdate loosely").
STALE_GRACE = timedelta(days=1)
#: Tolerated clock skew for ``thisUpdate`` in the future.
CLOCK_SKEW = timedelta(minutes=5)
#: How long an unreachable URL is skipped when a clock is given (without one: for the cache's lifetime).
UNREACHABLE_TTL = timedelta(minutes=5)
MAX_RESPONSE_BYTES = 20 * 1024 * 1024
SUPPLIED = "supplied"
CACHE = "cache"


class RevocationResult(Struct, frozen=True):
    """The revocation status of one certificate and where it came from.

    ``source`` is the URL that answered, ``"cache"`` for a cached answer or ``"supplied"`` for data handed in by the
    caller. ``reason`` is the RFC 5280 CRLReason name (``keyCompromise``, ``superseded``, ...) when revoked.
    """

    status: RevocationStatus
    source: str
    revocation_time: datetime | None = None
    reason: str | None = None
    detail: str = ""


class _Cached(Struct):
    result: RevocationResult
    expires: datetime | None


class RevocationCache(Struct):
    """In-memory, thread-safe cache shared by checkers: answers per (issuer, serial), CRLs per URL, dead URLs.

    Share one instance between the checkers of a run so that verifying many packages fetches each CRL and asks
    each responder once.
    """

    _lock: threading.Lock = field(default_factory=threading.Lock)
    _results: dict[tuple[bytes, int], _Cached] = field(default_factory=dict)
    _crls: dict[str, x509.CertificateRevocationList] = field(default_factory=dict)
    _unreachable: dict[str, tuple[str, datetime | None]] = field(default_factory=dict)

    def result(self, key: tuple[bytes, int], now: datetime | None) -> RevocationResult | None:
        with self._lock:
            cached = self._results.get(key)
        if cached is None or (now is not None and cached.expires is not None and cached.expires + STALE_GRACE < now):
            return None
        return cached.result

    def store_result(self, key: tuple[bytes, int], result: RevocationResult, expires: datetime | None) -> None:
        with self._lock:
            self._results[key] = _Cached(result, expires)

    def crl(self, url: str, now: datetime | None) -> x509.CertificateRevocationList | None:
        with self._lock:
            crl = self._crls.get(url)
        if crl is None or not _crl_fresh(crl, now):
            return None
        return crl

    def store_crl(self, url: str, crl: x509.CertificateRevocationList) -> None:
        with self._lock:
            self._crls[url] = crl

    def unreachable(self, url: str, now: datetime | None) -> str | None:
        with self._lock:
            entry = self._unreachable.get(url)
        if entry is None:
            return None
        reason, until = entry
        if now is not None and until is not None and now > until:
            return None
        return reason

    def mark_unreachable(self, url: str, reason: str, now: datetime | None) -> None:
        with self._lock:
            self._unreachable[url] = (reason, None if now is None else now + UNREACHABLE_TTL)


class _Unreachable(Exception):
    """A request produced no usable bytes (network error, HTTP error status, timeout, oversized answer)."""


class RevocationChecker:
    """Answers "is this certificate revoked?" from supplied data, the cache and (online mode) OCSP/CRL servers.

    ``client`` is used for every request; when ``None`` (online mode only) the checker creates its own on first use
    and closes it in :meth:`close`. ``timeout`` bounds each request, ``total_timeout`` (default ``2 * timeout``) one
    :meth:`check`. ``crls`` / ``ocsp_responses`` are DER (or PEM for CRLs) blobs consulted first in both modes.
    """

    def __init__(
        self,
        mode: RevocationMode,
        *,
        client: httpx.Client | None = None,
        timeout: float = 10.0,
        total_timeout: float | None = None,
        cache: RevocationCache | None = None,
        crls: Sequence[bytes] = (),
        ocsp_responses: Sequence[bytes] = (),
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"revocation timeout must be positive, got {timeout}")
        self.mode = RevocationMode(mode)
        self.timeout = timeout
        self.total_timeout = 2 * timeout if total_timeout is None else total_timeout
        self.cache = cache if cache is not None else RevocationCache()
        self._client = client
        self._owns_client = False
        self._clock = clock
        self._crls = tuple(_load_crl(blob, f"supplied CRL #{i}") for i, blob in enumerate(crls, start=1))
        self._ocsp = tuple(_load_ocsp(blob, f"supplied OCSP response #{i}") for i, blob in enumerate(ocsp_responses, 1))

    # --- lifecycle ---------------------------------------------------------------------------------------------

    def close(self) -> None:
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None
            self._owns_client = False

    def __enter__(self) -> RevocationChecker:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- the check ---------------------------------------------------------------------------------------------

    def check(self, certificate: x509.Certificate, issuer: x509.Certificate, at: datetime) -> RevocationResult:
        """Revocation status of ``certificate`` (issued by ``issuer``).

        ``at`` is the moment the chain is evaluated at (a timestamp's time, or now). Revocation sources describe
        the present, so ``at`` is not used to pick answers; ``nuseal.x509.chain`` compares it with the revocation
        time.
        """
        now = self._clock() if self._clock is not None else None
        key = _cache_key(certificate, issuer)
        cached = self.cache.result(key, now)
        if cached is not None:
            return replace(cached, source=CACHE, detail=f"cached answer from {cached.source}: {cached.detail}")

        notes: list[str] = []
        for response in self._ocsp:
            answer = _evaluate_ocsp(response, certificate, issuer, SUPPLIED, now)
            if answer is not None and self._conclusive(*answer, key, notes):
                return answer[0]
        for crl in self._crls:
            if _crl_issued_by(crl, issuer):
                result, expires = _evaluate_crl(crl, certificate, SUPPLIED, now)
                if self._conclusive(result, expires, key, notes):
                    return result
        crl_urls = _crl_urls(certificate)
        for url in crl_urls:
            cached_crl = self.cache.crl(url, now)
            if cached_crl is not None and _crl_issued_by(cached_crl, issuer):
                result, expires = _evaluate_crl(cached_crl, certificate, url, now)
                if self._conclusive(result, expires, key, notes):
                    return result

        if self.mode is RevocationMode.OFFLINE:
            detail = "offline revocation mode: no revocation data was supplied or cached for this certificate"
            return RevocationResult("offline", "offline", detail=_join(detail, notes))

        ocsp_urls = _ocsp_urls(certificate)
        if not ocsp_urls and not crl_urls:
            return RevocationResult(
                "unknown", "certificate",
                detail=_join("the certificate has no OCSP URL and no http(s) CRL distribution point", notes),
            )  # fmt: skip
        from cryptography.x509 import ocsp  # only when a responder is asked (see _load_ocsp)

        deadline = time.monotonic() + self.total_timeout
        reached = False
        for url in ocsp_urls:
            try:
                body = self._fetch_ocsp(url, certificate, issuer, deadline, now)
            except _Unreachable as exc:
                notes.append(f"OCSP {url}: {exc}")
                continue
            reached = True
            try:
                response = ocsp.load_der_ocsp_response(body)
            except ValueError as exc:
                notes.append(f"OCSP {url}: not an OCSP response ({exc})")
                continue
            answer = _evaluate_ocsp(response, certificate, issuer, url, now)
            if answer is None:
                notes.append(f"OCSP {url}: the response does not cover this certificate")
            elif self._conclusive(*answer, key, notes):
                return answer[0]
        for url in crl_urls:
            try:
                body = self._fetch(url, "GET", None, deadline, now)
            except _Unreachable as exc:
                notes.append(f"CRL {url}: {exc}")
                continue
            reached = True
            try:
                crl = _load_crl(body, url)
            except TrustConfigError as exc:
                notes.append(f"CRL {url}: {exc.message}")
                continue
            if not _crl_issued_by(crl, issuer):
                notes.append(f"CRL {url}: not issued (or not validly signed) by the certificate's issuer")
                continue
            self.cache.store_crl(url, crl)
            result, expires = _evaluate_crl(crl, certificate, url, now)
            if self._conclusive(result, expires, key, notes):
                return result
        if reached:
            return RevocationResult("unknown", "network", detail=_join("no usable revocation answer", notes))
        return RevocationResult(
            "offline", "network", detail=_join("the revocation server could not be reached", notes)
        )

    def _conclusive(
        self, result: RevocationResult, expires: datetime | None, key: tuple[bytes, int], notes: list[str]
    ) -> bool:
        """Cache and accept a good/revoked answer; remember why anything else was not used."""
        if result.status in ("good", "revoked"):
            self.cache.store_result(key, result, expires)
            return True
        notes.append(f"{result.source}: {result.detail}")
        return False

    # --- network -----------------------------------------------------------------------------------------------

    def _fetch_ocsp(
        self, url: str, certificate: x509.Certificate, issuer: x509.Certificate, deadline: float, now: datetime | None
    ) -> bytes:
        from cryptography.x509 import ocsp  # see _load_ocsp

        request = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, hashes.SHA1()).build()
        return self._fetch(url, "POST", request.public_bytes(Encoding.DER), deadline, now)

    def _fetch(self, url: str, method: str, body: bytes | None, deadline: float, now: datetime | None) -> bytes:
        import httpx  # lazily: importing httpx costs ~150 ms of CLI start-up
        known = self.cache.unreachable(url, now)
        if known is not None:
            raise _Unreachable(f"skipped, unreachable earlier ({known})")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Unreachable("not tried: the revocation time budget is spent")
        budget = min(self.timeout, remaining)
        headers = {"Content-Type": "application/ocsp-request"} if body is not None else {}
        try:
            with self._http().stream(
                method, url, content=body, headers=headers, timeout=httpx.Timeout(budget), follow_redirects=True
            ) as response:
                if response.status_code != 200:
                    raise _Unreachable(f"HTTP {response.status_code}")
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > MAX_RESPONSE_BYTES:
                        raise _Unreachable(f"answer larger than {MAX_RESPONSE_BYTES} bytes")
                    if time.monotonic() > deadline:
                        raise httpx.ReadTimeout("revocation time budget spent while reading")
                    chunks.append(chunk)
                return b"".join(chunks)
        except _Unreachable as exc:
            self.cache.mark_unreachable(url, str(exc), now)
            raise
        except httpx.HTTPError as exc:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            self.cache.mark_unreachable(url, reason, now)
            raise _Unreachable(reason) from exc

    def _http(self) -> httpx.Client:
        import httpx  # lazily: importing httpx costs ~150 ms of CLI start-up
        if self._client is None:
            self._client = httpx.Client(timeout=self.timeout, follow_redirects=True)
            self._owns_client = True
        return self._client


# --- helpers: certificates ---------------------------------------------------------------------------------------


def _cache_key(certificate: x509.Certificate, issuer: x509.Certificate) -> tuple[bytes, int]:
    return _issuer_part(issuer), facts(certificate).serial_number


def _issuer_part(issuer: x509.Certificate) -> bytes:
    """The issuer's half of a cache key (its encoded subject and key hash), made once per certificate and kept with
    its facts: a batch asks about the same intermediates and TSA issuers in package after package. A certificate
    whose name or key cannot be read raises every time (nothing is kept), as before."""
    memo = facts(issuer).memo
    part = memo.get("revocation_issuer_key")
    if not isinstance(part, bytes):
        part = issuer.subject.public_bytes() + _key_hash(issuer, "sha1")
        memo["revocation_issuer_key"] = part
    return part


def _key_hash(certificate: x509.Certificate, algorithm: str) -> bytes:
    """Hash of the subjectPublicKey BIT STRING contents, as an OCSP CertID / ResponderID uses it."""
    if algorithm == "sha1":
        return x509.SubjectKeyIdentifier.from_public_key(certificate.public_key()).digest
    spki = certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.new(algorithm, _bit_string_contents(spki)).digest()


def _bit_string_contents(spki: bytes) -> bytes:
    """The subjectPublicKey bits of a DER SubjectPublicKeyInfo (skip the SEQUENCE, the AlgorithmIdentifier, the
    BIT STRING header and its unused-bits octet)."""

    def header(data: bytes, at: int) -> tuple[int, int]:  # -> (content start, content length)
        length = data[at + 1]
        if length < 0x80:
            return at + 2, length
        count = length & 0x7F
        return at + 2 + count, int.from_bytes(data[at + 2 : at + 2 + count], "big")

    outer, _ = header(spki, 0)
    algorithm_start, algorithm_length = header(spki, outer)
    bits_start, bits_length = header(spki, algorithm_start + algorithm_length)
    return spki[bits_start + 1 : bits_start + bits_length]


def _extension(certificate: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.ExtensionType | None:
    try:
        return certificate.extensions.get_extension_for_class(kind).value
    except (x509.ExtensionNotFound, ValueError):  # ValueError: malformed extensions, treated as absent here
        return None


def _ocsp_urls(certificate: x509.Certificate) -> list[str]:
    return list(_memo_urls(certificate, "ocsp_urls", _read_ocsp_urls))


def _crl_urls(certificate: x509.Certificate) -> list[str]:
    return list(_memo_urls(certificate, "crl_urls", _read_crl_urls))


def _memo_urls(certificate: x509.Certificate, name: str, read: Callable[[x509.Certificate], list[str]]
               ) -> tuple[str, ...]:
    """A certificate's OCSP or CRL URLs, read from its extensions once and kept with its facts (offline, every chain
    element of every package asks for them). An error while reading is raised again on the next call."""
    memo = facts(certificate).memo
    urls = memo.get(name)
    if not isinstance(urls, tuple):
        urls = tuple(read(certificate))
        memo[name] = urls
    return urls


def _read_ocsp_urls(certificate: x509.Certificate) -> list[str]:
    aia = _extension(certificate, x509.AuthorityInformationAccess)
    if not isinstance(aia, x509.AuthorityInformationAccess):
        return []
    return [
        d.access_location.value for d in aia
        if d.access_method == AuthorityInformationAccessOID.OCSP
        and isinstance(d.access_location, x509.UniformResourceIdentifier) and _is_http(d.access_location.value)
    ]  # fmt: skip


def _read_crl_urls(certificate: x509.Certificate) -> list[str]:
    cdp = _extension(certificate, x509.CRLDistributionPoints)
    if not isinstance(cdp, x509.CRLDistributionPoints):
        return []
    urls: list[str] = []
    for point in cdp:
        if point.crl_issuer or not point.full_name:  # indirect CRLs and relative names are not supported
            continue
        urls.extend(
            n.value for n in point.full_name if isinstance(n, x509.UniformResourceIdentifier) and _is_http(n.value)
        )
    return urls


def _is_http(url: str) -> bool:
    return url.lower().startswith(("http://", "https://"))


def _verify(public_key: object, signature: bytes, data: bytes, algorithm: hashes.HashAlgorithm | None) -> bool:
    try:
        if isinstance(public_key, rsa.RSAPublicKey) and algorithm is not None:
            public_key.verify(signature, data, padding.PKCS1v15(), algorithm)
        elif isinstance(public_key, ec.EllipticCurvePublicKey) and algorithm is not None:
            public_key.verify(signature, data, ec.ECDSA(algorithm))
        elif isinstance(public_key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            public_key.verify(signature, data)
        else:
            return False
    except (InvalidSignature, UnsupportedAlgorithm, ValueError):
        return False
    return True


def _issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _fresh(this_update: datetime | None, next_update: datetime | None, now: datetime | None) -> str | None:
    """Why an answer is too old or too new to say "good", or None when it is usable."""
    if now is None:
        return None
    if this_update is not None and this_update > now + CLOCK_SKEW:
        return f"thisUpdate {this_update.isoformat()} is in the future"
    if next_update is not None and next_update + STALE_GRACE < now:
        return f"stale: nextUpdate {next_update.isoformat()} has passed"
    return None


def _join(summary: str, notes: Iterable[str]) -> str:
    notes = list(notes)
    return summary + ("; " + "; ".join(notes) if notes else "")


# --- OCSP --------------------------------------------------------------------------------------------------------


def _load_ocsp(blob: bytes, source: str) -> ocsp.OCSPResponse:
    # cryptography's OCSP module is imported where OCSP is used: an offline verification or one whose certificates
    # are answered by CRLs never needs it (~1-3 ms of start-up, issue 12).
    from cryptography.x509 import ocsp

    try:
        return ocsp.load_der_ocsp_response(blob)
    except ValueError as exc:
        raise TrustConfigError(f"{source} is not a DER OCSP response: {exc}") from exc


def _ocsp_responder(response: ocsp.OCSPResponse, issuer: x509.Certificate) -> x509.Certificate | str:
    """The certificate whose key signed ``response`` (the issuer or an authorized delegate), or why there is none."""

    def is_responder(candidate: x509.Certificate) -> bool:
        if response.responder_key_hash is not None:
            return _key_hash(candidate, "sha1") == response.responder_key_hash
        return candidate.subject == response.responder_name

    if is_responder(issuer):
        return issuer
    for candidate in response.certificates:
        if not is_responder(candidate):
            continue
        if not _issued_by(candidate, issuer):
            return "the delegated responder certificate is not issued by the certificate's issuer"
        usages = _extension(candidate, x509.ExtendedKeyUsage)
        if not isinstance(usages, x509.ExtendedKeyUsage) or ExtendedKeyUsageOID.OCSP_SIGNING not in usages:
            return "the delegated responder certificate lacks the OCSPSigning EKU"
        return candidate
    return "the response is signed by neither the issuer nor a responder certificate it includes"


def _evaluate_ocsp(
    response: ocsp.OCSPResponse, certificate: x509.Certificate, issuer: x509.Certificate, source: str,
    now: datetime | None,
) -> tuple[RevocationResult, datetime | None] | None:
    """The answer ``response`` gives for ``certificate`` and until when to cache it; None when it is about
    other certificates."""
    from cryptography.x509 import ocsp  # see _load_ocsp

    if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        return _unknown(source, f"OCSP responder status {response.response_status.name}")
    single = _matching_single_response(response, certificate, issuer)
    if single is None:
        return None
    responder = _ocsp_responder(response, issuer)
    if isinstance(responder, str):
        return _unknown(source, responder)
    try:
        algorithm = response.signature_hash_algorithm
    except UnsupportedAlgorithm:
        algorithm = None
    if not _verify(responder.public_key(), response.signature, response.tbs_response_bytes, algorithm):
        return _unknown(source, "the OCSP response signature does not verify")
    if responder is not issuer and now is not None and not (
        responder.not_valid_before_utc <= now <= responder.not_valid_after_utc
    ):
        return _unknown(source, "the delegated OCSP responder certificate is not valid now")
    this_update, next_update = single.this_update_utc, single.next_update_utc
    if next_update is not None and next_update < this_update:
        return _unknown(source, "OCSP nextUpdate precedes thisUpdate")
    status = single.certificate_status
    if status is ocsp.OCSPCertStatus.REVOKED:
        reason = single.revocation_reason.value if single.revocation_reason is not None else None
        revoked = RevocationResult("revoked", source, single.revocation_time_utc, reason, detail="OCSP: revoked")
        return revoked, next_update
    if status is ocsp.OCSPCertStatus.UNKNOWN:
        return _unknown(source, "the OCSP responder does not know this certificate")
    stale = _fresh(this_update, next_update, now)
    if stale is not None:
        return _unknown(source, f"OCSP answer {stale}")
    return RevocationResult("good", source, detail=f"OCSP: good (thisUpdate {this_update.isoformat()})"), next_update


def _unknown(source: str, detail: str) -> tuple[RevocationResult, None]:
    return RevocationResult("unknown", source, detail=detail), None


def _matching_single_response(
    response: ocsp.OCSPResponse, certificate: x509.Certificate, issuer: x509.Certificate
) -> ocsp.OCSPSingleResponse | None:
    name_der = issuer.subject.public_bytes()
    for single in response.responses:
        if single.serial_number != certificate.serial_number:
            continue
        algorithm = single.hash_algorithm.name
        if (
            single.issuer_name_hash == hashlib.new(algorithm, name_der).digest()
            and single.issuer_key_hash == _key_hash(issuer, algorithm)
        ):
            return single
    return None


# --- CRL ---------------------------------------------------------------------------------------------------------


def _load_crl(blob: bytes, source: str) -> x509.CertificateRevocationList:
    try:
        if blob.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_crl(blob)
        return x509.load_der_x509_crl(blob)
    except ValueError as exc:
        raise TrustConfigError(f"{source} is not a DER or PEM CRL: {exc}") from exc


def _crl_issued_by(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    if crl.issuer != issuer.subject:
        return False
    try:
        return crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
    except (TypeError, UnsupportedAlgorithm, ValueError):
        return False


def _crl_fresh(crl: x509.CertificateRevocationList, now: datetime | None) -> bool:
    return _fresh(crl.last_update_utc, crl.next_update_utc, now) is None


def _evaluate_crl(
    crl: x509.CertificateRevocationList, certificate: x509.Certificate, source: str, now: datetime | None
) -> tuple[RevocationResult, datetime | None]:
    """The answer of an authenticated CRL of the certificate's issuer, and until when to cache it."""
    entry = crl.get_revoked_certificate_by_serial_number(certificate.serial_number)
    reason: str | None = None
    if entry is not None:
        crl_reason = _entry_reason(entry)
        reason = crl_reason.value if crl_reason is not None else None
        if crl_reason is not x509.ReasonFlags.remove_from_crl:
            detail = f"listed in the CRL (thisUpdate {crl.last_update_utc.isoformat()})"
            return RevocationResult("revoked", source, entry.revocation_date_utc, reason, detail), crl.next_update_utc
    stale = _fresh(crl.last_update_utc, crl.next_update_utc, now)
    if stale is not None:
        return RevocationResult("unknown", source, detail=f"CRL {stale}"), None
    detail = f"not listed in the CRL (thisUpdate {crl.last_update_utc.isoformat()})"
    return RevocationResult("good", source, detail=detail), crl.next_update_utc


def _entry_reason(entry: x509.RevokedCertificate) -> x509.ReasonFlags | None:
    try:
        return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except (x509.ExtensionNotFound, ValueError):
        return None

