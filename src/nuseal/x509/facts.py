"""What nuseal reads from a certificate, read once per process and shared by every signature that carries it.

cryptography re-serializes a certificate on every ``public_bytes`` call and builds new name and extension objects on
every access, and a batch meets the same intermediate, root and TSA certificates in package after package. So:

* :func:`load_der` interns certificates by their DER: the same certificate in two signatures is one object.
* :func:`facts` gives the one :class:`Facts` of a certificate (by identity): DER, fingerprints, names and their
  comparison keys, extensions, key, summary, and the "issued by" signature checks already done, each computed the
  first time it is asked for.

Both tables are bounded (:data:`MAX_CERTIFICATES`; a feed server verifies without end): when full they are emptied
and facts are computed again as needed. Nothing here changes an answer, only how often it is computed.

Every fact is read inside :func:`quiet` and through a guard that turns cryptography's late parse errors into a plain
answer (no key, no extensions, a name known only by its DER), as ``nuseal.x509.certs`` documents.
"""

from __future__ import annotations

import hashlib
import threading
import warnings
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from datetime import datetime
from functools import cached_property
from types import TracebackType

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives._serialization import Encoding, PublicFormat  # see _ENUMS_NOTE
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.utils import CryptographyDeprecationWarning

from nuseal.x509 import der as der_walker

# _ENUMS_NOTE: Encoding and PublicFormat come from the module that defines them, which cryptography.x509 loads
# anyway: the public ``serialization`` package also imports cryptography's SSH and cipher modules, ~25 ms of CPU
# at every start-up (issue 12). tests/unit/x509/test_import_cost.py checks that they are the public objects.

__all__ = ["CERTIFICATE_ERRORS", "MAX_CERTIFICATES", "Facts", "facts", "load_der", "name_key_digest", "quiet"]

#: What cryptography raises when a lazily parsed part of a loaded certificate (name, extension, public key,
#: signature algorithm) is malformed or unsupported. ``DuplicateExtension`` and ``UnsupportedGeneralNameType``
#: are not ``ValueError`` subclasses.
CERTIFICATE_ERRORS: tuple[type[Exception], ...] = (
    ValueError, UnsupportedAlgorithm, x509.DuplicateExtension, x509.UnsupportedGeneralNameType,
)

#: Certificates remembered (interned DER and facts) before the tables are emptied.
MAX_CERTIFICATES = 4096

_quiet_state = threading.local()


def quiet() -> AbstractContextManager[None]:
    """Silence cryptography's warnings about RFC 5280 deviations that .NET accepts: name attributes longer than the
    X.520 upper bounds (``UserWarning``) and non-positive serial numbers (``CryptographyDeprecationWarning``).

    They never change a verdict (NuGet accepts both), so they are not findings; printing them would leak library
    noise into ``verify``/``inspect`` output, and ``-W error`` would turn them into crashes. Nested uses in one
    thread cost nothing: the outermost one has installed the filters already.
    """
    return _Quiet()


class _Quiet:
    """:func:`quiet`'s context manager: a plain class, not a generator, because a verification enters it a few
    dozen times (nested, so doing nothing) per package."""

    __slots__ = ("_outer",)

    def __enter__(self) -> None:
        depth = getattr(_quiet_state, "depth", 0)
        if depth:
            _quiet_state.depth = depth + 1
            self._outer: warnings.catch_warnings[None] | None = None
            return
        outer = warnings.catch_warnings()
        outer.__enter__()
        try:
            warnings.filterwarnings("ignore", message="Attribute's length", category=UserWarning)
            warnings.filterwarnings("ignore", category=CryptographyDeprecationWarning)
        except BaseException:
            outer.__exit__(None, None, None)
            raise
        self._outer = outer
        _quiet_state.depth = 1

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._outer is None:
            _quiet_state.depth -= 1
            return
        _quiet_state.depth = 0
        self._outer.__exit__(exc_type, exc, tb)


