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
