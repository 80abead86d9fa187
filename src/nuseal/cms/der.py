"""Reading CMS structures the way .NET's ``SignedCms.Decode`` does: eagerly, with raw values where .NET keeps them raw.

Every field .NET's decoder reads (``SignedDataAsn``, ``SignerInfoAsn``, ``AttributeAsn``: versions, algorithm
identifiers, signer identifiers, attribute types and value sets, signatures) is read at load time, so a damaged
structure fails at the load boundary with a ``ValueError`` and never later. What .NET keeps raw (attribute values,
algorithm parameters, certificates) is kept as DER bytes here too, and decoded only by the rule that needs it.

Two readers give the same fields (:class:`SignedDataFields`, :class:`SignerFields`):

* the DER walker (:func:`read_signed_data`, :func:`read_signer_info`): offsets over the bytes, no objects. It
  accepts only what it can read exactly as asn1crypto does (expected tags in order, definite lengths, primitive
  strings) and raises :class:`Unusual` for anything else, malformed or merely unusual (BER, constructed strings);
* asn1crypto (:func:`load_signed_data`, :func:`signer_info_fields`), walked eagerly: what judges everything the
  walker passes on. Its errors and their wording are the verdicts' (NU3003, NU3031, NU3021 reasons).

So the fields, the NU codes and the messages are asn1crypto's for every input (a differential test over thousands
of mutated signatures checks it), while the signatures real packages carry are read without building asn1crypto
objects (half of verification's CPU) or importing it (start-up). Hand-written because no library exposes this
split: asn1crypto types attribute values by OID (stricter than .NET on values NuGet never reads) and has no
offset-based splitter (slicing per value would make a hostile SET of many tiny values quadratic).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from nuseal import oids
from nuseal.record import Struct

# The generic walker (TLV splitting, OIDs, integers, names) lives in ``nuseal.x509.der``, which certificates need
# too; it is re-exported here so that CMS code reads ``der.tlvs``, ``der.name_text``.
from nuseal.x509.der import ASN1_ERRORS, contents_of, dotted, integer_of, name_text, oid_of, tlvs

if TYPE_CHECKING:
    from asn1crypto import cms, core

__all__ = ["ASN1_ERRORS", "DECODE_ERRORS", "Algorithm", "Attribute", "SignedDataFields", "SignerFields", "Unusual",
           "algorithm", "attributes", "children", "contents_of", "dotted", "encapsulated_content", "integer_of",
           "load_signed_data", "name_text", "octet_string", "oid_of", "read_signed_data", "read_signer_info",
           "reason", "signed_data_fields", "signer_info_fields", "simple_time", "tlvs", "values_of", "where"]

_SEQUENCE, _SET, _OCTET_STRING = 0x30, 0x31, 0x04
_CONTEXT_0, _CONTEXT_1 = 0xA0, 0xA1


class Unusual(Exception):
    """The DER walker met something it does not read itself; asn1crypto judges the input instead."""


#: What the DER walker raises: the input goes to asn1crypto then.
DECODE_ERRORS: tuple[type[Exception], ...] = (Unusual, *ASN1_ERRORS)


def reason(exc: BaseException) -> str:
    """A one-line account of a parse error for a finding's message (asn1crypto's messages span lines)."""
    lines = str(exc).strip().splitlines()
    text = lines[0].strip() if lines else type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


@contextmanager
def where(name: str) -> Iterator[None]:
    """Prefix a parse error raised inside with the field it happened in (``SignerInfo signedAttrs: ...``)."""
    try:
        yield
    except ASN1_ERRORS as exc:
        raise ValueError(f"{name}: {reason(exc)}") from exc


class Algorithm(Struct, frozen=True):
    """An AlgorithmIdentifier as .NET reads it: the OID and the raw parameters value (None when absent)."""

    oid: str
    parameters: bytes | None


def algorithm(contents: bytes) -> Algorithm:
    """An AlgorithmIdentifier from its SEQUENCE contents."""
    parts = tlvs(contents)
    if not 1 <= len(parts) <= 2:
        raise ValueError("malformed AlgorithmIdentifier")
    return Algorithm(oid_of(parts[0]), parts[1] if len(parts) == 2 else None)


class Attribute(Struct, frozen=True):
    """A CMS attribute as .NET's ``AttributeAsn`` holds it: the type OID and the DER of each value."""

    oid: str
    values: tuple[bytes, ...]


