"""Trust roots: the bundled .NET SDK fallback bundles and user-supplied roots files (spec §7.2).

On Linux ``dotnet nuget verify`` trusts ``trustedroots/codesignctl.pem`` for code signing and
``trustedroots/timestampctl.pem`` for timestamping (``X509TrustStore.InitializeForDotNetSdk``). nuseal ships
byte-identical copies in ``nuseal/x509/roots/`` (provenance and checksums in ``roots/README.md``), so its default
verdicts match the official client's out of the box.

NuGet quirk: on Linux the code-signing bundle is replaced by ``/etc/pki/ca-trust/extracted/pem/objsign-ca-bundle.pem``
when that file exists. We never look at the system: the core does not read the environment, and a verdict that depends
on the host's files is not reproducible. Callers that want that file pass it to :func:`trust_store_from_files`.

Roots are a :class:`RootSet`: a sequence of certificates indexed for chain building (by DER fingerprint and by
subject). The bundled sets are never parsed whole: ``nuseal.x509.roots_index`` (a module made by
``scripts/roots-index`` from the two bundles, checked by a test) says where each root's PEM block is and what its
fingerprint and subject key are, so a run parses only the roots its chains reach. The index is used only when it
was made from exactly these bundle bytes (SHA-256) and with this Python's Unicode tables; otherwise the bundle is
parsed and indexed in memory, as any user-supplied roots file is.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, overload

from cryptography import x509

from nuseal.errors import TrustConfigError
from nuseal.record import Struct
from nuseal.x509.facts import facts, load_der, quiet

__all__ = [
    "RootSet", "Roots", "TrustStore", "bundle_index", "default_trust_store", "load_pem_bundle", "load_roots_file",
    "parse_pem_bundle", "trust_store_from_files",
]

CODE_SIGNING_BUNDLE = "codesignctl.pem"
TIMESTAMPING_BUNDLE = "timestampctl.pem"
#: One root of the prebuilt index (``nuseal.x509.roots_index``): where its PEM block starts and ends in the bundle,
#: its DER's SHA-256, its subject key and whether that key holds under any Unicode tables (see :func:`bundle_index`).
IndexEntry = tuple[int, int, bytes, bytes | None, bool]

_BEGIN = b"-----BEGIN CERTIFICATE-----"
_END = b"-----END CERTIFICATE-----"


class RootSet(Sequence[x509.Certificate]):
    """Trust anchors: an immutable sequence of certificates plus the lookups chain building needs (is this exact
    certificate an anchor, which anchors have this subject). Equal DER counts once in the lookups.

    :meth:`of` wraps certificates already parsed; :meth:`bundled` is a bundle shipped with nuseal, whose roots are
    parsed one by one, the first time a lookup returns them.
    """

    def __init__(self, count: int, load: Callable[[int], x509.Certificate], by_fingerprint: dict[bytes, int],
                 by_subject: dict[bytes, list[int]], *, deferred: Sequence[int] = (), eager: bool = False) -> None:
        self._count = count
        self._eager = eager  # every certificate was parsed before (``of``)
        self._load = load  # index -> x509.Certificate
        self._loaded: dict[int, x509.Certificate] = {}
        self._by_fingerprint = by_fingerprint
        self._by_subject = by_subject
        self._deferred = list(deferred)  # entries whose subject key must be computed here (see bundled)
        self._lock = threading.Lock()
        self._reduce: tuple[Any, ...] | None = None

    # --- construction -------------------------------------------------------------------------------------------

    @classmethod
    def of(cls, certificates: Iterable[x509.Certificate]) -> RootSet:
        """A set of certificates already parsed, in the given order."""
        items = tuple(certificates)
        by_fingerprint: dict[bytes, int] = {}
        by_subject: dict[bytes, list[int]] = {}
        for index, certificate in enumerate(items):
            entry = facts(certificate)
            if entry.sha256 in by_fingerprint:
                continue
            by_fingerprint[entry.sha256] = index
            by_subject.setdefault(entry.subject_key, []).append(index)
        root_set = cls(len(items), items.__getitem__, by_fingerprint, by_subject, eager=True)
        root_set._reduce = (_from_ders, (tuple(facts(c).der for c in items),))
        return root_set

    @classmethod
    def bundled(cls, name: str) -> RootSet:
        """One of the bundles shipped with nuseal (``codesignctl.pem``, ``timestampctl.pem``), through the prebuilt
        index when it matches the bundle; parsed whole otherwise."""
        data = _bundle_bytes(name)
        entries = _prebuilt_entries(name, data)
        if entries is None:
            root_set = cls.of(parse_pem_bundle(data, f"nuseal/x509/roots/{name}"))
        else:
            root_set = cls._indexed(data, entries)
        root_set._reduce = (_bundled_set, (name,))
        return root_set

    @classmethod
    def _indexed(cls, data: bytes, entries: Sequence[IndexEntry]) -> RootSet:
        by_fingerprint: dict[bytes, int] = {}
        by_subject: dict[bytes, list[int]] = {}
        deferred: list[int] = []
        blocks: list[tuple[int, int]] = []
        for index, (start, end, fingerprint, subject_key, _) in enumerate(entries):
            blocks.append((start, end))
            if fingerprint in by_fingerprint:
                continue
            by_fingerprint[fingerprint] = index
            if subject_key is None:  # the stored key may not hold under this Python's Unicode tables
                deferred.append(index)
            else:
                by_subject.setdefault(subject_key, []).append(index)

        def load(index: int) -> x509.Certificate:
            start, end = blocks[index]
            body = data[start + len(_BEGIN) : end]
            return load_der(base64.b64decode(body))

        return cls(len(entries), load, by_fingerprint, by_subject, deferred=deferred)

    # --- Sequence -----------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> x509.Certificate: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[x509.Certificate, ...]: ...

    def __getitem__(self, index: int | slice) -> x509.Certificate | tuple[x509.Certificate, ...]:
        if isinstance(index, slice):
            return tuple(self[i] for i in range(*index.indices(self._count)))
        if index < 0:
            index += self._count
        if not 0 <= index < self._count:
            raise IndexError("root index out of range")
        return self._certificate(index)

    def __iter__(self) -> Iterator[x509.Certificate]:
        return (self._certificate(i) for i in range(self._count))

    def __repr__(self) -> str:
        return f"RootSet({self._count} roots)"

    @property
    def parsed(self) -> int:
        """How many roots have been parsed so far (a bundled set parses them as lookups reach them)."""
        return self._count if self._eager else len(self._loaded)

    def __add__(self, other: Iterable[x509.Certificate]) -> RootSet:
        """These roots followed by ``other`` (``store.code_signing + extra`` works whichever form the part has); a
        bundled set stays lazy: its lookups are copied, its roots parsed only when reached, as before."""
        extra = tuple(other)
        with self._lock:
            by_fingerprint = dict(self._by_fingerprint)
            by_subject = {key: list(indexes) for key, indexes in self._by_subject.items()}
            deferred = list(self._deferred)
        count = self._count
        for offset, certificate in enumerate(extra):
            entry = facts(certificate)
            if entry.sha256 in by_fingerprint:
                continue
            by_fingerprint[entry.sha256] = count + offset
            by_subject.setdefault(entry.subject_key, []).append(count + offset)

        def load(index: int) -> x509.Certificate:
            return self._certificate(index) if index < count else extra[index - count]

        joined = RootSet(count + len(extra), load, by_fingerprint, by_subject, deferred=deferred,
                         eager=self._eager)
        joined._reduce = (_joined, (self, tuple(facts(c).der for c in extra)))
        return joined

    def __reduce__(self) -> tuple[Any, ...]:
        # Certificates do not pickle: a bundled set travels by name, others as DER.
        return self._reduce if self._reduce is not None else (_from_ders, (tuple(facts(c).der for c in self),))

    # --- lookups ------------------------------------------------------------------------------------------------

    def contains(self, certificate: x509.Certificate) -> bool:
        """``certificate`` is one of the roots, byte for byte."""
        entry = facts(certificate)
        index = self._by_fingerprint.get(entry.sha256)
        return index is not None and facts(self._certificate(index)).der == entry.der

    def named(self, subject_key: bytes) -> list[x509.Certificate]:
        """The distinct roots whose subject has the comparison key ``subject_key`` (``Facts.subject_key``), in
        bundle order."""
        if self._deferred:
            self._resolve_deferred()
        return [self._certificate(i) for i in self._by_subject.get(subject_key, ())]

    def trusts(self, certificate: x509.Certificate) -> bool:
        """``certificate`` is a root, or has a root's subject and public key (a re-issued root)."""
        if self.contains(certificate):
            return True
        entry = facts(certificate)
        return any(facts(root).spki == entry.spki for root in self.named(entry.subject_key))

    def _certificate(self, index: int) -> x509.Certificate:
        certificate = self._loaded.get(index)
        if certificate is None:
            certificate = self._load(index)
            self._loaded[index] = certificate
        return certificate

    def _resolve_deferred(self) -> None:
        with self._lock:
            for index in self._deferred:
                key = facts(self._certificate(index)).subject_key
                entries = self._by_subject.setdefault(key, [])
                entries.append(index)
                entries.sort()
            self._deferred = []


