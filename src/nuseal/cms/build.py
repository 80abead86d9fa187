"""Build NuGet primary signatures and repository countersignatures as DER (spec §4.2, §4.4-4.6, §5.1).

Hand-written on asn1crypto + cryptography on purpose: no Python library builds NuGet's exact signed-attribute
set (ESSCertIDv2 with an explicit SHA-256 ``hashAlgorithm``, commitment-type-indication, the two NuGet
attributes) or adds a CMS countersignature to an existing SignerInfo.

Signing is split so that any key backend can sit in the middle and nothing here touches a private key:

1. ``builder.signed_attributes()`` -> the DER ``SET OF Attribute`` the key signs;
2. the caller raw-signs it (RSA PKCS#1 v1.5 over HASH(signed attributes));
3. optionally the caller timestamps the signature value (imprint = HASH_ts(signature value), spec §5.1);
4. ``builder.build(signature_value, timestamp=token)`` assembles the ContentInfo (primary) or the
   SignerInfo (countersignature); ``nuseal.cms.countersign.add_countersignature`` grafts the latter onto a primary
   signature.

Hash algorithms are named as hashlib names (``"sha256"``, ``"sha384"``, ``"sha512"``), like
``SignatureContent.hash_name`` and ``package.hashing``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from nuseal import oids
from nuseal.cms import encode
from nuseal.codes import NuCode
from nuseal.errors import SignatureFormatError
from nuseal.record import Struct, replace
from nuseal.x509 import certs

if TYPE_CHECKING:
    from asn1crypto import cms

# asn1crypto (core, and cms with its x509, algos, crl, ocsp modules) is imported only by the functions that edit a
# loaded signature (timestamping an existing one, countersigning, stripping): building a new signature writes its
# few primitive types by hand below (byte for byte asn1crypto's encodings, tested), and importing asn1crypto.core
# alone cost ~30-45 ms of every signing command's start-up (issue 12).

#: hashlib name -> digest OID, for the three hash algorithms NuGet allows.
HASH_OIDS: dict[str, str] = {name: oid for oid, name in oids.SHA2_HASHES.items()}

# CommitmentTypeIndication ::= SEQUENCE { commitmentTypeId OID } (no qualifiers), spec §4.2 item 3.
_PROOF_OF_ORIGIN_VALUE = bytes.fromhex("300d060b2a864886f70d0109100601")
_PROOF_OF_RECEIPT_VALUE = bytes.fromhex("300d060b2a864886f70d0109100602")


# --- minimal DER helpers -------------------------------------------------------------------------------


def _dump(value: Any) -> bytes:
    """``value.dump()`` typed: asn1crypto is untyped."""
    encoded = value.dump()
    assert isinstance(encoded, bytes)
    return encoded


@lru_cache(maxsize=256)
def _oid(dotted: str) -> bytes:
    """An OBJECT IDENTIFIER's DER; remembered, as signing encodes the same dozen OIDs for every signature."""
    return encode.object_identifier(dotted)


_DATA_OID = bytes.fromhex("06092a864886f70d010701")
_SIGNED_DATA_OID = bytes.fromhex("06092a864886f70d010702")


def _attribute(oid: str, value_der: bytes) -> bytes:
    """``Attribute ::= SEQUENCE { attrType OID, attrValues SET OF value }`` with one value."""
    return encode.sequence(_oid(oid), encode.set_of(value_der))


def encode_attribute(oid: str, value_der: bytes) -> bytes:
    """One DER ``Attribute`` with a single value (public for tests and other builders)."""
    return _attribute(oid, value_der)


# --- attribute values ----------------------------------------------------------------------------------


def _check_hash(hash_algorithm: str) -> str:
    if hash_algorithm not in HASH_OIDS:
        raise ValueError(f"unsupported hash algorithm {hash_algorithm!r}: use sha256, sha384 or sha512")
    return hash_algorithm


def _signing_time_value(when: datetime) -> bytes:
    if when.tzinfo is None:
        raise ValueError("signing time must be timezone-aware")
    when = when.astimezone(UTC).replace(microsecond=0)
    return encode.cms_time(when)  # RFC 5652 §11.3; UTCTime for 1950-2049 is what .NET writes (spec §4.2)