def _attribute(oid: str, contents: bytes) -> Attribute:
    """An Attribute from its SEQUENCE contents, once its type OID is known."""
    with where(f"attribute {oid}"):
        parts = tlvs(contents)
        if len(parts) != 2 or parts[1][0] != _SET:
            raise ValueError("not a type and a SET of values")
        return Attribute(oid, tuple(tlvs(contents_of(parts[1]))))


def values_of(attrs: tuple[Attribute, ...] | None, oid: str) -> list[tuple[bytes, ...]]:
    """The value sets of every attribute of type ``oid`` (one tuple per attribute occurrence)."""
    return [a.values for a in attrs or () if a.oid == oid]


class SignerFields(Struct, frozen=True):
    """One SignerInfo, decoded as .NET's ``SignerInfoAsn`` (+ its signed attributes set) is."""

    version: int
    issuer: bytes | None  # raw DER of the IssuerAndSerialNumber issuer Name
    serial_number: int | None
    subject_key_identifier: bytes | None
    digest_algorithm: Algorithm
    signed_attributes: tuple[Attribute, ...] | None
    signed_attributes_der: bytes | None  # the set re-tagged as SET OF, as the signature covers it (RFC 5652 §5.4)
    signature_algorithm: Algorithm
    signature: bytes
    unsigned_attributes: tuple[Attribute, ...] | None
    #: The SignerInfo's own DER (what ``nuseal inspect`` decodes further).
    raw: bytes = b""


class SignedDataFields(Struct, frozen=True):
    """A SignedData (inside its ContentInfo), decoded as .NET's ``SignedDataAsn`` is."""

    version: int
    content_type: str  # eContentType
    content: bytes | None  # see ``encapsulated_content``; None when absent or unreadable (then see content_error)
    content_error: str | None  # why the encapsulated content cannot be read (the caller decides what that means)
    certificates: tuple[bytes, ...]  # the DER of each X.509 certificate choice, in order (other choices skipped)
    signer_infos: tuple[SignerFields, ...]


# --- the DER walker -----------------------------------------------------------------------------------------------


def _tag(tlv: bytes) -> int:
    return tlv[0]


def _definite(tlv: bytes) -> bytes:
    """The contents of a definite-length value with a one-octet tag; ``Unusual`` for other forms."""
    if len(tlv) < 2 or tlv[0] & 0x1F == 0x1F or tlv[1] == 0x80:
        raise Unusual
    return contents_of(tlv)


def children(tlv: bytes, tag: int) -> list[bytes]:
    """The values inside a definite-length constructed value tagged ``tag``, each with a one-octet tag and a
    definite length.

    One pass over the bytes for the forms every real signature uses (lengths in at most two octets), reading each
    header once where ``_definite`` + ``tlvs`` read it twice: this runs for every structure of every signature and
    timestamp token. Any other form goes through ``_children_by_parts``, which reads it or raises as before."""
    size = len(tlv)
    if size < 2 or tlv[0] != tag:
        raise Unusual
    first = tlv[1]
    if first < 0x80:
        position, stop = 2, 2 + first
    elif first == 0x81 and size >= 3:
        position, stop = 3, 3 + tlv[2]
    elif first == 0x82 and size >= 4:
        position, stop = 4, 4 + (tlv[2] << 8 | tlv[3])
    else:
        return _children_by_parts(tlv, tag)
    if stop != size:
        return _children_by_parts(tlv, tag)
    parts: list[bytes] = []
    while position < size:
        if position + 2 > size or tlv[position] & 0x1F == 0x1F:
            return _children_by_parts(tlv, tag)
        length = tlv[position + 1]
        if length < 0x80:
            end = position + 2 + length
        elif length == 0x81 and position + 3 <= size:
            end = position + 3 + tlv[position + 2]
        elif length == 0x82 and position + 4 <= size:
            end = position + 4 + (tlv[position + 2] << 8 | tlv[position + 3])
        else:
            return _children_by_parts(tlv, tag)
        if end > size:
            return _children_by_parts(tlv, tag)
        parts.append(tlv[position:end])
        position = end
    return parts


