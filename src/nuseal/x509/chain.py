"""Certificate chain building with .NET ``X509Chain``-like status flags (spec §4.8, §5.3, §6.4).

Why hand-written: NuGet's verdicts depend on *which* ``X509ChainStatusFlags`` .NET reports (UntrustedRoot vs
PartialChain vs NotValidForUsage vs Revoked vs RevocationStatusUnknown/OfflineRevocation), with time validity
ignored (``IgnoreNotTimeValid``) and revocation checked for every element but the root (``ExcludeRoot``).
pyhanko-certvalidator enforces time validity and stops at the first error; ``cryptography``'s verifier has no
revocation and applies strict Web PKI rules to CAs that reject old real roots still in the .NET bundles. So paths
are built here on ``cryptography`` primitives (``verify_directly_issued_by`` for RSA / ECDSA signatures, SHA-1
included) and every problem is recorded as a flag on the element it concerns, never raised.

Path building: depth-first from the leaf over candidate issuers drawn from the signature's certificates and the
trust anchors (subject = issuer name, AKI = SKI when both exist, signature verifies), with backtracking, so
duplicate and cross-signed issuers work. Candidates are tried anchors first, then time-valid at
``verification_time``, then the rest; the first path ending at a trusted certificate wins, otherwise the best
untrusted path (ending at a self-signed root beats a partial one). A certificate is trusted when it is an anchor
or has an anchor's subject and public key (a re-issued root). Root self-signatures are not checked, as OpenSSL
(.NET on Linux) does not: trust is membership in the anchor set.

Decisions where .NET leaves a choice:

* A path that stops at a certificate with no issuer available reports ``PARTIAL_CHAIN`` only (not also
  ``UNTRUSTED_ROOT``), as .NET on Linux maps OpenSSL's "unable to get issuer certificate" (NuGet then reports a
  chain building issue, NU3012/NU3028). ``ChainResult.trusted`` is False in that case too.
* ``NOT_TIME_NESTED`` and ``HAS_NOT_SUPPORTED_CRITICAL_EXTENSION`` exist for completeness but are never set:
  current Windows no longer reports the first and .NET on Linux does not report the second.
* Revocation (spec §5.4): an element is ``REVOKED`` iff its revocation reason is a compromise reason
  (``keyCompromise``, ``cACompromise``, ``aACompromise``) or the revocation time is at or before
  ``verification_time``. Otherwise it gets no flag and ``ChainElement.revocation`` records the later revocation:
  signatures timestamped before a non-compromise revocation stay valid, as Authenticode and nuget.org's server
  treat them.

Cache: a feed server's re-signing verifies the same repository and TSA certificates in package after package, so
the outcome of path building and of the per-element checks (everything but revocation) is remembered per process,
keyed by the exact inputs: the leaf's and every supplied certificate's SHA-256 in order, the anchor set (by
identity), the usage. The only time-dependent inputs, "is this certificate time-valid at ``verification_time``", are
recorded for every certificate the build looked at, and an entry serves another time only when each of those answers
is the same then; otherwise the chain is built again. Revocation is asked again on every call (answers change, and a
revoked certificate must never come from a cache). So a hit returns exactly what a build would.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime

from cryptography import x509

from nuseal import oids
from nuseal.record import Struct
from nuseal.x509 import certs
from nuseal.x509.facts import facts
from nuseal.x509.revocation import COMPROMISE_REASONS, RevocationChecker, RevocationResult
from nuseal.x509.roots import RootSet

__all__ = ["STATUS_INFORMATION", "ChainElement", "ChainResult", "ChainStatus", "build_chain", "chain_cache",
           "status_of"]

#: Longest chain we try to build (leaf included); real NuGet chains have 3-4 elements.
MAX_DEPTH = 10
#: Bound on issuer candidates tried in one build, so that hostile certificate bags cannot make it exponential.
MAX_ATTEMPTS = 200


class ChainStatus(enum.Flag):
    """.NET ``X509ChainStatusFlags`` (same bit values), the subset a chain builder can report."""

    NO_ERROR = 0
    NOT_TIME_VALID = 0x1
    NOT_TIME_NESTED = 0x2
    REVOKED = 0x4
    NOT_SIGNATURE_VALID = 0x8
    NOT_VALID_FOR_USAGE = 0x10
    UNTRUSTED_ROOT = 0x20
    REVOCATION_STATUS_UNKNOWN = 0x40
    CYCLIC = 0x80
    INVALID_EXTENSION = 0x100
    INVALID_BASIC_CONSTRAINTS = 0x400
    PARTIAL_CHAIN = 0x10000
    OFFLINE_REVOCATION = 0x1000000
    EXPLICIT_DISTRUST = 0x4000000
    HAS_NOT_SUPPORTED_CRITICAL_EXTENSION = 0x8000000

    @property
    def dotnet_name(self) -> str:
        """The .NET enum member name (``UntrustedRoot``) of a single flag."""
        return "".join(part.capitalize() for part in (self.name or "").split("_"))

    def flags(self) -> list[ChainStatus]:
        """The single flags set in this value, lowest bit first (the stable order of messages)."""
        return sorted((flag for flag in ChainStatus if flag.value and flag in self), key=lambda f: f.value)


#: ``X509ChainStatus.StatusInformation`` texts (Windows wording, which NuGet's documentation and messages quote).
STATUS_INFORMATION: dict[ChainStatus, str] = {
    ChainStatus.NOT_TIME_VALID: (
        "A required certificate is not within its validity period when verifying against the current system "
        "clock or the timestamp in the signed file."
    ),
    ChainStatus.NOT_TIME_NESTED: "The validity periods of the certification chain do not nest correctly.",
    ChainStatus.REVOKED: "The certificate is revoked.",
    ChainStatus.NOT_SIGNATURE_VALID: "The signature of the certificate cannot be verified.",
    ChainStatus.NOT_VALID_FOR_USAGE: "The certificate is not valid for the requested usage.",
    ChainStatus.UNTRUSTED_ROOT: (
        "A certificate chain processed, but terminated in a root certificate which is not trusted by the trust "
        "provider."
    ),
    ChainStatus.REVOCATION_STATUS_UNKNOWN: (
        "The revocation function was unable to check revocation for the certificate."
    ),
    ChainStatus.CYCLIC: "The certificate chain contains a cycle.",
    ChainStatus.INVALID_EXTENSION: "The certificate has an invalid extension.",
    ChainStatus.INVALID_BASIC_CONSTRAINTS: "A certificate's basic constraint extension has not been observed.",
    ChainStatus.PARTIAL_CHAIN: "A certificate chain could not be built to a trusted root authority.",
    ChainStatus.OFFLINE_REVOCATION: (
        "The revocation function was unable to check revocation because the revocation server could not be "
        "reached. For more information, visit https://aka.ms/certificateRevocationMode."
    ),
    ChainStatus.EXPLICIT_DISTRUST: "The certificate is explicitly distrusted.",
    ChainStatus.HAS_NOT_SUPPORTED_CRITICAL_EXTENSION: "The certificate has an unsupported critical extension.",
}


class ChainElement(Struct, frozen=True):
    """One certificate of a built chain, its own status flags and (if checked) its revocation answer."""

    certificate: x509.Certificate
    status: ChainStatus
    revocation: RevocationResult | None


class ChainResult(Struct, frozen=True):
    """A built chain, leaf first and root (or the last certificate found) last."""

    elements: tuple[ChainElement, ...]
    status: ChainStatus

    @property
    def root(self) -> x509.Certificate:
        return self.elements[-1].certificate

    @property
    def certificates(self) -> tuple[x509.Certificate, ...]:
        return tuple(element.certificate for element in self.elements)

    @property
    def trusted(self) -> bool:
        """The chain ends at a trust anchor."""
        return not self.status & (ChainStatus.UNTRUSTED_ROOT | ChainStatus.PARTIAL_CHAIN)

    def status_messages(self) -> list[str]:
        """``"{DotNetName}: {information}"`` per flag set, lowest bit first (NU3012 / NU3028 texts)."""
        return list(_status_messages(self.status))


_messages_by_status: dict[int, tuple[str, ...]] = {}


def _status_messages(status: ChainStatus) -> tuple[str, ...]:
    """The messages of a status value, made once per value (``Flag`` arithmetic is slow; there are few values)."""
    found = _messages_by_status.get(status.value)
    if found is None:
        found = tuple(f"{flag.dotnet_name}: {STATUS_INFORMATION[flag]}" for flag in status.flags())
        if len(_messages_by_status) < 1024:
            _messages_by_status[status.value] = found
    return found


def build_chain(
    leaf: x509.Certificate,
    *,
    extra_certificates: Sequence[x509.Certificate],
    trust_anchors: Sequence[x509.Certificate],
    usage_eku: str,
    verification_time: datetime,
    revocation: RevocationChecker | None,
) -> ChainResult:
    """Build and evaluate the chain of ``leaf`` (see the module docstring for the rules); never raises for bad input.

    ``usage_eku`` is the dotted application policy (``oids.CODE_SIGNING_EKU`` / ``oids.TIME_STAMPING_EKU``).
    ``verification_time`` decides NOT_TIME_VALID (which NuGet ignores) and whether a revocation counts.
    """
    with certs.quiet():
        anchors = _anchor_set(trust_anchors)
        path, statuses = chain_cache.path(leaf, extra_certificates, anchors, usage_eku, verification_time)
    elements: list[ChainElement] = []
    total = 0  # status values are combined as ints: ``Flag`` arithmetic costs microseconds per operation
    for index, certificate in enumerate(path):
        status = statuses[index]
        result: RevocationResult | None = None
        if revocation is not None and index + 1 < len(path):  # ExcludeRoot: the last element is never checked
            result = _revocation(revocation, certificate, path[index + 1], verification_time)
            found = _revocation_status(result, verification_time).value
            if found & ~status.value:
                status = status_of(status.value | found)
        elements.append(ChainElement(certificate, status, result))
        total |= status.value
    return ChainResult(tuple(elements), status_of(total))


_statuses_by_value: dict[int, ChainStatus] = {}


def status_of(value: int) -> ChainStatus:
    """``ChainStatus(value)``, remembered (there are few combinations)."""
    status = _statuses_by_value.get(value)
    if status is None:
        status = ChainStatus(value)
        if len(_statuses_by_value) < 1024:
            _statuses_by_value[value] = status
    return status


# --- revocation mapping --------------------------------------------------------------------------------------------


def _revocation(checker: RevocationChecker, certificate: x509.Certificate, issuer: x509.Certificate,
                at: datetime) -> RevocationResult:
    """The checker's answer; "unknown" when a damaged certificate on the path cannot even be asked about."""
    try:
        with certs.quiet():
            return checker.check(certificate, issuer, at)
    except certs.CERTIFICATE_ERRORS as exc:
        return RevocationResult("unknown", "certificate", detail=f"the certificate cannot be read ({exc})")