def signing_certificate_v2_value(certificate: x509.Certificate, hash_algorithm: str) -> bytes:
    """``SigningCertificateV2`` DER exactly as NuGet writes it (spec §4.4); made once per certificate and hash.

    NuGet quirk: ``hashAlgorithm`` is always written, even for SHA-256 where it equals the DEFAULT, and
    without NULL parameters. asn1crypto would drop a DEFAULT value, so the sequence is encoded here by hand.
    """
    _check_hash(hash_algorithm)
    entry = certs.facts(certificate)
    key = f"signing-certificate-v2:{hash_algorithm}"
    cached = entry.memo.get(key)
    if isinstance(cached, bytes):
        return cached
    algorithm = encode.sequence(_oid(HASH_OIDS[hash_algorithm]))
    cert_hash = encode.tlv(0x04, hashlib.new(hash_algorithm, entry.der).digest())
    # GeneralNames ::= SEQUENCE { [4] directoryName } ; [4] is EXPLICIT (a Name is a CHOICE), so constructed.
    general_names = encode.sequence(encode.tlv(0xA4, entry.raw_issuer))
    # The serial exactly as the certificate encodes it, so byte comparison in the verifier matches.
    issuer_serial = encode.sequence(general_names, entry.raw_serial_number)
    value = encode.sequence(encode.sequence(encode.sequence(algorithm, cert_hash, issuer_serial)))
    entry.memo[key] = value
    return value


def service_index_url_value(url: str) -> bytes:
    """``nuget-v3-service-index-url ::= IA5String`` (spec §4.5); ``ValueError`` unless absolute https."""
    check_service_index_url(url)
    return encode.tlv(0x16, url.encode("ascii"))  # checked ASCII above


def package_owners_value(owners: Sequence[str]) -> bytes:
    """``nuget-package-owners ::= SEQUENCE SIZE(1..MAX) OF UTF8String`` (spec §4.5)."""
    check_owners(owners)
    return encode.sequence(*(encode.tlv(0x0C, owner.encode("utf-8")) for owner in owners))


def check_service_index_url(url: str) -> None:
    """NuGet's rule: an absolute URI whose scheme is exactly ``https`` (case-sensitive, spec §4.5)."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ValueError(f"invalid service index URL {url!r}: {exc}") from exc
    # urlsplit lowercases the scheme, so the case-sensitive part is checked on the raw string; this matches
    # ``nuseal.cms.parse.is_valid_service_index_url`` so that we never write what we would refuse to read.
    if not url.startswith("https://") or parts.scheme != "https" or not parts.netloc:
        raise ValueError(f"the service index URL must be an absolute https URL (got {url!r})")
    try:
        url.encode("ascii")
    except UnicodeEncodeError as exc:
        raise ValueError(f"the service index URL must be ASCII (IA5String), got {url!r}") from exc


def check_owners(owners: Sequence[str]) -> None:
    """Every owner must be non-blank; an empty list is the caller's job to drop (no attribute)."""
    if not owners:
        raise ValueError("nuget-package-owners needs at least one owner")
    for index, owner in enumerate(owners):
        if not owner.strip():
            raise ValueError(f"package owner #{index + 1} is blank: owners must be non-whitespace")


# --- certificate helpers -------------------------------------------------------------------------------


def _signer_identifier(certificate: x509.Certificate) -> tuple[bytes, int]:
    """SKI sid (SignerInfo v3) when the certificate has an SKI extension, else issuer+serial (v1); §4.2.
    Returns the SignerIdentifier DER and the SignerInfo version."""
    entry = certs.facts(certificate)
    ski = entry.subject_key_identifier
    if ski is not None:
        return encode.tlv(0x80, ski), 3  # [0] IMPLICIT SubjectKeyIdentifier
    return encode.sequence(entry.raw_issuer, entry.raw_serial_number), 1  # IssuerAndSerialNumber