def name_key_digest(name: x509.Name) -> bytes:
    """The comparison key of a decoded name for chain building, as a digest: RFC 5280-ish, i.e. the attribute OIDs
    and their string values casefolded with runs of white space collapsed, so case and spacing do not matter.

    Length-prefixed before hashing, so that distinct names never share an encoding.
    """
    return _pairs_key_digest([(attribute.oid.dotted_string, attribute.value) for rdn in name.rdns for attribute in rdn])


def _pairs_key_digest(pairs: Iterable[tuple[str, object]]) -> bytes:
    """:func:`name_key_digest` of a name's (OID, value) pairs in order (``der_walker.name_attributes`` gives them
    without building cryptography's name objects)."""
    digest = hashlib.sha256(b"name:")
    for oid, raw_value in pairs:
        value = " ".join(str(raw_value).casefold().split())
        for part in (oid.encode(), value.encode("utf-8", "surrogatepass")):
            digest.update(len(part).to_bytes(4, "big"))
            digest.update(part)
    return digest.digest()


def _name_key(raw: bytes, decoded: Callable[[], x509.Name | None]) -> bytes:
    """The comparison key of the name whose DER is ``raw``: from the DER when the walker vouches for reading it as
    cryptography does, else from cryptography's ``Name`` (``decoded``), else from the DER itself."""
    attributes = der_walker.name_attributes(raw)
    if attributes is not None:
        return _pairs_key_digest(pair for rdn in attributes for pair in rdn)
    name = decoded()
    return name_key_digest(name) if name is not None else _raw_name_key(raw)


def _raw_name_key(raw: bytes) -> bytes:
    """The key of a name cryptography cannot decode: its DER (it matches only the same undecodable name)."""
    return hashlib.sha256(b"raw:" + raw).digest()