def _children_by_parts(tlv: bytes, tag: int) -> list[bytes]:
    """``children`` for every form: the contents split by ``tlvs``, then each value's form checked."""
    if not tlv or tlv[0] != tag:
        raise Unusual
    parts = tlvs(_definite(tlv))
    for part in parts:
        if part[0] & 0x1F == 0x1F or part[1] == 0x80:
            raise Unusual
    return parts


#: The last few ContentInfos the walker read: a timestamp token is read when its response arrives and again
#: by the token rules (``nuseal.timestamp.client``), a few microseconds to look up against ~0.2 ms to walk.
_recent: dict[bytes, SignedDataFields] = {}
_RECENT_MAX = 16


def read_signed_data(data: bytes) -> SignedDataFields:
    """A ContentInfo holding SignedData, read by the DER walker; ``Unusual`` (or ``ValueError``) when it is not
    one the walker reads itself (see the module doc)."""
    known = _recent.get(data)
    if known is not None:
        return known
    fields = _read_signed_data(bytes(data))
    if len(_recent) >= _RECENT_MAX:
        _recent.clear()  # a handful of entries: dropping them all is simpler than an LRU and as good here
    _recent[bytes(data)] = fields
    return fields


def _read_signed_data(data: bytes) -> SignedDataFields:
    outer = children(data, _SEQUENCE)
    if len(outer) != 2 or _tag(outer[0]) != 0x06 or _tag(outer[1]) != _CONTEXT_0:
        raise Unusual
    if oid_of(outer[0]) != oids.SIGNED_DATA:
        raise Unusual
    wrapped = children(outer[1], _CONTEXT_0)
    if len(wrapped) != 1:
        raise Unusual
    fields = children(wrapped[0], _SEQUENCE)
    tags = [_tag(f) for f in fields]
    if tags[:3] != [0x02, _SET, _SEQUENCE] or tags[-1] != _SET or tags[3:-1] not in ([], [0xA0], [0xA1],
                                                                                   [0xA0, 0xA1]):
        raise Unusual
    version = integer_of(fields[0])
    for digest_algorithm in children(fields[1], _SET):
        if _tag(digest_algorithm) != _SEQUENCE:
            raise Unusual
        algorithm(_definite(digest_algorithm))
    encap = fields[2]
    encap_parts = children(encap, _SEQUENCE)
    if not encap_parts or _tag(encap_parts[0]) != 0x06:
        raise Unusual
    if len(encap_parts) > 2 or (len(encap_parts) == 2 and (
            _tag(encap_parts[1]) != _CONTEXT_0 or len(children(encap_parts[1], _CONTEXT_0)) != 1)):
        raise Unusual  # asn1crypto words what is wrong with it
    content_type = oid_of(encap_parts[0])
    content, content_error = _content_or_error(encap, encap_parts)
    certificates: list[bytes] = []
    if tags[3:4] == [0xA0]:
        for choice in children(fields[3], 0xA0):
            if _tag(choice) == _SEQUENCE:
                certificates.append(choice)
            elif _tag(choice) not in (0xA0, 0xA1, 0xA2, 0xA3):
                raise Unusual
    signer_infos = tuple(read_signer_info(info) for info in children(fields[-1], _SET))
    return SignedDataFields(version, content_type, content, content_error, tuple(certificates), signer_infos)


def _content_or_error(encap: bytes, encap_parts: list[bytes]) -> tuple[bytes | None, str | None]:
    if len(encap_parts) == 2:
        inner = children(encap_parts[1], _CONTEXT_0)
        if len(inner) == 1 and _tag(inner[0]) == 0x24:
            raise Unusual  # a constructed OCTET STRING: asn1crypto concatenates it
    try:
        return encapsulated_content(encap), None
    except ASN1_ERRORS as exc:
        return None, reason(exc)