def _digest_algorithm(hash_algorithm: str) -> bytes:
    # The real vectors carry NULL parameters on digest algorithms; we write the same.
    return encode.sequence(_oid(HASH_OIDS[hash_algorithm]), _NULL)


#: spec §4.2: rsaEncryption. Every nuget.org vector writes it with NULL parameters (05 00); so do we.
_NULL = b"\x05\x00"
_RSA_SIGNATURE_ALGORITHM = bytes.fromhex("300d06092a864886f70d0101010500")


def _timestamp_attribute(token: bytes) -> bytes:
    return _attribute(oids.SIGNATURE_TIMESTAMP_TOKEN, token)


# --- builders ------------------------------------------------------------------------------------------


class _SignerFields(Struct, frozen=True):
    """What every NuGet signer needs: its certificate, the chain to embed, hash algorithm, signing time."""

    certificate: x509.Certificate | None = None
    chain: tuple[x509.Certificate, ...] = ()
    hash_algorithm: str = "sha256"
    signing_time: datetime | None = None

    def _require_signer(self) -> x509.Certificate:
        if self.certificate is None:
            raise ValueError("no signing certificate was given")
        if self.signing_time is None:
            raise ValueError("no signing time was given")
        _check_hash(self.hash_algorithm)
        return self.certificate

    def _common_attributes(
        self, certificate: x509.Certificate, commitment: bytes, digest: bytes
    ) -> list[bytes]:
        assert self.signing_time is not None
        signing_certificate = signing_certificate_v2_value(certificate, self.hash_algorithm)
        return [
            _attribute(oids.CONTENT_TYPE, _oid(oids.DATA)),
            _attribute(oids.SIGNING_TIME, _signing_time_value(self.signing_time)),
            _attribute(oids.COMMITMENT_TYPE_INDICATION, commitment),
            _attribute(oids.MESSAGE_DIGEST, encode.tlv(0x04, digest)),
            _attribute(oids.SIGNING_CERTIFICATE_V2, signing_certificate),
        ]

    def _signer_info(self, signed_attributes: bytes, signature_value: bytes, unsigned: Sequence[bytes]
                     ) -> tuple[bytes, int]:
        """The SignerInfo DER (RFC 5652 §5.3) and its version. Assembled from DER pieces rather than with
        asn1crypto objects, which cost more than the RSA signature (the bytes are the same; tested)."""
        certificate = self._require_signer()
        sid, version = _signer_identifier(certificate)
        parts = [
            encode.integer(version), sid, _digest_algorithm(self.hash_algorithm),
            b"\xa0" + signed_attributes[1:],  # [0] IMPLICIT SET OF Attribute: the signed SET, retagged
            _RSA_SIGNATURE_ALGORITHM, encode.tlv(0x04, signature_value),
        ]
        if unsigned:
            parts.append(encode.tlv(0xA1, b"".join(unsigned)))  # [1] IMPLICIT, in the order given (as asn1crypto kept)
        return encode.sequence(*parts), version

    def _embedded_chain(self, certificate: x509.Certificate) -> list[x509.Certificate]:
        return _dedupe([certificate, *self.chain])


@lru_cache(maxsize=16)
def _certificate_set(certificate: x509.Certificate, chain: tuple[x509.Certificate, ...]) -> bytes:
    """``certificates [0] IMPLICIT CertificateSet`` of a primary signature: the signer's certificate and chain,
    without duplicates, DER-sorted. The same for every signature of a signer, so made once per chain."""
    return encode.tlv(0xA0, b"".join(sorted(certs.der(c) for c in _dedupe([certificate, *chain]))))


def _dedupe(certificates: Iterable[x509.Certificate]) -> list[x509.Certificate]:
    seen: set[bytes] = set()
    unique: list[x509.Certificate] = []
    for cert in certificates:
        der = certs.der(cert)
        if der not in seen:
            seen.add(der)
            unique.append(cert)
    return unique