def _from_ders(ders: tuple[bytes, ...]) -> RootSet:
    return RootSet.of(load_der(d) for d in ders)


def _joined(base: RootSet, ders: tuple[bytes, ...]) -> RootSet:
    return base + tuple(load_der(d) for d in ders)


def _bundled_set(name: str) -> RootSet:
    store = default_trust_store()
    for part in (store.code_signing, store.timestamping):
        if isinstance(part, RootSet) and part._reduce == (_bundled_set, (name,)):
            return part
    return RootSet.bundled(name)


#: One part of a trust store: both forms support ``+`` with more certificates (a tuple gives a tuple, a
#: :class:`RootSet` a RootSet).
Roots = tuple[x509.Certificate, ...] | RootSet


class TrustStore(Struct, frozen=True):
    """Root certificates trusted for code signing (author/repository signers) and for timestamping (TSAs): tuples
    of certificates or :class:`RootSet` s (chain building indexes a tuple on first use)."""

    code_signing: Roots
    timestamping: Roots


def parse_pem_bundle(data: bytes, source: str) -> tuple[x509.Certificate, ...]:
    """Every ``CERTIFICATE`` block of a PEM bundle, in file order; ``source`` names the bundle in errors.

    Text outside the blocks (comments such as ``# Subject: ...``) is ignored, as OpenSSL does.
    """
    with warnings.catch_warnings():
        # Some long-lived roots carry non-positive serial numbers; cryptography warns but still parses them.
        warnings.simplefilter("ignore")
        try:
            # Fast path (one call for ~300 roots); the block-by-block scan below only runs to explain a failure.
            bulk = x509.load_pem_x509_certificates(data)
        except ValueError:
            bulk = []
        if bulk and len(bulk) == data.count(_BEGIN):
            return tuple(bulk)
        return _parse_blocks(data, source)


