"""Walking DER by offsets: split a SEQUENCE's or SET's contents into values, read OIDs, integers and X.500 names.

Shared by certificates (``nuseal.x509.facts`` reads a certificate's raw issuer and subject without decoding them)
and CMS (``nuseal.cms.der`` re-exports it). Hand-written because no library exposes this split: asn1crypto types
values as it parses them and has no offset-based splitter (slicing per value would make a hostile SET of many tiny
values quadratic). OIDs and INTEGERs are decoded exactly as asn1crypto decodes them (the same dotted text for any
contents, tested), without importing it: verification start-up does not load asn1crypto.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["ASN1_ERRORS", "contents_of", "dotted", "integer_of", "name_attributes", "name_text", "oid_of", "tlvs"]

#: What asn1crypto raises on malformed input (besides ``ValueError``, its documented error, a few edge cases).
ASN1_ERRORS: tuple[type[Exception], ...] = (ValueError, TypeError, KeyError, IndexError, OverflowError)

_SEQUENCE, _SET, _OID, _INTEGER = 0x30, 0x31, 0x06, 0x02
_T = TypeVar("_T")

#: Deeper nesting than any real signature has; bounds the recursion over indefinite-length values.
_MAX_DEPTH = 64


def _extent(data: bytes, position: int, depth: int = 0) -> tuple[int, int, int]:
    """(contents start, contents end, value end) of the BER value at ``position``: definite or indefinite length,
    any tag number. ``ValueError`` when it is cut off or malformed. Works on offsets, so splitting a large SET
    costs linear time."""
    end = len(data)
    if depth > _MAX_DEPTH:
        raise ValueError("ASN.1 nesting too deep")
    if position + 2 <= end and data[position] & 0x1F != 0x1F and data[position + 1] < 0x80:
        stop = position + 2 + data[position + 1]  # the common case: low tag number, short definite length
        if stop <= end:
            return position + 2, stop, stop
    if position + 2 > end:
        raise ValueError(f"truncated ASN.1 value at offset {position}")
    constructed = bool(data[position] & 0x20)
    index = position + 1
    if data[position] & 0x1F == 0x1F:  # high tag number: base-128 digits, the last without bit 8
        while index < end and data[index] & 0x80:
            index += 1
        index += 1
    if index >= end:
        raise ValueError(f"truncated ASN.1 header at offset {position}")
    length = data[index]
    index += 1
    if length == 0x80:
        if not constructed:
            raise ValueError(f"indefinite length on a primitive value at offset {position}")
        start = index
        while True:
            if index + 2 > end:
                raise ValueError(f"no end-of-contents for the value at offset {position}")
            if data[index] == 0 and data[index + 1] == 0:
                return start, index, index + 2
            index = _extent(data, index, depth + 1)[2]
    if length & 0x80:
        count = length & 0x7F
        if count > 8 or index + count > end:
            raise ValueError(f"bad length at offset {position}")
        length = int.from_bytes(data[index : index + count], "big")
        index += count
    if index + length > end:
        raise ValueError(f"ASN.1 value at offset {position} needs {length} bytes, {end - index} available")
    return index, index + length, index + length


def tlvs(data: bytes) -> list[bytes]:
    """Split concatenated BER/DER values (a SEQUENCE's or SET's contents) into their complete encodings."""
    parts: list[bytes] = []
    position = 0
    end = len(data)
    while position < end:
        # _extent's common cases inlined (low tag number, definite length in at most two length octets): this loop
        # runs for every value of every signature, certificate and timestamp token; the function call was a third
        # of its cost. The same arithmetic as _extent's; anything else, or a value running past the end, goes to
        # _extent, which reads it or raises its error.
        value_end = -1
        if position + 2 <= end and data[position] & 0x1F != 0x1F:
            first = data[position + 1]
            if first < 0x80:
                value_end = position + 2 + first
            elif first == 0x81 and position + 3 <= end:
                value_end = position + 3 + data[position + 2]
            elif first == 0x82 and position + 4 <= end:
                value_end = position + 4 + (data[position + 2] << 8 | data[position + 3])
        if value_end < 0 or value_end > end:
            value_end = _extent(data, position)[2]
        parts.append(data[position:value_end])
        position = value_end
    return parts


def contents_of(tlv: bytes, tag: int | None = None) -> bytes:
    """The contents octets of one complete value, checking its first identifier octet when ``tag`` is given."""
    if tag is not None and (not tlv or tlv[0] != tag):
        raise ValueError(f"expected tag 0x{tag:02x}, found 0x{tlv[:1].hex() or '--'}")
    size = len(tlv)
    if size >= 2 and tlv[0] & 0x1F != 0x1F:  # the common forms, as in tlvs; everything else through _extent
        first = tlv[1]
        if first < 0x80:
            if first + 2 == size:
                return tlv[2:]
        elif first == 0x81:
            if size >= 3 and tlv[2] + 3 == size:
                return tlv[3:]
        elif first == 0x82 and size >= 4 and (tlv[2] << 8 | tlv[3]) + 4 == size:
            return tlv[4:]
    start, stop, value_end = _extent(tlv, 0)
    if value_end != len(tlv):
        raise ValueError("trailing data after an ASN.1 value")
    return tlv[start:stop]


_dotted_cache: dict[bytes, str] = {}


def oid_of(tlv: bytes) -> str:
    """The dotted text of an OBJECT IDENTIFIER value (a complete TLV)."""
    if not tlv or tlv[0] != _OID:
        raise ValueError("expected an OBJECT IDENTIFIER")
    return dotted(contents_of(tlv))


def dotted(contents: bytes) -> str:
    """OID contents octets to dotted text, as asn1crypto's ``ObjectIdentifier.dotted`` reads them (base-128 arcs,
    the first split into two; an unfinished last arc is dropped)."""
    known = _dotted_cache.get(contents)
    if known is not None:
        return known
    output: list[str] = []
    part = 0
    for byte in contents:
        part = part * 128 + (byte & 0x7F)
        if not byte & 0x80:
            if output:
                output.append(str(part))
            elif part >= 80:
                output += ["2", str(part - 80)]
            elif part >= 40:
                output += ["1", str(part - 40)]
            else:
                output += ["0", str(part)]
            part = 0
    text = ".".join(output)
    if len(_dotted_cache) < 4096:
        _dotted_cache[bytes(contents)] = text
    return text


def integer_of(tlv: bytes) -> int:
    """An INTEGER value (a complete TLV), two's complement; empty contents read as 0, as asn1crypto does."""
    if not tlv or tlv[0] != _INTEGER:
        raise ValueError("expected an INTEGER")
    return int.from_bytes(contents_of(tlv), "big", signed=True)