class Facts:
    """Everything nuseal reads from one certificate, computed on first use. Use :func:`facts` to get it."""

    def __init__(self, certificate: x509.Certificate, der: bytes | None = None) -> None:
        self.certificate = certificate
        if der is not None:
            self.__dict__["der"] = der
        self._issued_by: dict[int, tuple[Facts, bool]] = {}
        self._extension_values: dict[type[x509.ExtensionType], x509.ExtensionType | None] = {}
        #: Derived answers that modules above keep with the certificate (the summary ``certs.summarize`` builds).
        self.memo: dict[str, object] = {}

    @cached_property
    def der(self) -> bytes:
        return self.certificate.public_bytes(Encoding.DER)

    @cached_property
    def sha256(self) -> bytes:
        return hashlib.sha256(self.der).digest()

    def fingerprint(self, algorithm: str = "sha256") -> str:
        """Uppercase hex, as NuGet prints and stores it."""
        if algorithm == "sha256":
            return self.sha256_hex
        if algorithm == "sha1":
            return self.sha1_hex
        return hashlib.new(algorithm, self.der).hexdigest().upper()

    @cached_property
    def sha256_hex(self) -> str:
        return self.sha256.hex().upper()

    @cached_property
    def sha1_hex(self) -> str:
        return hashlib.sha1(self.der).hexdigest().upper()

    # --- names ------------------------------------------------------------------------------------------------

    @cached_property
    def subject(self) -> x509.Name | None:
        with quiet():
            try:
                return self.certificate.subject
            except CERTIFICATE_ERRORS:
                return None

    @cached_property
    def issuer(self) -> x509.Name | None:
        with quiet():
            try:
                return self.certificate.issuer
            except CERTIFICATE_ERRORS:
                return None

    @cached_property
    def _tbs_parts(self) -> list[bytes] | None:
        """The TBSCertificate's fields without the optional [0] version: serial, signature, issuer, validity,
        subject, ... as encoded; None when the DER cannot be walked."""
        try:
            parts = der_walker.tlvs(der_walker.contents_of(self.certificate.tbs_certificate_bytes, 0x30))
        except ValueError:
            return None
        if parts and parts[0][:1] == b"\xa0":
            parts = parts[1:]
        return parts if len(parts) >= 5 else None

    @cached_property
    def raw_issuer(self) -> bytes:
        """The issuer Name's DER exactly as encoded (read without decoding it); a value unique to the certificate
        when even that fails, so that it never matches another name."""
        parts = self._tbs_parts
        return parts[2] if parts is not None else b"\x00unreadable:" + self.der

    @cached_property
    def serial_number(self) -> int:
        return self.certificate.serial_number

    @cached_property
    def raw_serial_number(self) -> bytes:
        """The serialNumber INTEGER's DER exactly as encoded (the DER of ``serial_number`` when unreadable)."""
        parts = self._tbs_parts
        if parts is not None and parts[0][:1] == b"\x02":
            return parts[0]
        value = self.serial_number
        octets = value.to_bytes((value + (value < 0)).bit_length() // 8 + 1, "big", signed=True)
        return b"\x02" + bytes([len(octets)]) + octets  # RFC 5280 serials are at most 20 octets

    @cached_property
    def raw_subject(self) -> bytes:
        parts = self._tbs_parts
        return parts[4] if parts is not None else b"\x00unreadable:" + self.der

    @cached_property
    def subject_key(self) -> bytes:
        """Comparison key of the subject (:func:`name_key_digest`; the DER when the name cannot be decoded)."""
        return _name_key(self.raw_subject, lambda: self.subject)

    @cached_property
    def issuer_key(self) -> bytes:
        return _name_key(self.raw_issuer, lambda: self.issuer)

    @cached_property
    def issuer_text(self) -> tuple[tuple[tuple[str, str], ...], ...] | None:
        """``der.name_text`` of the issuer (.NET's ``IssuerName.Name`` for ordinal comparison); None if unreadable."""
        try:
            return der_walker.name_text(self.raw_issuer)
        except der_walker.ASN1_ERRORS:
            return None

    @cached_property
    def self_issued(self) -> bool:
        return self.subject_key == self.issuer_key

    # --- validity, extensions, key ----------------------------------------------------------------------------

    @cached_property
    def not_before(self) -> datetime:
        return self.certificate.not_valid_before_utc

    @cached_property
    def not_after(self) -> datetime:
        return self.certificate.not_valid_after_utc

    @cached_property
    def extensions(self) -> x509.Extensions | None:
        """The parsed extensions, or None when they cannot be parsed (a chain reports INVALID_EXTENSION)."""
        with quiet():
            try:
                return self.certificate.extensions
            except CERTIFICATE_ERRORS:
                return None

    def extension(self, kind: type[x509.ExtensionType]) -> x509.ExtensionType | None:
        """The value of the extension of class ``kind``; None when absent or when the extensions cannot be parsed."""
        try:
            return self._extension_values[kind]
        except KeyError:
            pass
        value: x509.ExtensionType | None = None
        parsed = self.extensions
        if parsed is not None:
            try:
                value = parsed.get_extension_for_class(kind).value
            except x509.ExtensionNotFound:
                value = None
        self._extension_values[kind] = value
        return value

    @cached_property
    def subject_key_identifier(self) -> bytes | None:
        value = self.extension(x509.SubjectKeyIdentifier)
        return value.digest if isinstance(value, x509.SubjectKeyIdentifier) else None

    @cached_property
    def authority_key_identifier(self) -> bytes | None:
        value = self.extension(x509.AuthorityKeyIdentifier)
        return value.key_identifier if isinstance(value, x509.AuthorityKeyIdentifier) else None

    @cached_property
    def extended_key_usages(self) -> frozenset[str] | None:
        """Dotted EKU OIDs; None without an EKU extension; empty when the extensions cannot be parsed."""
        if self.extensions is None:
            return frozenset()
        value = self.extension(x509.ExtendedKeyUsage)
        if not isinstance(value, x509.ExtendedKeyUsage):
            return None
        return frozenset(oid.dotted_string for oid in value)

    @cached_property
    def public_key(self) -> CertificatePublicKeyTypes | None:
        """The public key, or None when it cannot be decoded (unknown algorithm, damaged key)."""
        try:
            return self.certificate.public_key()
        except CERTIFICATE_ERRORS:
            return None

    @cached_property
    def spki(self) -> bytes:
        """The public key as DER SubjectPublicKeyInfo; for a key cryptography cannot decode, a value unique to the
        certificate (such a certificate can then only be trusted as an anchor, by its exact DER)."""
        key = self.public_key
        if key is None:
            return b"\x00undecodable:" + self.der
        return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)

    @cached_property
    def signature_algorithm_oid(self) -> str:
        return self.certificate.signature_algorithm_oid.dotted_string

    # --- issued by --------------------------------------------------------------------------------------------

    def issued_by(self, issuer: Facts) -> bool:
        """This certificate's signature verifies with ``issuer``'s key (RSA or ECDSA, SHA-1 included); the answer
        is remembered per issuer."""
        known = self._issued_by.get(id(issuer))
        if known is not None and known[0] is issuer:
            return known[1]
        answer = _signed_by(self.certificate, issuer)
        self._issued_by[id(issuer)] = (issuer, answer)
        return answer