def _parse_blocks(data: bytes, source: str) -> tuple[x509.Certificate, ...]:
    certificates: list[x509.Certificate] = []
    start = data.find(_BEGIN)
    index = 0
    while start != -1:
        index += 1
        line = data.count(b"\n", 0, start) + 1
        end = data.find(_END, start)
        following = data.find(_BEGIN, start + len(_BEGIN))
        if end == -1 or (following != -1 and following < end):
            raise TrustConfigError(f"{source}: certificate #{index} (PEM block at line {line}) has no END line")
        block = data[start : end + len(_END)]
        try:
            certificates.append(x509.load_pem_x509_certificate(block))
        except ValueError as exc:
            raise TrustConfigError(
                f"{source}: certificate #{index} (PEM block at line {line}) is not a valid certificate: {exc}"
            ) from exc
        start = following
    if not certificates:
        raise TrustConfigError(f"{source}: no PEM certificate ('-----BEGIN CERTIFICATE-----') found")
    return tuple(certificates)


def load_pem_bundle(path: Path) -> tuple[x509.Certificate, ...]:
    """Read a PEM bundle file; :class:`TrustConfigError` naming the file (and certificate index) when it is bad."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TrustConfigError(f"cannot read certificate bundle {path}: {exc.strerror or exc}") from exc
    return parse_pem_bundle(data, str(path))


def load_roots_file(path: Path) -> tuple[x509.Certificate, ...]:
    """Read roots from a PEM bundle or from one DER certificate (the ``.cer`` that ``nuseal cert create --cer``
    and Windows export); :class:`TrustConfigError` naming the file when it is neither.

    The format is told by the content, as .NET's ``X509Certificate2Collection.Import`` does: a file with a PEM
    ``BEGIN CERTIFICATE`` line is a bundle, anything else must be a DER certificate.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TrustConfigError(f"cannot read certificate file {path}: {exc.strerror or exc}") from exc
    if _BEGIN in data:
        return parse_pem_bundle(data, str(path))
    if not data.strip():
        raise TrustConfigError(f"{path}: the file is empty; expected a PEM bundle or a DER certificate")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # non-positive serial numbers, as in parse_pem_bundle
            return (x509.load_der_x509_certificate(data),)
    except ValueError as exc:
        raise TrustConfigError(
            f"{path}: neither a PEM bundle ('-----BEGIN CERTIFICATE-----') nor a DER certificate: {exc}"
        ) from exc


#: The bundled sets and their index, package data next to this module. A plain path, not ``importlib.resources``:
#: nuseal installs as files (never zipped), and the resources machinery costs ~3-10 ms of every verification's
#: start-up (issue 12).
_ROOTS_FOLDER = Path(__file__).resolve().parent / "roots"