class PrimarySignatureBuilder(_SignerFields, frozen=True):
    """Immutable builder for an author or repository primary signature (spec §4.2).

    Start from ``PrimarySignatureBuilder.author()`` or ``.repository(service_index_url)``, set fields with the
    ``with_*`` methods (each returns a new builder), then call ``signed_attributes()`` and ``build()``.
    Everything is checked in those two calls, not when fields are set.
    """

    content: bytes | None = None
    repository: bool = False
    service_index_url: str | None = None
    owners: tuple[str, ...] = ()

    @classmethod
    def author(cls) -> PrimarySignatureBuilder:
        """A builder for an author signature (commitment proof-of-origin)."""
        return cls()

    @classmethod
    def repository_signature(
        cls, service_index_url: str, owners: Sequence[str] = ()
    ) -> PrimarySignatureBuilder:
        """A builder for a repository primary signature (commitment proof-of-receipt + NuGet attributes)."""
        return cls(repository=True, service_index_url=service_index_url, owners=tuple(owners))

    def with_signer(
        self, certificate: x509.Certificate, chain: Sequence[x509.Certificate] = ()
    ) -> PrimarySignatureBuilder:
        """The signing certificate and the chain to embed (leaf may be repeated; duplicates are dropped)."""
        return replace(self, certificate=certificate, chain=tuple(chain))

    def with_hash_algorithm(self, hash_algorithm: str) -> PrimarySignatureBuilder:
        return replace(self, hash_algorithm=hash_algorithm)

    def with_signing_time(self, when: datetime) -> PrimarySignatureBuilder:
        return replace(self, signing_time=when)

    def with_content(self, content: bytes) -> PrimarySignatureBuilder:
        """The signed content (``SignatureContent.to_bytes()``), embedded as ``eContent``."""
        return replace(self, content=content)

    def signed_attributes(self) -> bytes:
        """The DER ``SET OF Attribute`` to raw-sign. ``ValueError`` names what is missing or invalid."""
        certificate = self._require_signer()
        if self.content is None:
            raise ValueError("no signed content was given")
        digest = hashlib.new(self.hash_algorithm, self.content).digest()
        commitment = _PROOF_OF_RECEIPT_VALUE if self.repository else _PROOF_OF_ORIGIN_VALUE
        attributes = self._common_attributes(certificate, commitment, digest)
        attributes += _repository_attributes(self.repository, self.service_index_url, self.owners)
        return encode.set_of(*attributes)

    def build(self, signature_value: bytes, *, timestamp: bytes | None = None,
              signed_attributes: bytes | None = None) -> bytes:
        """The ``.signature.p7s`` bytes: ContentInfo{signedData}. ``timestamp`` is a token ContentInfo DER;
        ``signed_attributes``, what :meth:`signed_attributes` returned for this builder (made again if not given)."""
        if signed_attributes is None:
            signed_attributes = self.signed_attributes()
        certificate = self._require_signer()
        assert self.content is not None
        unsigned = [_timestamp_attribute(timestamp)] if timestamp is not None else []
        signer_info, version = self._signer_info(signed_attributes, signature_value, unsigned)
        signed_data = encode.sequence(
            encode.integer(version),  # RFC 5652 §5.1: v3 iff a SignerInfo is v3 (SKI sid), as spec §4.2 observes
            encode.set_of(_digest_algorithm(self.hash_algorithm)),
            encode.sequence(_DATA_OID, encode.tlv(0xA0, encode.tlv(0x04, self.content))),  # encapContentInfo
            _certificate_set(certificate, self.chain),  # [0] IMPLICIT SET OF, DER-sorted
            encode.set_of(signer_info),
        )
        return encode.sequence(_SIGNED_DATA_OID, encode.tlv(0xA0, signed_data))


def _repository_attributes(repository: bool, url: str | None, owners: Sequence[str]) -> list[bytes]:
    if not repository:
        return []
    if url is None:
        raise ValueError("a repository signature needs a service index URL")
    attributes = [_attribute(oids.NUGET_V3_SERVICE_INDEX_URL, service_index_url_value(url))]
    # spec §4.5: an empty owners list means "no attribute"; a blank owner is an error (package_owners_value).
    if owners:
        attributes.append(_attribute(oids.NUGET_PACKAGE_OWNERS, package_owners_value(owners)))
    return attributes


