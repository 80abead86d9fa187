"""nuget_config._mentions_element answers as the regular expression it replaced, ``<name[\\s/>]`` on bytes."""

from __future__ import annotations

import random
import re

import pytest

from nuseal.trust.nuget_config import _mentions_element


def _reference(text: bytes, name: bytes) -> bool:
    return re.search(rb"<" + re.escape(name) + rb"[\s/>]", text) is not None


_TEXTS = [b"", b"<config>", b"<config", b"<configuration>", b"<config/>", b"<config\t", b"<config\x0b", b"<config\x0c",
          b"<config\xa0", b"<config\x85>", b"< config>", b"<<config >", b"<configx <config\n", b"x<config\r",
          b"<trustedSigners>", b"<trustedsigners>", b"<!-- <config> -->", b"<configconfig/>"]


@pytest.mark.parametrize("text", _TEXTS, ids=repr)
@pytest.mark.parametrize("name", [b"config", b"trustedSigners", b"a"])
def test_chosen_texts(text: bytes, name: bytes) -> None:
    assert _mentions_element(text, name) == _reference(text, name)


def test_random_texts() -> None:
    rng = random.Random(7)  # fixed: the same texts every run
    pieces = [b"<", b"config", b"conf", b" ", b"\t", b"\n", b"\r", b"\x0b", b"\x0c", b"\xa0", b"/", b">", b"x", b"\x85"]
    found = 0
    for _ in range(20000):
        text = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        expected = _reference(text, b"config")
        assert _mentions_element(text, b"config") == expected, text
        found += expected
    assert found > 100  # enough texts that do mention it