_OFFLINE = ChainStatus.OFFLINE_REVOCATION | ChainStatus.REVOCATION_STATUS_UNKNOWN


def _revocation_status(result: RevocationResult, verification_time: datetime) -> ChainStatus:
    if result.status == "revoked":
        if (
            result.reason in COMPROMISE_REASONS
            or result.revocation_time is None
            or result.revocation_time <= verification_time
        ):
            return ChainStatus.REVOKED
        return ChainStatus.NO_ERROR  # revoked later, for a non-compromise reason: see the module docstring
    if result.status == "offline":
        return _OFFLINE
    if result.status == "unknown":
        return ChainStatus.REVOCATION_STATUS_UNKNOWN
    return ChainStatus.NO_ERROR


# --- certificate facts (read once per certificate: nuseal.x509.facts) ----------------------------------------------


def _time_valid(certificate: x509.Certificate, at: datetime) -> bool:
    entry = facts(certificate)
    return entry.not_before <= at <= entry.not_after


def _signed_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    return facts(certificate).issued_by(facts(issuer))


# --- anchors and the candidate pool ---------------------------------------------------------------------------------


_anchor_cache: dict[int, tuple[Sequence[x509.Certificate], RootSet]] = {}
_anchor_lock = threading.Lock()


def _anchor_set(anchors: Sequence[x509.Certificate]) -> RootSet:
    """Anchors as a ``RootSet``; other tuples (a user's roots) are indexed once and reused by identity."""
    if isinstance(anchors, RootSet):
        return anchors
    with _anchor_lock:
        cached = _anchor_cache.get(id(anchors))
        if cached is not None and cached[0] is anchors:
            return cached[1]
    index = RootSet.of(anchors)
    if isinstance(anchors, tuple):  # immutable: safe to reuse for as long as the tuple lives
        with _anchor_lock:
            if len(_anchor_cache) >= 16:
                _anchor_cache.clear()
            _anchor_cache[id(anchors)] = (anchors, index)
    return index