class CountersignatureBuilder(_SignerFields, frozen=True):
    """Immutable builder for a repository countersignature over a primary signature value (spec §4.6).

    ``signed_attributes(primary_signature_value)`` -> raw-sign -> ``build(...)`` gives the countersigner
    SignerInfo DER; ``nuseal.cms.countersign.add_countersignature`` puts it on the primary signature.
    """

    service_index_url: str | None = None
    owners: tuple[str, ...] = ()

    @classmethod
    def repository(cls, service_index_url: str, owners: Sequence[str] = ()) -> CountersignatureBuilder:
        return cls(service_index_url=service_index_url, owners=tuple(owners))

    def with_signer(
        self, certificate: x509.Certificate, chain: Sequence[x509.Certificate] = ()
    ) -> CountersignatureBuilder:
        return replace(self, certificate=certificate, chain=tuple(chain))

    def with_hash_algorithm(self, hash_algorithm: str) -> CountersignatureBuilder:
        return replace(self, hash_algorithm=hash_algorithm)

    def with_signing_time(self, when: datetime) -> CountersignatureBuilder:
        return replace(self, signing_time=when)

    def signed_attributes(self, primary_signature_value: bytes) -> bytes:
        """DER signed attributes; message-digest = HASH(primary SignerInfo signature octets)."""
        certificate = self._require_signer()
        digest = hashlib.new(self.hash_algorithm, primary_signature_value).digest()
        # NuGet quirk: nuget.org countersignatures carry content-type although RFC 5652 §11.1 forbids it in
        # countersignatures; we write it too, for structural equivalence with the real vectors.
        attributes = self._common_attributes(certificate, _PROOF_OF_RECEIPT_VALUE, digest)
        attributes += _repository_attributes(True, self.service_index_url, self.owners)
        return encode.set_of(*attributes)

    def build(
        self, primary_signature_value: bytes, signature_value: bytes, *, timestamp: bytes | None = None
    ) -> bytes:
        """The countersigner SignerInfo DER; its own timestamp sits inside it (spec §4.6)."""
        signed_attributes = self.signed_attributes(primary_signature_value)
        unsigned = [_timestamp_attribute(timestamp)] if timestamp is not None else []
        return self._signer_info(signed_attributes, signature_value, unsigned)[0]

    def embedded_chain(self) -> list[x509.Certificate]:
        """Certificates to append to the outer SignedData (the countersigner's chain)."""
        return self._embedded_chain(self._require_signer())


# --- editing an encoded primary signature --------------------------------------------------------------


def _load(signature: bytes) -> tuple[cms.ContentInfo, cms.SignedData, cms.SignerInfo]:
    from asn1crypto import cms

    try:
        info = cms.ContentInfo.load(signature)
        if info["content_type"].dotted != oids.SIGNED_DATA:
            raise ValueError("not a SignedData")
        signed_data = info["content"]
        signers = signed_data["signer_infos"]
        if len(signers) != 1:
            raise SignatureFormatError(
                "The package signature file does not contain exactly one primary signature.", NuCode.NU3009
            )
        return info, signed_data, signers[0]
    except (ValueError, TypeError, KeyError) as exc:
        raise SignatureFormatError(
            f"The package signature is invalid or cannot be verified on this platform ({exc}).", NuCode.NU3003
        ) from exc


def primary_signature_value(signature: bytes) -> bytes:
    """The primary SignerInfo's ``signature`` octets (what timestamps and countersignatures cover)."""
    _, _, signer = _load(signature)
    value: bytes = signer["signature"].native
    return value


