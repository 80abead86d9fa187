"""Adding and stripping repository countersignatures on an encoded primary signature, by DER offsets (spec §4.6,
NuGet ``RemoveRepositorySignatures``).

These are the two edits a feed makes to every author-signed package it re-signs after a rotation: strip the old
repository countersignature, add the new one. asn1crypto did both (``nuseal.cms.build``'s ``*_asn1`` functions, kept
as the reference and the fallback) by loading the whole signature, editing the objects and re-encoding the edited
containers: ~1.2 ms per strip and ~0.6 ms per add, the largest single cost of a re-sign the feed's own code could
remove (issue 11). Here the signature is split along the one path that changes (ContentInfo, SignedData, the
primary SignerInfo and its unsigned attributes, the certificate set) and everything else is copied as it was read.

The output is byte for byte asn1crypto's (tested on real signatures and on every kind of input the editor accepts):
the edited containers are written again with minimal definite lengths, the unsigned attributes sorted as asn1crypto
sorts a SET OF (by their encodings), everything else copied verbatim. The editor accepts only what it can read
exactly as asn1crypto does (the expected tags in order, one-octet tags, definite lengths, certificates as plain
``Certificate`` values, NuGet's commitment-type form) and hands anything else, malformed or merely unusual, to the
asn1crypto path, so errors and their wording stay asn1crypto's. Hand-written because no library edits a CMS
SignerInfo's unsigned attributes without re-encoding it (asn1crypto's own ``dump`` is what ``build`` had to avoid).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple

from cryptography import x509

from nuseal import oids
from nuseal.cms import build, encode
from nuseal.cms.der import DECODE_ERRORS, Unusual, children, contents_of, integer_of, oid_of
from nuseal.x509 import certs

__all__ = ["add_countersignature", "strip_repository_countersignatures"]

_SEQUENCE, _SET, _INTEGER, _OCTET_STRING, _OID = 0x30, 0x31, 0x02, 0x04, 0x06
_CONTEXT_0, _CONTEXT_1, _IMPLICIT_0 = 0xA0, 0xA1, 0x80

_SIGNED_DATA_OID = encode.object_identifier(oids.SIGNED_DATA)
_COUNTERSIGNATURE_OID = encode.object_identifier(oids.COUNTERSIGNATURE)


def add_countersignature(
    signature: bytes, countersigner_info: bytes, certificates: Sequence[x509.Certificate]
) -> bytes:
    """Attach a countersigner SignerInfo (unsigned attribute 1.2.840.113549.1.9.6) to the primary SignerInfo and
    add its chain to the certificates (the same bytes as :func:`nuseal.cms.build.add_countersignature_asn1`)."""
    try:
        parts = _Parts.read(signature)
    except DECODE_ERRORS:
        return build.add_countersignature_asn1(signature, countersigner_info, certificates)
    unsigned = [*parts.unsigned, build.encode_attribute(oids.COUNTERSIGNATURE, countersigner_info)]
    present = parts.certificates or []
    added = [der for der in dict.fromkeys(certs.der(c) for c in certificates) if der not in present]
    certificate_list: list[bytes] | None = None  # unchanged
    if added:
        # A DER-sorted set (what nuseal and .NET write) stays sorted; any other order is kept and the new ones go last.
        certificate_list = sorted([*present, *added]) if present == sorted(present) else [*present, *added]
    return parts.encoded(unsigned, certificate_list)


@lru_cache(maxsize=8)
def strip_repository_countersignatures(signature: bytes) -> bytes:
    """Remove every countersigner with proof-of-receipt, and the certificates only their chains use (the same bytes
    as :func:`nuseal.cms.build.strip_repository_countersignatures_asn1`, whose docstring says what is kept).

    Cached per input (bytes in, bytes out, no state): a feed's re-sign strips the same pushed signature when
    countersigning and again when checking that the author signature came through intact. The two calls come close
    together on one signing thread, so a few entries serve a worker's threads; a larger cache would only hold
    signature entries (up to 8 MiB each) in a long-running worker.
    """
    try:
        return _strip(signature)
    except DECODE_ERRORS:
        return build.strip_repository_countersignatures_asn1(signature)


def _strip(signature: bytes) -> bytes:
    parts = _Parts.read(signature)
    kept: list[bytes] = []
    removed: list[bytes] = []  # signer identifiers
    remaining: list[bytes] = [parts.signer[1]]
    for attribute in parts.unsigned:
        attribute_type, values_tlv = children(attribute, _SEQUENCE)
        if oid_of(attribute_type) != oids.COUNTERSIGNATURE:
            kept.append(attribute)
            continue
        values: list[bytes] = []
        for value in children(values_tlv, _SET):
            counter = _signer_fields(value)
            if oids.PROOF_OF_RECEIPT in _commitments(counter):
                removed.append(counter[1])
            else:
                values.append(value)
                remaining.append(counter[1])
        if values:
            # Rebuilt, as asn1crypto's path does, even when nothing was removed from it: the OID as we encode it,
            # the values DER-sorted.
            kept.append(encode.sequence(_COUNTERSIGNATURE_OID, encode.set_of(*values)))
    certificate_list: list[bytes] | None = None  # unchanged
    present = parts.certificates or []
    needed = {der for sid in remaining for der in _bag_chain(present, sid)}
    unneeded = {der for sid in removed for der in _bag_chain(present, sid)} - needed
    if unneeded:
        certificate_list = [der for der in present if der not in unneeded]
    return parts.encoded(kept, certificate_list)


class _Parts(NamedTuple):
    """A primary signature split along the path an edit changes; every other value is kept as encoded."""

    content_type: bytes  # the ContentInfo's contentType TLV
    head: list[bytes]  # SignedData's version, digestAlgorithms and encapContentInfo TLVs
    certificates: list[bytes] | None  # the certificate TLVs of [0] certificates; None when the field is absent
    certificates_tlv: bytes | None  # the [0] certificates field as encoded
    crls: bytes | None  # the [1] crls TLV as encoded
    signer: list[bytes]  # the primary SignerInfo's fields up to its signature (unsigned attributes left out)
    unsigned: list[bytes]  # the primary SignerInfo's unsigned Attribute TLVs, as encoded

    @classmethod
    def read(cls, signature: bytes) -> _Parts:
        content_type, content = children(signature, _SEQUENCE)
        if content_type != _SIGNED_DATA_OID:
            raise Unusual  # not a SignedData, or its OID encoded unusually: asn1crypto words it
        (signed_data,) = children(content, _CONTEXT_0)
        fields = children(signed_data, _SEQUENCE)
        if len(fields) < 4 or [f[0] for f in fields[:3]] != [_INTEGER, _SET, _SEQUENCE] or fields[-1][0] != _SET:
            raise Unusual
        optional = {f[0]: f for f in fields[3:-1]}
        if len(optional) != len(fields) - 4 or not optional.keys() <= {_CONTEXT_0, _CONTEXT_1} or (
                len(optional) == 2 and fields[3][0] != _CONTEXT_0):  # fmt: skip
            raise Unusual
        certificates = None
        if _CONTEXT_0 in optional:
            certificates = children(optional[_CONTEXT_0], _CONTEXT_0)
            if any(c[0] != _SEQUENCE for c in certificates):
                raise Unusual  # other CertificateChoices: asn1crypto's path
        signers = children(fields[-1], _SET)
        if len(signers) != 1:
            raise Unusual  # asn1crypto's path refuses it with NU3009
        signer = _signer_fields(signers[0])
        unsigned: list[bytes] = []
        if signer[-1][0] == _CONTEXT_1:
            unsigned = children(signer.pop(), _CONTEXT_1)
            for attribute in unsigned:
                attribute_type, _ = children(attribute, _SEQUENCE)
                if attribute_type[0] != _OID:
                    raise Unusual
        return cls(content_type, fields[:3], certificates, optional.get(_CONTEXT_0), optional.get(_CONTEXT_1), signer,
                   unsigned)  # fmt: skip

    def encoded(self, unsigned: list[bytes], certificates: list[bytes] | None) -> bytes:
        """The signature with these unsigned attributes (sorted as asn1crypto sorts a SET OF; none: the field is
        left out) and, unless ``certificates`` is None (the field as read), these certificates in this order (none:
        the field is left out); everything else as read."""
        signer = self.signer + ([encode.tlv(_CONTEXT_1, b"".join(sorted(unsigned)))] if unsigned else [])
        fields = list(self.head)
        if certificates is None:
            if self.certificates_tlv is not None:
                fields.append(self.certificates_tlv)
        elif certificates:
            fields.append(encode.tlv(_CONTEXT_0, b"".join(certificates)))
        if self.crls is not None:
            fields.append(self.crls)
        fields.append(encode.tlv(_SET, encode.sequence(*signer)))
        return encode.sequence(self.content_type, encode.tlv(_CONTEXT_0, encode.sequence(*fields)))


def _signer_fields(tlv: bytes) -> list[bytes]:
    """A SignerInfo's fields, checked in the order asn1crypto's schema reads them: version, sid, digestAlgorithm,
    [0] signedAttrs (optional), signatureAlgorithm, signature, [1] unsignedAttrs (optional)."""
    fields = children(tlv, _SEQUENCE)
    tags = [f[0] for f in fields]
    if tags and tags[-1] == _CONTEXT_1:
        tags.pop()
    if tags[3:4] == [_CONTEXT_0]:
        del tags[3]
    if tags != [_INTEGER, _SEQUENCE, _SEQUENCE, _SEQUENCE, _OCTET_STRING] and tags != [
            _INTEGER, _IMPLICIT_0, _SEQUENCE, _SEQUENCE, _OCTET_STRING]:  # fmt: skip
        raise Unusual
    return fields


def _commitments(signer: list[bytes]) -> list[str]:
    """The commitment-type OIDs of a SignerInfo's signed attributes, in NuGet's form only (one value per
    CommitmentTypeIndication, no qualifiers); anything else goes to asn1crypto's path."""
    if signer[3][0] != _CONTEXT_0:
        raise Unusual  # no signed attributes: asn1crypto's path
    found: list[str] = []
    for attribute in children(signer[3], _CONTEXT_0):
        attribute_type, values = children(attribute, _SEQUENCE)
        if oid_of(attribute_type) != oids.COMMITMENT_TYPE_INDICATION:
            continue
        for value in children(values, _SET):
            (commitment,) = children(value, _SEQUENCE)
            found.append(oid_of(commitment))
    return found


def _bag_chain(bag: Sequence[bytes], sid: bytes) -> list[bytes]:
    """The certificates of ``bag`` forming the chain of the signer identified by ``sid`` (as
    ``build.chain_in_bag`` finds it for asn1crypto's path)."""
    if sid[0] == _SEQUENCE:
        issuer, serial = children(sid, _SEQUENCE)
        return build.chain_in_bag(bag, issuer_serial=(_hashable_name(issuer), integer_of(serial)))
    return build.chain_in_bag(bag, key_identifier=contents_of(sid))


@lru_cache(maxsize=64)
def _hashable_name(name: bytes) -> str:
    """asn1crypto's ``Name.hashable`` (RFC 5280 §7.1 prepared) of an encoded issuer name: what chain matching
    compares certificates' names with (``build._chain_facts``). Cached: a feed meets the same few issuers."""
    from asn1crypto import x509 as asn1_x509

    hashable: str = asn1_x509.Name.load(name).hashable
    return hashable