class _CertificatePool:
    """Distinct candidate issuers indexed by subject key, on top of the anchors."""

    def __init__(self, certificates: Sequence[x509.Certificate], base: RootSet) -> None:
        self._base = base
        seen: set[bytes] = set()
        self._by_subject: dict[bytes, list[x509.Certificate]] = {}
        for certificate in certificates:
            entry = facts(certificate)
            if entry.sha256 in seen or base.contains(certificate):
                continue
            seen.add(entry.sha256)
            self._by_subject.setdefault(entry.subject_key, []).append(certificate)

    def named(self, key: bytes) -> list[x509.Certificate]:
        """Certificates whose subject has the comparison key ``key`` (``Facts.subject_key``)."""
        return self._by_subject.get(key, []) + self._base.named(key)


# --- the chain cache (see the module docstring) ----------------------------------------------------------------------

#: Chains remembered per process; a feed meets a handful (its repository certificates, its TSA, its authors).
MAX_CACHED_CHAINS = 256

_Key = tuple[bytes, tuple[bytes, ...], int, str]


class _Cached:
    __slots__ = ("anchors", "asked", "path", "statuses")

    def __init__(self, anchors: RootSet, path: tuple[x509.Certificate, ...], statuses: tuple[ChainStatus, ...],
                 asked: tuple[tuple[x509.Certificate, bool], ...]) -> None:
        self.anchors = anchors  # held, so that the id in the key is never reused by another anchor set meanwhile
        self.path = path
        self.statuses = statuses
        self.asked = asked

    def holds_at(self, at: datetime) -> bool:
        """Every time-validity answer the build depended on is the same at ``at``."""
        return all(_time_valid(certificate, at) is was for certificate, was in self.asked)


