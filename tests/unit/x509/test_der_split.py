"""``der.tlvs`` inlines ``_extent``'s common case (issue 12); it must split, and refuse, exactly like the plain
loop over ``_extent`` it replaced, on real signatures and on damaged ones."""

from __future__ import annotations

import random
import zipfile

import pytest
from tests.conftest import VECTORS

from nuseal.x509 import der


def _reference(data: bytes) -> list[bytes]:
    parts: list[bytes] = []
    position = 0
    while position < len(data):
        value_end = der._extent(data, position)[2]
        parts.append(data[position:value_end])
        position = value_end
    return parts


def _outcome(split: object, data: bytes) -> tuple[object, ...]:
    try:
        return ("ok", split(data))  # type: ignore[operator]
    except Exception as exc:  # the walker's refusals are compared, type and message
        return ("error", type(exc).__name__, str(exc))


def _signatures() -> list[bytes]:
    found = []
    for path in sorted((VECTORS / "real").glob("*.nupkg")):
        if not zipfile.is_zipfile(path):  # the damaged vectors
            continue
        with zipfile.ZipFile(path) as archive:
            if ".signature.p7s" in archive.namelist():
                found.append(archive.read(".signature.p7s"))
    return found


@pytest.mark.parametrize("seed", range(3))
def test_split_matches_the_plain_loop_on_real_and_damaged_signatures(seed: int) -> None:
    rng = random.Random(seed)
    signatures = _signatures()
    assert len(signatures) >= 10
    errors = 0
    for signature in signatures:
        for whole in (signature, der.contents_of(signature)):
            assert _outcome(der.tlvs, whole) == _outcome(_reference, whole)
        for _ in range(200):
            start = rng.randrange(len(signature))
            damaged = bytearray(signature[start : start + rng.randrange(1, 300)])
            for _ in range(rng.randrange(4)):
                damaged[rng.randrange(len(damaged))] = rng.randrange(256)
            expected = _outcome(_reference, bytes(damaged))
            errors += expected[0] == "error"
            assert _outcome(der.tlvs, bytes(damaged)) == expected
    assert errors > 100  # the damaged inputs do reach the refusals


def _reference_contents(tlv: bytes, tag: int | None = None) -> bytes:
    """``contents_of`` before its common forms were read inline: everything through ``_extent``."""
    if tag is not None and (not tlv or tlv[0] != tag):
        raise ValueError(f"expected tag 0x{tag:02x}, found 0x{tlv[:1].hex() or '--'}")
    start, stop, value_end = der._extent(tlv, 0)
    if value_end != len(tlv):
        raise ValueError("trailing data after an ASN.1 value")
    return tlv[start:stop]


def _damaged_pieces(seed: int) -> list[bytes]:
    rng = random.Random(seed)
    pieces = []
    for signature in _signatures():
        pieces.append(signature)
        for _ in range(200):
            start = rng.randrange(len(signature))
            damaged = bytearray(signature[start : start + rng.randrange(1, 3000)])
            for _ in range(rng.randrange(4)):
                damaged[rng.randrange(len(damaged))] = rng.randrange(256)
            pieces.append(bytes(damaged))
    return pieces


@pytest.mark.parametrize("seed", range(2))
def test_contents_of_matches_the_plain_reading(seed: int) -> None:
    outcomes = set()
    for piece in _damaged_pieces(seed):
        candidates = [piece, *(der.tlvs(piece)[:1] if _outcome(der.tlvs, piece)[0] == "ok" else [])]
        for candidate in candidates:
            expected = _outcome(_reference_contents, candidate)
            outcomes.add(expected[0])
            assert _outcome(der.contents_of, candidate) == expected
            tag = candidate[0] if candidate else 0x30
            assert _outcome(lambda d, t=tag: der.contents_of(d, t), candidate) == _outcome(
                lambda d, t=tag: _reference_contents(d, t), candidate)
    assert outcomes == {"ok", "error"}


@pytest.mark.parametrize("seed", range(2))
def test_cms_children_match_the_split_by_parts(seed: int) -> None:
    from nuseal.cms import der as cms_der

    outcomes = set()
    for piece in _damaged_pieces(seed):
        values = [piece]
        if _outcome(der.tlvs, piece)[0] == "ok":
            values += der.tlvs(piece)[:3]
        for value in values:
            if not value:
                continue
            expected = _outcome(lambda d: cms_der._children_by_parts(d, d[0]), value)
            outcomes.add(expected[0])
            assert _outcome(lambda d: cms_der.children(d, d[0]), value) == expected
    assert outcomes == {"ok", "error"}


def test_name_text_is_remembered_but_refusals_are_not() -> None:
    name = bytes.fromhex("3011310f300d06035504030c066e7573656131")
    first = der.name_text(name)
    assert first == ((("2.5.4.3", "nusea1"),),)
    assert der.name_text(bytes(bytearray(name))) is first  # the same answer, kept
    broken = name[:-2]
    for _ in range(2):
        with pytest.raises(ValueError):
            der.name_text(broken)
    assert broken not in der._name_texts


def test_cms_children_match_the_split_by_parts_on_every_header_form() -> None:
    """Each child header of real structures rewritten into every form the one-pass reading must hand over (high
    tag numbers, indefinite and long lengths, lengths off by one): the same values or the same refusal."""
    from nuseal.cms import der as cms_der

    structures: list[bytes] = []
    for signature in _signatures()[:6]:
        level = [signature]
        for _ in range(4):
            structures += level
            level = [child for value in level if value[0] & 0x20 for child in der.tlvs(der.contents_of(value))][:40]
    checked = refused = 0
    for value in structures:
        if not value[0] & 0x20 or value[0] == 0x24:  # primitive, or an OCTET STRING's contents: not values
            continue
        offsets, position, body = [], 0, der.contents_of(value)
        head = len(value) - len(body)
        while position < len(body):
            offsets.append(head + position)
            position = der._extent(body, position)[2]
        for offset in offsets[:6]:
            for tag in (0x1F, 0x3F, 0x9F, value[offset]):
                for length in (None, 0x80, 0x83, 0x84):
                    changed = bytearray(value)
                    changed[offset] = tag
                    if length is not None:
                        changed[offset + 1] = length
                    data = bytes(changed)
                    expected = _outcome(lambda d: cms_der._children_by_parts(d, d[0]), data)
                    assert _outcome(lambda d: cms_der.children(d, d[0]), data) == expected
                    checked += 1
                    refused += expected[0] == "error"
    assert checked > 500 and refused > 100