def read_signer_info(raw: bytes) -> SignerFields:
    """One SignerInfo by the DER walker; ``Unusual`` (or ``ValueError``) for what asn1crypto must judge."""
    fields = children(raw, _SEQUENCE)
    tags = [_tag(f) for f in fields]
    has_signed = len(tags) > 3 and tags[3] == _CONTEXT_0
    expected = [0x02, tags[1] if tags[1:2] in ([_SEQUENCE], [0x80]) else -1, _SEQUENCE,
                *([_CONTEXT_0] if has_signed else []), _SEQUENCE, _OCTET_STRING]
    if tags[: len(expected)] != expected or tags[len(expected):] not in ([], [_CONTEXT_1]):
        raise Unusual
    sid = fields[1]
    issuer: bytes | None = None
    serial: int | None = None
    key_id: bytes | None = None
    if _tag(sid) == _SEQUENCE:
        parts = children(sid, _SEQUENCE)
        if len(parts) != 2 or _tag(parts[0]) != _SEQUENCE or _tag(parts[1]) != 0x02:
            raise Unusual
        issuer, serial = parts[0], integer_of(parts[1])
    else:
        key_id = _definite(sid)
    position = 3
    signed_attributes: tuple[Attribute, ...] | None = None
    signed_der: bytes | None = None
    if has_signed:
        signed_attributes = _attributes(fields[3])
        signed_der = b"\x31" + fields[3][1:]
        position = 4
    signature_algorithm = fields[position]
    signature = fields[position + 1]
    unsigned = fields[position + 2] if len(fields) > position + 2 else None
    return SignerFields(
        version=integer_of(fields[0]),
        issuer=issuer,
        serial_number=serial,
        subject_key_identifier=key_id,
        digest_algorithm=algorithm(_definite(fields[2])),
        signed_attributes=signed_attributes,
        signed_attributes_der=signed_der,
        signature_algorithm=algorithm(_definite(signature_algorithm)),
        signature=_definite(signature),
        unsigned_attributes=None if unsigned is None else _attributes(unsigned),
        raw=raw,
    )


def _attributes(tlv: bytes) -> tuple[Attribute, ...]:
    found: list[Attribute] = []
    for attribute in children(tlv, _tag(tlv)):
        parts = children(attribute, _SEQUENCE)
        if not parts or _tag(parts[0]) != 0x06 or len(parts) != 2 or _tag(parts[1]) != _SET:
            raise Unusual
        # The SEQUENCE is split once (above), not again by _attribute: this runs for every signed attribute of
        # every signature and timestamp token. Same checks, same errors (_attribute's, for the value SET).
        oid = oid_of(parts[0])
        try:  # ``where``'s wording, without a context manager per attribute
            values = tuple(tlvs(contents_of(parts[1])))
        except ASN1_ERRORS as exc:
            raise ValueError(f"attribute {oid}: {reason(exc)}") from exc
        found.append(Attribute(oid, values))
    return tuple(found)


def octet_string(tlv: bytes) -> bytes:
    """A primitive OCTET STRING's octets (``Unusual`` for other forms)."""
    if not tlv or tlv[0] != _OCTET_STRING:
        raise Unusual
    return _definite(tlv)


_Z = ord("Z")
_DOT = ord(".")


