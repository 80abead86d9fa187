"""Reading CMS structures the way .NET's ``SignedCms.Decode`` does: eagerly, with raw values where .NET keeps them raw.

asn1crypto parses lazily: a malformed field raises only when something first touches it, which can be long after
the load that was supposed to judge the signature. The walkers here touch, at load time, every field .NET's
decoder reads (``SignedDataAsn``, ``SignerInfoAsn``, ``AttributeAsn``: versions, algorithm identifiers, signer
identifiers, attribute types and value sets, signatures), so a damaged structure fails at the load boundary with
a ``ValueError`` and later accesses hit asn1crypto's cache. What .NET keeps raw (attribute values, algorithm
parameters, certificates) is kept as DER bytes here too, and decoded only by the rule that needs it.

Hand-written because no library exposes this split: asn1crypto types attribute values by OID (stricter than .NET
on values NuGet never reads) and has no offset-based splitter (slicing per value would make a hostile SET of many
tiny values quadratic).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from asn1crypto import cms, core

from nuseal import oids

# The generic walker (TLV splitting, OIDs, integers, names) lives in ``nuseal.x509.der``, which certificates need
# too; it is re-exported here so that CMS code reads ``der.tlvs``, ``der.name_text``.
from nuseal.x509.der import ASN1_ERRORS, contents_of, integer_of, name_text, oid_of, tlvs

__all__ = ["ASN1_ERRORS", "Algorithm", "Attribute", "SignerFields", "algorithm", "attributes", "contents_of",
           "encapsulated_content", "integer_of", "name_text", "oid_of", "read_signer_info", "reason", "tlvs",
           "values_of", "walk_signed_data", "where"]

_SEQUENCE, _SET, _OCTET_STRING = 0x30, 0x31, 0x04


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


@dataclass(frozen=True)
class Algorithm:
    """An AlgorithmIdentifier as .NET reads it: the OID and the raw parameters value (None when absent)."""

    oid: str
    parameters: bytes | None


def algorithm(value: core.Asn1Value) -> Algorithm:
    parts = tlvs(bytes(value.contents))
    if not 1 <= len(parts) <= 2:
        raise ValueError("malformed AlgorithmIdentifier")
    return Algorithm(oid_of(parts[0]), parts[1] if len(parts) == 2 else None)


@dataclass(frozen=True)
class Attribute:
    """A CMS attribute as .NET's ``AttributeAsn`` holds it: the type OID and the DER of each value."""

    oid: str
    values: tuple[bytes, ...]


def attributes(value: core.Asn1Value) -> tuple[Attribute, ...] | None:
    """Every attribute of a signed/unsigned attribute set in encoded order; None when the set is absent."""
    if isinstance(value, core.Void):
        return None
    found: list[Attribute] = []
    for attribute in value:
        oid = attribute["type"].dotted  # parses the OID; the values stay raw below
        with where(f"attribute {oid}"):
            parts = tlvs(bytes(attribute.contents))
            if len(parts) != 2 or parts[1][0] != _SET:
                raise ValueError("not a type and a SET of values")
            found.append(Attribute(oid, tuple(tlvs(contents_of(parts[1])))))
    return tuple(found)


def values_of(attrs: tuple[Attribute, ...] | None, oid: str) -> list[tuple[bytes, ...]]:
    """The value sets of every attribute of type ``oid`` (one tuple per attribute occurrence)."""
    return [a.values for a in attrs or () if a.oid == oid]


def walk_signed_data(signed_data: cms.SignedData) -> None:
    """Touch every SignedData field .NET decodes (the signer infos are walked by ``read_signer_info``)."""
    with where("SignedData version"):
        _ = signed_data["version"].native
    with where("SignedData digestAlgorithms"):
        for digest_algorithm in signed_data["digest_algorithms"]:
            algorithm(digest_algorithm)
    with where("SignedData encapContentInfo"):
        _ = signed_data["encap_content_info"]["content_type"].dotted
    with where("SignedData certificates"):
        certificates = signed_data["certificates"]
        if not isinstance(certificates, core.Void):
            for choice in certificates:
                _ = choice.name
    with where("SignedData crls"):
        _ = signed_data["crls"]


def encapsulated_content(signed_data: cms.SignedData) -> bytes | None:
    """The encapsulated content as .NET's ``SignedCms.GetContent`` gives it: the OCTET STRING's octets whatever the
    eContentType (it is not compared with anything, as in .NET); a non-OCTET STRING value raw, except for id-data."""
    encap = signed_data["encap_content_info"]
    parts = tlvs(bytes(encap.contents))
    if len(parts) == 1:
        return None
    if len(parts) != 2 or parts[1][0] != 0xA0:
        raise ValueError("malformed EncapsulatedContentInfo")
    inner = tlvs(contents_of(parts[1]))
    if len(inner) != 1:
        raise ValueError("malformed EncapsulatedContentInfo content")
    if inner[0][0] in (_OCTET_STRING, _OCTET_STRING | 0x20):
        return bytes(core.OctetString.load(inner[0]).native)
    if oid_of(parts[0]) == oids.DATA:
        raise ValueError("id-data content is not an OCTET STRING")
    return inner[0]


@dataclass(frozen=True)
class SignerFields:
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


def read_signer_info(signer_info: cms.SignerInfo) -> SignerFields:
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
        digest_algorithm = algorithm(signer_info["digest_algorithm"])
    with where("SignerInfo signedAttrs"):
        signed = signer_info["signed_attrs"]
        signed_attributes = attributes(signed)
        signed_der = None if signed_attributes is None else b"\x31" + bytes(signed.dump())[1:]
    with where("SignerInfo signatureAlgorithm"):
        signature_algorithm = algorithm(signer_info["signature_algorithm"])
    with where("SignerInfo signature"):
        signature = bytes(signer_info["signature"].native)
    with where("SignerInfo unsignedAttrs"):
        unsigned_attributes = attributes(signer_info["unsigned_attrs"])
    return SignerFields(
        version=int(version) if isinstance(version, int) else int(str(version).removeprefix("v")),
        issuer=issuer,
        serial_number=serial,
        subject_key_identifier=key_id,
        digest_algorithm=digest_algorithm,
        signed_attributes=signed_attributes,
        signed_attributes_der=signed_der,
        signature_algorithm=signature_algorithm,
        signature=signature,
        unsigned_attributes=unsigned_attributes,
    )