def _bundle_bytes(name: str) -> bytes:
    return (_ROOTS_FOLDER / name).read_bytes()


def bundle_index(data: bytes) -> tuple[str, tuple[IndexEntry, ...]]:
    """The index of one PEM bundle as ``nuseal.x509.roots_index`` stores it: the bundle's SHA-256 (hex) and, per
    certificate block in file order, ``(start, end, DER SHA-256, subject key, portable)`` (offsets of the BEGIN and
    END lines; ``portable`` is false when the subject key depends on the Unicode tables, i.e. for non-ASCII names)."""
    roots: list[IndexEntry] = []
    start = data.find(_BEGIN)
    with quiet():
        while start != -1:
            end = data.find(_END, start)
            entry = facts(load_der(base64.b64decode(data[start + len(_BEGIN) : end])))
            name = entry.subject
            portable = name is not None and all(str(a.value).isascii() for a in name)
            roots.append((start, end, entry.sha256, entry.subject_key, portable))
            start = data.find(_BEGIN, end)
    return hashlib.sha256(data).hexdigest(), tuple(roots)


def write_index(path: Path) -> None:
    """Write ``nuseal/x509/roots_index.py`` for the bundles (``scripts/roots-index``); one root per line, so that a
    bundle update reads as a diff. A module rather than a data file: its constants load with the module's ``.pyc``,
    where reading a JSON index cost the ``json`` import, the parse and a hex decoding per key (~7 M instructions of
    every verification, docs/performance.md "Batch verify, part 5")."""
    import unicodedata

    lines = ['"""Generated by ``scripts/roots-index`` (``nuseal.x509.roots.write_index``) from the bundles in',
             "``roots/``; do not edit. Per bundle: its SHA-256 and, per root in file order, ``(start, end,",
             'DER SHA-256, subject key, portable)`` (``nuseal.x509.roots.bundle_index``)."""', "",
             "# ruff: noqa: E501", "# fmt: off", "",
             "#: The Unicode tables the subject keys of non-ASCII names were computed with.",
             f"UNICODE = {unicodedata.unidata_version!r}", "",
             "BUNDLES: dict[str, tuple[str, tuple[tuple[int, int, bytes, bytes, bool], ...]]] = {"]
    for name in (CODE_SIGNING_BUNDLE, TIMESTAMPING_BUNDLE):
        sha256, roots = bundle_index((_ROOTS_FOLDER / name).read_bytes())
        lines.append(f"    {name!r}: ({sha256!r}, (")
        lines.extend(f"        {root!r}," for root in roots)
        lines.append("    )),")
    lines.append("}")
    path.write_text("\n".join(lines) + "\n")


def _prebuilt_index() -> tuple[str, Mapping[str, tuple[str, tuple[IndexEntry, ...]]]] | None:
    """The Unicode version and the bundles of ``nuseal.x509.roots_index``; None without it (a source tree whose
    index was not generated: the bundles are then parsed whole)."""
    try:
        from nuseal.x509 import roots_index
    except ImportError:
        return None
    return roots_index.UNICODE, roots_index.BUNDLES


def _prebuilt_entries(name: str, data: bytes) -> Sequence[IndexEntry] | None:
    """The index entries of bundle ``name`` when the index was made from exactly ``data``; None otherwise."""
    index = _prebuilt_index()
    if index is None:
        return None
    unicode, bundles = index
    bundle = bundles.get(name)
    if bundle is None or bundle[0] != hashlib.sha256(data).hexdigest():
        return None
    entries = bundle[1]
    import unicodedata

    if unicode != unicodedata.unidata_version:
        # Subject keys of non-ASCII names (casefold, white space) are computed again under this Python.
        return [e if e[4] else (*e[:3], None, False) for e in entries]
    return entries


@lru_cache(maxsize=1)
def default_trust_store() -> TrustStore:
    """The .NET SDK fallback bundles shipped with nuseal (the same object every call; roots parsed as needed)."""
    return TrustStore(code_signing=RootSet.bundled(CODE_SIGNING_BUNDLE),
                      timestamping=RootSet.bundled(TIMESTAMPING_BUNDLE))


def trust_store_from_files(code_signing: Path | None, timestamping: Path | None) -> TrustStore:
    """Replace either part of the default store with a roots file (PEM bundle or DER certificate, see
    :func:`load_roots_file`); ``None`` keeps that part of the default."""
    # The bundled roots are indexed only for a part that uses them (bench/verify gives both files).
    return TrustStore(
        code_signing=default_trust_store().code_signing if code_signing is None else load_roots_file(code_signing),
        timestamping=default_trust_store().timestamping if timestamping is None else load_roots_file(timestamping),
    )