def _time_fields(tag: int, text: bytes) -> tuple[int, int, int, int, int, int, bytes | None] | None:
    """The fields of a UTCTime ``YYMMDDhhmmssZ`` or GeneralizedTime ``YYYYMMDDhhmmss[.f{1,6}]Z``, exactly the forms
    the regular expressions ``[0-9]{2}{6}Z`` and ``[0-9]{4}([0-9]{2}){5}(\\.[0-9]{1,6})?Z`` match (``bytes.isdigit``
    is true for ASCII digits only, as ``[0-9]``); None for any other text. Plain slicing: compiling those two
    patterns cost a verification's start-up more than all the times it reads (issue 12)."""
    if not text or text[-1] != _Z:
        return None
    if tag == 0x17:
        if len(text) != 13 or not text[:12].isdigit():
            return None
        year, fraction = int(text[0:2]), None
        rest = text[2:12]
    else:
        if len(text) < 15 or not text[:14].isdigit():
            return None
        fraction = None
        if len(text) > 15:
            fraction = text[15:-1]
            if text[14] != _DOT or not 1 <= len(fraction) <= 6 or not fraction.isdigit():
                return None
        year = int(text[0:4])
        rest = text[4:14]
    return (year, int(rest[0:2]), int(rest[2:4]), int(rest[4:6]), int(rest[6:8]), int(rest[8:10]), fraction)


def simple_time(tlv: bytes) -> datetime:
    """A UTCTime ``YYMMDDhhmmssZ`` or GeneralizedTime ``YYYYMMDDhhmmss[.ffffff]Z`` (what DER and real signatures
    use) as the aware datetime asn1crypto gives; ``Unusual`` for every other form, which asn1crypto reads."""
    if not tlv or tlv[0] not in (0x17, 0x18):
        raise Unusual
    text = _definite(tlv)
    fields = _time_fields(tlv[0], text)
    if fields is None:
        raise Unusual
    year, month, day, hour, minute, second, fraction = fields
    if tlv[0] == 0x17:
        year += 2000 if year < 50 else 1900
    if year == 0:
        raise Unusual  # asn1crypto's extended_datetime
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        raise Unusual from None
    if fraction:
        moment += timedelta(microseconds=int(fraction) * 10 ** (6 - len(fraction)))
    return moment


def encapsulated_content(encap: bytes) -> bytes | None:
    """The encapsulated content as .NET's ``SignedCms.GetContent`` gives it: the OCTET STRING's octets whatever the
    eContentType (it is not compared with anything, as in .NET); a non-OCTET STRING value raw, except for id-data.
    ``encap`` is the EncapsulatedContentInfo TLV."""
    parts = tlvs(contents_of(encap))
    if len(parts) == 1:
        return None
    if len(parts) != 2 or parts[1][0] != 0xA0:
        raise ValueError("malformed EncapsulatedContentInfo")
    inner = tlvs(contents_of(parts[1]))
    if len(inner) != 1:
        raise ValueError("malformed EncapsulatedContentInfo content")
    if inner[0][0] == _OCTET_STRING:
        try:
            return octet_string(inner[0])
        except Unusual:
            pass
    if inner[0][0] in (_OCTET_STRING, _OCTET_STRING | 0x20):
        from asn1crypto import core  # BER forms: asn1crypto reads (and concatenates) them

        return bytes(core.OctetString.load(inner[0]).native)
    if oid_of(parts[0]) == oids.DATA:
        raise ValueError("id-data content is not an OCTET STRING")
    return inner[0]


# --- asn1crypto, the judge of what the walker does not read ------------------------------------------------------


def load_signed_data(der_bytes: bytes) -> cms.SignedData:
    """Decode a ContentInfo that must hold SignedData with asn1crypto, walking every field .NET's decoder reads;
    asn1crypto errors or ``ValueError`` when it does not."""
    from asn1crypto import cms

    content_info = cms.ContentInfo.load(der_bytes, strict=True)
    if content_info["content_type"].dotted != oids.SIGNED_DATA:
        raise ValueError("not SignedData")
    signed_data = content_info["content"]
    _walk_signed_data(signed_data)
    for signer_info in signed_data["signer_infos"]:
        signer_info_fields(signer_info)
    return signed_data


