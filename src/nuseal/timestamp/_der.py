"""The handful of DER encodings the TSA's token assembly needs (X.690 §8 and §10-11), over bytes.

Hand-written on purpose: asn1crypto encodes these structures correctly but builds an object tree for each one,
which made it the largest cost of issuing a token (``nuseal.timestamp.tsa``). Only definite lengths and the
primitive types below are produced; parsing stays with asn1crypto.
"""

from __future__ import annotations

from datetime import UTC, datetime


def tlv(tag: int, content: bytes) -> bytes:
    """One element: a one-byte tag, the DER length, the content."""
    size = len(content)
    if size < 0x80:
        return bytes((tag, size)) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(length))) + length + content


def sequence(*elements: bytes) -> bytes:
    return tlv(0x30, b"".join(elements))


def set_of(*elements: bytes) -> bytes:
    """A SET OF: DER orders the elements by their encodings."""
    return tlv(0x31, b"".join(sorted(elements)))


def integer(value: int) -> bytes:
    """INTEGER in the fewest two's-complement octets."""
    size = (value + (value < 0)).bit_length() // 8 + 1
    return tlv(0x02, value.to_bytes(size, "big", signed=True))


def octet_string(value: bytes) -> bytes:
    return tlv(0x04, value)


def generalized_time(moment: datetime) -> bytes:
    """GeneralizedTime in UTC, whole seconds (``YYYYMMDDHHMMSSZ``, X.690 §11.7)."""
    return tlv(0x18, moment.astimezone(UTC).strftime("%Y%m%d%H%M%SZ").encode("ascii"))


def utc_time(moment: datetime) -> bytes:
    """UTCTime (``YYMMDDHHMMSSZ``), for years 1950-2049."""
    return tlv(0x17, moment.astimezone(UTC).strftime("%y%m%d%H%M%SZ").encode("ascii"))


def cms_time(moment: datetime) -> bytes:
    """RFC 5652 §11.3 Time: UTCTime for 1950-2049, GeneralizedTime otherwise."""
    year = moment.astimezone(UTC).year
    return utc_time(moment) if 1950 <= year <= 2049 else generalized_time(moment)