class _ChainCache:
    """Path building and per-element statuses, remembered by exact inputs (bounded, thread-safe; see the module
    docstring). ``enabled`` is for tests that compare verdicts with and without it."""

    def __init__(self, size: int = MAX_CACHED_CHAINS) -> None:
        self.size = size
        self.enabled = True
        self.hits = 0
        self.misses = 0
        self._entries: dict[_Key, _Cached] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.hits = self.misses = 0

    def path(self, leaf: x509.Certificate, extra: Sequence[x509.Certificate], anchors: RootSet, usage_eku: str,
             at: datetime) -> tuple[tuple[x509.Certificate, ...], tuple[ChainStatus, ...]]:
        """The path from ``leaf`` and each element's status without revocation, built or remembered."""
        key: _Key | None = None
        if self.enabled:
            key = (facts(leaf).sha256, tuple(facts(c).sha256 for c in extra), id(anchors), usage_eku)
            with self._lock:
                cached = self._entries.get(key)
            if cached is not None and cached.anchors is anchors and cached.holds_at(at):
                self.hits += 1
                return cached.path, cached.statuses
        valid = _Validity(at)
        found, ending = _Builder(_CertificatePool(extra, base=anchors), anchors, valid).build(leaf)
        path, statuses = tuple(found), tuple(_element_statuses(found, ending, usage_eku, valid))
        if key is not None:
            entry = _Cached(anchors, path, statuses, tuple(valid.asked.values()))
            with self._lock:
                self.misses += 1
                if key not in self._entries and len(self._entries) >= self.size:
                    del self._entries[next(iter(self._entries))]  # the oldest
                self._entries[key] = entry
        return path, statuses