# --- names ---------------------------------------------------------------------------------------------------------

_STRING_CODECS = {
    0x0C: "utf-8",  # UTF8String
    0x12: "ascii",  # NumericString
    0x13: "ascii",  # PrintableString
    0x14: "latin-1",  # TeletexString (T61), read as Latin-1 like .NET
    0x16: "ascii",  # IA5String
    0x1A: "ascii",  # VisibleString
    0x1C: "utf-32-be",  # UniversalString
    0x1E: "utf-16-be",  # BMPString
}


_NameText = tuple[tuple[tuple[str, str], ...], ...]
_name_texts: dict[bytes, _NameText] = {}


def name_text(raw: bytes) -> _NameText:
    """A Name as the sequence of its RDNs' (attribute OID, decoded string) pairs.

    Two names have equal texts exactly when .NET's ``X500DistinguishedName.Name`` strings are equal (ordinal): the
    string encoding (PrintableString vs UTF8String) does not matter, case and spaces do. Non-string values compare
    by their DER (.NET prints them as ``#hex``).

    Remembered by the exact bytes (bounded; a name that fails is not kept and fails again): signatures and
    timestamp tokens name the same few issuers in package after package.
    """
    return _remembered(_name_texts, raw, _read_name_text)


def _remembered(cache: dict[bytes, _T], raw: bytes, read: Callable[[bytes], _T]) -> _T:
    """``read(raw)``, remembered in ``cache`` by the exact bytes (bounded to 4096 names; a read that raises is
    not kept and raises again). Only immutable ``bytes`` are keys."""
    if type(raw) is not bytes:
        return read(raw)
    if raw in cache:
        return cache[raw]
    found = read(raw)
    if len(cache) >= 4096:
        cache.clear()
    cache[raw] = found
    return found


def _rdns(raw: bytes) -> list[list[tuple[bytes, bytes]]]:
    """A Name's RDNs, each as its (attribute type, value) TLV pairs; an ``ASN1_ERRORS`` error for malformed DER."""
    rdns: list[list[tuple[bytes, bytes]]] = []
    for rdn in tlvs(contents_of(raw, _SEQUENCE)):
        pairs: list[tuple[bytes, bytes]] = []
        for pair in tlvs(contents_of(rdn, _SET)):
            parts = tlvs(contents_of(pair, _SEQUENCE))
            if len(parts) != 2:
                raise ValueError("malformed AttributeTypeAndValue")
            pairs.append((parts[0], parts[1]))
        rdns.append(pairs)
    return rdns


def _read_name_text(raw: bytes) -> _NameText:
    texts: list[tuple[tuple[str, str], ...]] = []
    for rdn in _rdns(raw):
        pairs: list[tuple[str, str]] = []
        for attribute_type, value in rdn:
            codec = _STRING_CODECS.get(value[0])
            pairs.append((oid_of(attribute_type), contents_of(value).decode(codec) if codec else "#" + value.hex()))
        texts.append(tuple(pairs))
    return tuple(texts)


#: String types whose text cryptography reads exactly as the codec here does: UTF8String, BMPString and
#: UniversalString by the same decoding; the others it reads as UTF-8, which is the same text when they are ASCII.
_CRYPTOGRAPHY_TEXT = {0x0C: "utf-8", 0x12: "ascii", 0x13: "ascii", 0x14: "ascii", 0x16: "ascii", 0x1A: "ascii",
                      0x1C: "utf-32-be", 0x1E: "utf-16-be"}
_NameAttributes = tuple[tuple[tuple[str, str], ...], ...]
_name_attributes: dict[bytes, _NameAttributes | None] = {}


def name_attributes(raw: bytes) -> _NameAttributes | None:
    """A certificate Name's RDNs as (attribute OID, value) pairs with exactly the values cryptography's ``Name``
    gives, read from the DER without building cryptography's objects (~60 µs per name); None whenever that cannot
    be vouched for: a value of another type or one cryptography would decode differently (non-ASCII bytes in an
    ASCII string type), an empty RDN or one repeating an attribute (cryptography refuses both), undecodable text,
    malformed DER. Then the caller asks cryptography. Remembered by the exact bytes (bounded)."""
    return _remembered(_name_attributes, raw, _read_name_attributes)


def _read_name_attributes(raw: bytes) -> _NameAttributes | None:
    try:
        found: list[tuple[tuple[str, str], ...]] = []
        for rdn in _rdns(raw):
            pairs: list[tuple[str, str]] = []
            for attribute_type, value in rdn:
                codec = _CRYPTOGRAPHY_TEXT.get(value[0])
                if codec is None:
                    return None
                pairs.append((oid_of(attribute_type), contents_of(value).decode(codec)))
            if not pairs or len(set(pairs)) != len(pairs):
                return None
            found.append(tuple(pairs))
    except ASN1_ERRORS:
        return None
    return tuple(found)