def _encoded(value: Any) -> bytes:
    """The DER of an asn1crypto value loaded and then edited in place: every part not edited is copied as read,
    and only the edited containers around them are encoded again (as asn1crypto would: fields equal to their
    DEFAULT left out, SET OF values sorted).

    Never ``value.dump()`` on a loaded value: asn1crypto takes any header whose last octet is 0x80 for an
    indefinite length, so a definite length of 128 (``81 80``), 384 (``82 01 80``), ... makes it re-encode the
    whole subtree with ``force``, which costs exponential time in the nesting depth (a signature with timestamp
    tokens and a countersignature never finishes) and would drop a DEFAULT written out (NuGet's ESSCertIDv2
    ``hashAlgorithm``) from signed bytes.
    """
    from asn1crypto import core

    if isinstance(value, core.Choice):
        return _explicit(value, _encoded(value.chosen))
    header: bytes | None = value._header
    if not isinstance(value, core.Sequence | core.SequenceOf):
        if header is None:
            return _dump(value)  # made here, never loaded: nothing below it to re-encode
        return header + bytes(value.contents) + bytes(value._trailer)
    children = value.children
    if header is not None and (children is None or not value._is_mutated()):
        return header + bytes(value._contents) + bytes(value._trailer)
    if children is None:
        contents = bytes(value._contents)
    elif isinstance(value, core.Sequence):
        parts: list[bytes] = []
        fields = value._fields or [(None, None, None)] * len(children)
        for child, (_, spec, params) in zip(children, fields, strict=False):
            if child is None:
                continue
            part = b"".join(child[3:6]) if isinstance(child, tuple) else _encoded(child)
            if params and "default" in params and _dump(spec(**params)) == part:
                continue
            parts.append(part)
        contents = b"".join(parts)
    else:
        parts = [b"".join(c[3:6]) if isinstance(c, tuple) else _encoded(c) for c in children]
        contents = b"".join(sorted(parts) if isinstance(value, core.SetOf) else parts)
    if value.tag >= 31:
        raise ValueError(f"cannot encode tag number {value.tag}")
    return _explicit(value, bytes([value.class_ << 6 | 0x20 | value.tag]) + encode.length(len(contents)) + contents)


def _explicit(value: Any, encoded: bytes) -> bytes:
    """``encoded`` inside the EXPLICIT tags of ``value``'s field, outermost last in the list (as asn1crypto)."""
    for class_, tag in value.explicit or ():
        encoded = bytes([class_ << 6 | 0x20 | tag]) + encode.length(len(encoded)) + encoded
    return encoded


def _with_unsigned(signer: cms.SignerInfo, attributes: list[cms.CMSAttribute]) -> None:
    from asn1crypto import cms

    if attributes:
        # From DER contents, not from the objects, which asn1crypto would dump (see ``_encoded``); sorted, as
        # asn1crypto encodes a SET OF.
        signer["unsigned_attrs"] = cms.CMSAttributes(contents=b"".join(sorted(_encoded(a) for a in attributes)))
    else:
        signer["unsigned_attrs"] = None  # asn1crypto: None drops an OPTIONAL field


def _existing_unsigned(signer: cms.SignerInfo) -> list[cms.CMSAttribute]:
    from asn1crypto import cms, core

    unsigned = signer["unsigned_attrs"]
    if isinstance(unsigned, core.Void):  # never touch .native here: it decodes every nested token
        return []
    return [cms.CMSAttribute.load(_encoded(attribute)) for attribute in unsigned]


def add_timestamp(signature: bytes, token: bytes) -> bytes:
    """Add a signature-time-stamp-token unsigned attribute to the primary SignerInfo (spec §5.1).

    ``token`` must be a timestamp over HASH_ts(``primary_signature_value(signature)``); the caller obtains it.
    """
    from asn1crypto import cms

    info, _, signer = _load(signature)
    _with_unsigned(signer, [*_existing_unsigned(signer), cms.CMSAttribute.load(_timestamp_attribute(token))])
    return _encoded(info)


def add_countersignature_asn1(
    signature: bytes, countersigner_info: bytes, certificates: Sequence[x509.Certificate]
) -> bytes:
    """Attach a countersigner SignerInfo (unsigned attr 1.2.840.113549.1.9.6), append its chain (§4.6), with
    asn1crypto objects. Callers use :func:`nuseal.cms.countersign.add_countersignature` (the same bytes by DER
    offsets); this is the reference it is tested against and what it hands the inputs it does not read itself (so
    that errors keep asn1crypto's wording)."""
    from asn1crypto import cms

    info, signed_data, signer = _load(signature)
    counter = _attribute(oids.COUNTERSIGNATURE, countersigner_info)
    _with_unsigned(signer, [*_existing_unsigned(signer), cms.CMSAttribute.load(counter)])
    _append_certificates(signed_data, certificates)
    return _encoded(info)


