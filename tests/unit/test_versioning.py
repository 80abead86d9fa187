"""NuGet version ordering and ranges (NuGet.Versioning semantics)."""

from __future__ import annotations

import re

import pytest

from nuseal.versioning import NuGetVersion, VersionRange, highest, lowest_applicable

V = NuGetVersion.parse


def test_ordering_release_prerelease_labels_and_four_parts() -> None:
    ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11",
               "1.0.0-rc.1", "1.0.0", "1.0.0.1", "1.0.1", "1.10.0"]
    assert sorted((V(t) for t in reversed(ordered)), key=lambda v: v) == [V(t) for t in ordered]
    assert V("1.0") == V("1.0.0.0") == V("1.0.0+build") and V("1.0-Beta") == V("1.0-beta")
    assert V("1.0").text == "1.0.0" and V("1.2.3.4").text == "1.2.3.4"


@pytest.mark.parametrize(("text", "inside", "outside"), [
    ("1.0", ["1.0.0", "5.0.0"], ["0.9.0"]),
    ("[1.0,2.0)", ["1.0.0", "1.9.9"], ["2.0.0", "0.9.0"]),
    ("(,1.0]", ["0.1.0", "1.0.0"], ["1.0.1"]),
    ("[1.0]", ["1.0.0"], ["1.0.1", "0.9.0"]),
    ("(1.0,)", ["1.0.1"], ["1.0.0"]),
    ("", ["0.0.1"], []),
])
def test_ranges(text: str, inside: list[str], outside: list[str]) -> None:
    r = VersionRange.parse(text)
    assert all(r.satisfies(V(v)) for v in inside)
    assert not any(r.satisfies(V(v)) for v in outside)


@pytest.mark.parametrize("text", ["[1.0", "(1.0)", "[2.0,1.0]", "[,]", "[1,2,3]", "abc"])
def test_bad_ranges_name_the_text(text: str) -> None:
    with pytest.raises(ValueError, match=f"{re.escape(repr(text)[1:-1])}.* is not a valid"):
        VersionRange.parse(text)


def test_lowest_applicable_skips_prerelease_unless_a_bound_is_prerelease() -> None:
    available = [V("1.0.0"), V("1.1.0-beta"), V("1.1.0"), V("2.0.0")]
    assert lowest_applicable([VersionRange.parse("1.0.1")], available) == V("1.1.0")
    assert lowest_applicable([VersionRange.parse("1.0.1-a")], available) == V("1.1.0-beta")
    assert lowest_applicable([VersionRange.parse("1.0"), VersionRange.parse("[1.5,3)")], available) == V("2.0.0")
    assert lowest_applicable([VersionRange.parse("[3.0,)")], available) is None


def test_highest_is_stable_unless_prerelease() -> None:
    available = [V("1.0.0"), V("2.0.0-rc.1")]
    assert highest(available, prerelease=False) == V("1.0.0")
    assert highest(available, prerelease=True) == V("2.0.0-rc.1")
