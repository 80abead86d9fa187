"""cms.der.simple_time reads exactly the times the two regular expressions it replaced matched, with the same
fields (a differential test over built and mutated texts)."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta

import pytest

from nuseal.cms import der

_UTC_TIME = re.compile(rb"([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})Z")
_GENERALIZED_TIME = re.compile(
    rb"([0-9]{4})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})(?:\.([0-9]{1,6}))?Z")


def _reference(tag: int, text: bytes) -> datetime | None:
    """What simple_time answered with the regular expressions (None where it raised ``Unusual``)."""
    match = (_UTC_TIME if tag == 0x17 else _GENERALIZED_TIME).fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(group) for group in match.groups()[:6])
    if tag == 0x17:
        year += 2000 if year < 50 else 1900
    if year == 0:
        return None
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        return None
    fraction = match.groups()[6] if tag == 0x18 else None
    if fraction:
        moment += timedelta(microseconds=int(fraction) * 10 ** (6 - len(fraction)))
    return moment


def _read(tag: int, text: bytes) -> datetime | None:
    try:
        return der.simple_time(bytes([tag, len(text)]) + text)
    except der.Unusual:
        return None


_SEEDS = [b"210315120000Z", b"491231235959Z", b"500101000000Z", b"20210315120000Z", b"20210315120000.5Z",
          b"20210315120000.123456Z", b"20210315120000.1234567Z", b"20210315120000.Z", b"00000101000000Z",
          b"20210230120000Z", b"210315120000", b"2103151200Z", b"20210315120000,5Z", b"20210315120000.05Z",
          b"21031512000\xd9Z", b"\xd9\xa1" * 6 + b"Z", b" 10315120000Z", b"+0210315120000Z", b"210315120000z",
          b"", b"Z", b"20210315120000.0Z"]


@pytest.mark.parametrize("text", _SEEDS, ids=repr)
@pytest.mark.parametrize("tag", [0x17, 0x18])
def test_the_chosen_texts_read_as_the_regular_expressions_read_them(tag: int, text: bytes) -> None:
    assert _read(tag, text) == _reference(tag, text)


def test_mutated_texts_read_as_the_regular_expressions_read_them() -> None:
    rng = random.Random(12)  # fixed: the same texts every run
    alphabet = b"0123456789Z.+-, \xd9\x00"
    matched = 0
    for _ in range(20000):
        text = bytearray(rng.choice(_SEEDS))
        for _ in range(rng.randint(0, 2)):
            kind = rng.randint(0, 2)
            position = rng.randint(0, len(text))
            if kind == 0:
                text.insert(position, rng.choice(alphabet))
            elif kind == 1 and text:
                del text[min(position, len(text) - 1)]
            elif text:
                text[min(position, len(text) - 1)] = rng.choice(alphabet)
        for tag in (0x17, 0x18):
            expected = _reference(tag, bytes(text))
            assert _read(tag, bytes(text)) == expected, (tag, bytes(text))
            matched += expected is not None
    assert matched > 1000  # the mutations kept enough valid times for the comparison to mean something