def _append_certificates(signed_data: cms.SignedData, certificates: Sequence[x509.Certificate]) -> None:
    """Add the missing certificates, keeping the present ones as they are encoded and in their order.

    A DER-sorted set (what nuseal and .NET write) stays sorted, as on nuget.org's countersigned packages; any other
    order is kept and the new ones are appended. Either way removing them again gives back the author-signed bytes
    (docs/decisions.md "Repository countersignatures are reversible").
    """
    present = _certificate_ders(signed_data)
    added = [der for der in dict.fromkeys(c.public_bytes(Encoding.DER) for c in certificates) if der not in present]
    if added:
        _set_certificates(signed_data, sorted([*present, *added]) if present == sorted(present) else [*present, *added])


def _certificate_ders(signed_data: cms.SignedData) -> list[bytes]:
    from asn1crypto import core

    existing = signed_data["certificates"]
    return [] if isinstance(existing, core.Void) else [_encoded(c) for c in existing]


def _set_certificates(signed_data: cms.SignedData, ders: Sequence[bytes]) -> None:
    from asn1crypto import cms

    # ``contents=`` keeps the given order: building the SET from values would DER-sort it.
    signed_data["certificates"] = cms.CertificateSet(contents=b"".join(ders)) if ders else None


def countersigner_commitments(signer_info: cms.SignerInfo) -> list[str]:
    """The commitment-type OIDs of a (counter)signer's signed attributes (empty when absent)."""
    from asn1crypto import core

    found: list[str] = []
    for attribute in signer_info["signed_attrs"]:
        if attribute["type"].dotted != oids.COMMITMENT_TYPE_INDICATION:
            continue
        for value in attribute["values"]:
            sequence = core.Sequence.load(_encoded(value))
            found.append(core.ObjectIdentifier.load(_encoded(sequence[0])).dotted)
    return found


def strip_repository_countersignatures_asn1(signature: bytes) -> bytes:
    """Remove every countersigner with proof-of-receipt and re-encode (NuGet ``RemoveRepositorySignatures``), with
    asn1crypto objects. Callers use :func:`nuseal.cms.countersign.strip_repository_countersignatures` (the same bytes
    by DER offsets, cached per input); this is the reference it is tested against and what it hands the inputs it does
    not read itself (so that errors keep asn1crypto's wording).

    Other countersigners and the timestamp stay. Unlike NuGet, the certificates that only the removed
    countersigners need (their chains as found in ``certificates``) are dropped too, and the others keep their
    encoding and order, so that this undoes ``add_countersignature_asn1`` byte for byte (a certificate the remaining
    signers' chains use, such as a root both chains share, stays).
    """
    from asn1crypto import cms

    info, signed_data, signer = _load(signature)
    kept: list[cms.CMSAttribute] = []
    removed: list[cms.SignerInfo] = []
    remaining: list[cms.SignerInfo] = [signer]
    for attribute in _existing_unsigned(signer):
        if attribute["type"].dotted != oids.COUNTERSIGNATURE:
            kept.append(attribute)
            continue
        values: list[bytes] = []
        for value in attribute["values"]:
            counter = cms.SignerInfo.load(_encoded(value))
            if oids.PROOF_OF_RECEIPT in countersigner_commitments(counter):
                removed.append(counter)
            else:
                values.append(_encoded(value))
                remaining.append(counter)
        if values:
            kept.append(cms.CMSAttribute.load(encode.sequence(_oid(oids.COUNTERSIGNATURE), encode.set_of(*values))))
    _with_unsigned(signer, kept)
    present = _certificate_ders(signed_data)
    needed = {der for s in remaining for der in _bag_chain(present, s)}
    unneeded = {der for s in removed for der in _bag_chain(present, s)} - needed
    if unneeded:
        _set_certificates(signed_data, [der for der in present if der not in unneeded])
    return _encoded(info)