#: The process's chain cache (``chain_cache.enabled = False`` builds every chain).
chain_cache = _ChainCache()


# --- path building --------------------------------------------------------------------------------------------------


class _Ending(enum.Enum):
    TRUSTED = 3
    SELF_SIGNED = 2  # an untrusted root
    PARTIAL = 1  # no issuer found
    CYCLIC = 0


class _Validity:
    """``_time_valid`` at one moment, with a record of every certificate asked about and the answer: the only
    time-dependent inputs of a build, which decide whether its outcome holds at another moment (``_ChainCache``)."""

    def __init__(self, at: datetime) -> None:
        self.at = at
        self.asked: dict[bytes, tuple[x509.Certificate, bool]] = {}

    def __call__(self, certificate: x509.Certificate) -> bool:
        entry = facts(certificate)
        known = self.asked.get(entry.sha256)
        if known is None:
            known = (certificate, _time_valid(certificate, self.at))
            self.asked[entry.sha256] = known
        return known[1]


class _Builder:
    def __init__(self, pool: _CertificatePool, anchors: RootSet, valid: Callable[[x509.Certificate], bool]) -> None:
        self.pool = pool
        self.anchors = anchors
        self.valid = valid
        self.attempts = 0
        self.best: tuple[list[x509.Certificate], _Ending] | None = None

    def build(self, leaf: x509.Certificate) -> tuple[list[x509.Certificate], _Ending]:
        found = self._extend([leaf], {facts(leaf).sha256})
        if found is not None:
            return found
        assert self.best is not None
        return self.best

    def _extend(
        self, path: list[x509.Certificate], on_path: set[bytes]
    ) -> tuple[list[x509.Certificate], _Ending] | None:
        """Depth-first search; returns a trusted path, or None after recording the best untrusted one."""
        current = path[-1]
        if self.anchors.trusts(current):
            return list(path), _Ending.TRUSTED
        verified: list[x509.Certificate] = []
        unverified: list[x509.Certificate] = []
        cyclic = False
        for candidate in self._issuers(current):
            if facts(candidate).sha256 in on_path:
                cyclic = True
            elif _signed_by(current, candidate):
                verified.append(candidate)
            else:
                unverified.append(candidate)
        # A name match whose signature fails is a last resort: the path then shows NOT_SIGNATURE_VALID.
        next_steps = verified or unverified[:1]
        if len(path) >= MAX_DEPTH:
            next_steps = []
        for candidate in next_steps:
            self.attempts += 1
            if self.attempts > MAX_ATTEMPTS:
                break
            digest = facts(candidate).sha256
            path.append(candidate)
            on_path.add(digest)
            found = self._extend(path, on_path)
            path.pop()
            on_path.discard(digest)
            if found is not None:
                return found
        if not next_steps:
            if facts(current).self_issued:
                ending = _Ending.SELF_SIGNED
            elif cyclic:
                ending = _Ending.CYCLIC
            else:
                ending = _Ending.PARTIAL
            self._record(list(path), ending)
        return None

    def _issuers(self, certificate: x509.Certificate) -> Iterator[x509.Certificate]:
        """Candidate issuers by name and key identifier, best first."""
        entry = facts(certificate)
        aki = entry.authority_key_identifier
        candidates: list[x509.Certificate] = []
        for candidate in self.pool.named(entry.issuer_key):
            if facts(candidate).der == entry.der:
                continue
            ski = facts(candidate).subject_key_identifier
            if aki is not None and ski is not None and aki != ski:
                continue
            candidates.append(candidate)
        # The anchor itself first (so a chain ends at the store's copy of a root, not at a cross-signed twin from
        # the bag), then certificates trusted through an anchor's subject and key, then time-valid ones.
        candidates.sort(key=lambda c: (
            not self.anchors.contains(c), not self.anchors.trusts(c), not self.valid(c)
        ))
        yield from candidates

    def _record(self, path: list[x509.Certificate], ending: _Ending) -> None:
        if self.best is None or (ending.value, len(path)) > (self.best[1].value, len(self.best[0])):
            self.best = (path, ending)