def _signed_by(certificate: x509.Certificate, issuer: Facts) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer.certificate)
    except (InvalidSignature, UnsupportedAlgorithm, TypeError):
        return False
    except ValueError:
        # Names equal by our comparison but not byte for byte (PrintableString vs UTF8String, case): check the
        # signature against the issuer's key directly.
        return _signature_matches_key(certificate, issuer.public_key)
    return True


def _signature_matches_key(certificate: x509.Certificate, key: CertificatePublicKeyTypes | None) -> bool:
    try:
        algorithm = certificate.signature_hash_algorithm
        if isinstance(key, rsa.RSAPublicKey) and algorithm is not None:
            parameters = certificate.signature_algorithm_parameters
            pad = parameters if isinstance(parameters, padding.PSS) else padding.PKCS1v15()
            key.verify(certificate.signature, certificate.tbs_certificate_bytes, pad, algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey) and algorithm is not None:
            key.verify(certificate.signature, certificate.tbs_certificate_bytes, ec.ECDSA(algorithm))
        else:
            return False
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError):
        return False
    return True


# --- the tables ---------------------------------------------------------------------------------------------------

_by_id: dict[int, Facts] = {}
_by_der: dict[bytes, x509.Certificate] = {}
_lock = threading.Lock()


def _remember(entry: Facts) -> None:
    with _lock:
        if len(_by_id) >= MAX_CERTIFICATES:
            _by_id.clear()
            _by_der.clear()
        _by_id[id(entry.certificate)] = entry


def facts(certificate: x509.Certificate) -> Facts:
    """The one :class:`Facts` of ``certificate`` (by identity; made on first use)."""
    entry = _by_id.get(id(certificate))
    if entry is not None and entry.certificate is certificate:
        return entry
    entry = Facts(certificate)
    _remember(entry)
    return entry


def load_der(data: bytes) -> x509.Certificate:
    """A DER certificate, the same object for the same bytes; ``ValueError`` whenever cryptography refuses it
    (``InvalidVersion`` included)."""
    data = bytes(data)
    known = _by_der.get(data)
    if known is not None:
        return known
    with quiet():
        try:
            certificate = x509.load_der_x509_certificate(data)
        except x509.InvalidVersion as exc:
            raise ValueError(f"unsupported certificate version v{exc.parsed_version + 1}") from exc
    entry = Facts(certificate, der=data)
    _remember(entry)
    with _lock:
        _by_der[data] = certificate
    return certificate