def _bag_chain(bag: Sequence[bytes], signer: cms.SignerInfo) -> list[bytes]:
    """The DER certificates of ``bag`` that form ``signer``'s chain: its certificate (by issuer and serial or by
    subject key identifier), then issuers matched by name up to a self-issued one. Every candidate issuer of a
    name is followed (a cross-signed or renewed CA), so nothing a chain could use is counted as unused."""
    sid = signer["sid"]
    if sid.name == "issuer_and_serial_number":
        return chain_in_bag(bag, issuer_serial=(sid.chosen["issuer"].hashable, sid.chosen["serial_number"].native))
    return chain_in_bag(bag, key_identifier=sid.chosen.native)


def chain_in_bag(
    bag: Sequence[bytes], *, issuer_serial: tuple[str, int] | None = None, key_identifier: bytes | None = None
) -> list[bytes]:
    """:func:`_bag_chain` for a signer identified by its issuer's prepared name (asn1crypto's ``Name.hashable``)
    and serial number, or else by its subject key identifier (shared with :mod:`nuseal.cms.countersign`)."""
    facts = {der: _chain_facts(der) for der in bag}
    if issuer_serial is not None:
        issuer, serial = issuer_serial
        todo = [der for der, f in facts.items() if f.issuer == issuer and f.serial == serial]
    else:
        todo = [der for der, f in facts.items() if f.key_identifier == key_identifier]
    chain: list[bytes] = []
    while todo:
        der = todo.pop()
        if der in chain:
            continue
        chain.append(der)
        issuer = facts[der].issuer
        if facts[der].subject == issuer:  # self-issued
            continue
        todo += [other for other, f in facts.items() if f.subject == issuer and other not in chain]
    return chain


class _ChainFacts(NamedTuple):
    subject: str
    issuer: str
    serial: int
    key_identifier: bytes | None


@lru_cache(maxsize=256)
def _chain_facts(der: bytes) -> _ChainFacts:
    """What chain matching reads of a certificate, per DER (a feed re-signing thousands of packages meets the same
    few certificates every time). Names as asn1crypto's ``hashable``: the RFC 5280 §7.1 prepared values its ``==``
    compares, prepared once instead of on every comparison."""
    from asn1crypto import x509 as asn1_x509

    cert = asn1_x509.Certificate.load(der)
    return _ChainFacts(cert.subject.hashable, cert.issuer.hashable, cert.serial_number, cert.key_identifier)


class PrimaryFacts(NamedTuple):
    """What repository signing reads of an existing primary signature before editing it, from one parse."""

    commitments: tuple[str, ...]  # commitment-type OIDs of the primary signer
    repository_countersigners: int  # countersigners with proof-of-receipt
    signature_value: bytes  # the primary SignerInfo's signature octets


def primary_facts(signature: bytes) -> PrimaryFacts:
    """:func:`primary_commitments`, :func:`repository_countersigner_count` and :func:`primary_signature_value` in
    one parse (each alone parses the signature again)."""
    _, _, signer = _load(signature)
    value: bytes = signer["signature"].native
    return PrimaryFacts(tuple(countersigner_commitments(signer)), _repository_countersigners(signer), value)


def repository_countersigner_count(signature: bytes) -> int:
    """How many countersigners with proof-of-receipt the primary signature carries."""
    _, _, signer = _load(signature)
    return _repository_countersigners(signer)


def _repository_countersigners(signer: cms.SignerInfo) -> int:
    from asn1crypto import cms

    count = 0
    for attribute in _existing_unsigned(signer):
        if attribute["type"].dotted == oids.COUNTERSIGNATURE:
            for value in attribute["values"]:
                if oids.PROOF_OF_RECEIPT in countersigner_commitments(cms.SignerInfo.load(_encoded(value))):
                    count += 1
    return count


def primary_commitments(signature: bytes) -> list[str]:
    """Commitment-type OIDs on the primary SignerInfo (proof-of-origin: author, -receipt: repository)."""
    _, _, signer = _load(signature)
    return countersigner_commitments(signer)
