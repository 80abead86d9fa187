"""The handful of DER encodings nuseal writes by hand (X.690 §8 and §10-11), over bytes: the TSA's tokens
(``nuseal.timestamp.tsa``), timestamp requests (``nuseal.timestamp.client``) and new signatures (``nuseal.cms.build``).

Hand-written on purpose: asn1crypto encodes these structures correctly but builds an object tree for each one, which
made it the largest cost of issuing a token, and importing it cost ~30-45 ms of every signing command's start-up.
Only definite lengths and the primitive types below are produced (byte for byte asn1crypto's encodings, tested);
parsing and editing loaded signatures stay with asn1crypto.
"""
from __future__ import annotations

from datetime import UTC, datetime


def length(size: int) -> bytes:
    """A definite length: short form below 128, else 0x80 | the count of big-endian octets that follow."""
    if size < 0x80:
        return bytes((size,))
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(octets),)) + octets


def tlv(tag: int, content: bytes) -> bytes:
    """One element: a one-byte tag, the DER length, the content."""
    size = len(content)
    if size < 0x80:
        return bytes((tag, size)) + content
    return bytes((tag,)) + length(size) + content


def sequence(*elements: bytes) -> bytes:
    return tlv(0x30, b"".join(elements))


def set_of(*elements: bytes) -> bytes:
    """A SET OF: DER orders the elements by their encodings."""
    return tlv(0x31, b"".join(sorted(elements)))


def integer(value: int) -> bytes:
    """INTEGER in the fewest two's-complement octets."""
    size = (value + (value < 0)).bit_length() // 8 + 1
    return tlv(0x02, value.to_bytes(size, "big", signed=True))


def object_identifier(dotted: str) -> bytes:
    """OBJECT IDENTIFIER (X.690 §8.19: the first two arcs as 40·a + b, then base 128, high bit set on all but the
    last octet of each arc); ``ValueError`` for a malformed dotted string."""
    try:
        arcs = [int(arc) for arc in dotted.split(".")]
    except ValueError:
        raise ValueError(f"invalid object identifier {dotted!r}") from None
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] > 39) or min(arcs) < 0:
        raise ValueError(f"invalid object identifier {dotted!r}")
    body = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body += bytes(reversed(chunk))
    return tlv(0x06, bytes(body))


def octet_string(value: bytes) -> bytes:
    return tlv(0x04, value)


def generalized_time(moment: datetime) -> bytes:
    """GeneralizedTime in UTC, whole seconds (``YYYYMMDDHHMMSSZ``, X.690 §11.7)."""
    moment = moment.astimezone(UTC)
    return tlv(0x18, f"{moment.year:04d}{moment:%m%d%H%M%S}Z".encode("ascii"))  # %Y is not padded below 1000


def utc_time(moment: datetime) -> bytes:
    """UTCTime (``YYMMDDHHMMSSZ``), for years 1950-2049."""
    return tlv(0x17, moment.astimezone(UTC).strftime("%y%m%d%H%M%SZ").encode("ascii"))


def cms_time(moment: datetime) -> bytes:
    """RFC 5652 §11.3 Time: UTCTime for 1950-2049, GeneralizedTime otherwise."""
    year = moment.astimezone(UTC).year
    return utc_time(moment) if 1950 <= year <= 2049 else generalized_time(moment)