# --- per-element status ---------------------------------------------------------------------------------------------


def _element_statuses(
    path: list[x509.Certificate], ending: _Ending, usage_eku: str, valid: Callable[[x509.Certificate], bool]
) -> list[ChainStatus]:
    statuses: list[ChainStatus] = []
    for index, certificate in enumerate(path):
        status = ChainStatus.NO_ERROR
        if facts(certificate).extensions is None:
            status |= ChainStatus.INVALID_EXTENSION
        if not valid(certificate):
            status |= ChainStatus.NOT_TIME_VALID
        if not _valid_for_usage(certificate, usage_eku):
            status |= ChainStatus.NOT_VALID_FOR_USAGE
        if index > 0:
            status |= _ca_status(certificate, issued_below=index - 1)
        is_last = index == len(path) - 1
        if index + 1 < len(path) and not _signed_by(certificate, path[index + 1]):
            status |= ChainStatus.NOT_SIGNATURE_VALID
        if is_last:
            if ending is _Ending.SELF_SIGNED:
                status |= ChainStatus.UNTRUSTED_ROOT
            elif ending is _Ending.PARTIAL:
                status |= ChainStatus.PARTIAL_CHAIN
            elif ending is _Ending.CYCLIC:
                status |= ChainStatus.CYCLIC | ChainStatus.PARTIAL_CHAIN
        statuses.append(status)
    return statuses


def _valid_for_usage(certificate: x509.Certificate, usage_eku: str) -> bool:
    """No EKU extension means every usage; otherwise it must list the usage or anyExtendedKeyUsage."""
    usages = facts(certificate).extended_key_usages
    if usages is None or facts(certificate).extensions is None:  # unparsable extensions: INVALID_EXTENSION only
        return True
    return usage_eku in usages or oids.ANY_EXTENDED_KEY_USAGE in usages


def _ca_status(certificate: x509.Certificate, *, issued_below: int) -> ChainStatus:
    """An issuer must be a CA (basicConstraints ca=True when present, pathLen respected) that may sign certificates.

    ``issued_below`` is the number of intermediate CA certificates between this one and the leaf.
    """
    status = ChainStatus.NO_ERROR
    constraints = facts(certificate).extension(x509.BasicConstraints)
    if isinstance(constraints, x509.BasicConstraints) and (
        not constraints.ca or (constraints.path_length is not None and issued_below > constraints.path_length)
    ):
        status |= ChainStatus.INVALID_BASIC_CONSTRAINTS
    usage = facts(certificate).extension(x509.KeyUsage)
    if isinstance(usage, x509.KeyUsage) and not usage.key_cert_sign:
        status |= ChainStatus.NOT_VALID_FOR_USAGE
    return status