def signed_data_fields(data: bytes) -> SignedDataFields:
    """The SignedData of ContentInfo ``data``: by the DER walker when it reads it, else by asn1crypto (whose errors
    are raised: asn1crypto's own or ``ValueError`` naming the field)."""
    try:
        return read_signed_data(data)
    except DECODE_ERRORS:
        pass
    from asn1crypto import core

    signed_data = load_signed_data(data)
    certificates_field = signed_data["certificates"]
    certificates = () if not certificates_field else tuple(
        bytes(c.chosen.dump()) for c in certificates_field if c.name == "certificate")
    content: bytes | None = None
    content_error: str | None = None
    try:
        content = encapsulated_content(bytes(signed_data["encap_content_info"].dump()))
    except ASN1_ERRORS as exc:
        content_error = reason(exc)
    version = signed_data["version"].native
    return SignedDataFields(
        version=_version(version),
        content_type=signed_data["encap_content_info"]["content_type"].dotted,
        content=content,
        content_error=content_error,
        certificates=certificates,
        signer_infos=tuple(signer_info_fields(info) for info in signed_data["signer_infos"]),
    ) if not isinstance(signed_data, core.Void) else _never()


def _never() -> SignedDataFields:
    raise ValueError("not SignedData")


def _version(native: Any) -> int:
    return int(native) if isinstance(native, int) else int(str(native).removeprefix("v"))


def _walk_signed_data(signed_data: cms.SignedData) -> None:
    """Touch every SignedData field .NET decodes (the signer infos are walked by ``signer_info_fields``)."""
    from asn1crypto import core

    with where("SignedData version"):
        _ = signed_data["version"].native
    with where("SignedData digestAlgorithms"):
        for digest_algorithm in signed_data["digest_algorithms"]:
            algorithm(bytes(digest_algorithm.contents))
    with where("SignedData encapContentInfo"):
        _ = signed_data["encap_content_info"]["content_type"].dotted
    with where("SignedData certificates"):
        certificates = signed_data["certificates"]
        if not isinstance(certificates, core.Void):
            for choice in certificates:
                _ = choice.name
    with where("SignedData crls"):
        _ = signed_data["crls"]


def attributes(value: core.Asn1Value) -> tuple[Attribute, ...] | None:
    """Every attribute of an asn1crypto signed/unsigned attribute set in encoded order; None when it is absent."""
    from asn1crypto import core

    if isinstance(value, core.Void):
        return None
    return tuple(_attribute(attribute["type"].dotted, bytes(attribute.contents)) for attribute in value)


def signer_info_fields(signer_info: cms.SignerInfo) -> SignerFields:
    """One asn1crypto SignerInfo read eagerly (``ValueError`` naming the field when something is malformed)."""
    with where("SignerInfo version"):
        version = signer_info["version"].native
    issuer: bytes | None = None
    serial: int | None = None
    key_id: bytes | None = None
    with where("SignerInfo sid"):
        sid = signer_info["sid"]
        if sid.name == "issuer_and_serial_number":
            parts = tlvs(bytes(sid.chosen.contents))
            if len(parts) != 2 or parts[0][0] != _SEQUENCE:
                raise ValueError("malformed IssuerAndSerialNumber")
            issuer, serial = parts[0], integer_of(parts[1])
        else:
            key_id = bytes(sid.chosen.native)
    with where("SignerInfo digestAlgorithm"):
        digest_algorithm = algorithm(bytes(signer_info["digest_algorithm"].contents))
    with where("SignerInfo signedAttrs"):
        signed = signer_info["signed_attrs"]
        signed_attributes = attributes(signed)
        signed_der = None if signed_attributes is None else b"\x31" + bytes(signed.dump())[1:]
    with where("SignerInfo signatureAlgorithm"):
        signature_algorithm = algorithm(bytes(signer_info["signature_algorithm"].contents))
    with where("SignerInfo signature"):
        signature = bytes(signer_info["signature"].native)
    with where("SignerInfo unsignedAttrs"):
        unsigned_attributes = attributes(signer_info["unsigned_attrs"])
    return SignerFields(
        version=_version(version),
        issuer=issuer,
        serial_number=serial,
        subject_key_identifier=key_id,
        digest_algorithm=digest_algorithm,
        signed_attributes=signed_attributes,
        signed_attributes_der=signed_der,
        signature_algorithm=signature_algorithm,
        signature=signature,
        unsigned_attributes=unsigned_attributes,
        raw=bytes(signer_info.dump()),
    )
