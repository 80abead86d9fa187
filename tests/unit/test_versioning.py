"""NuGet versions and ranges (NuGet.Versioning semantics): parse, normalize, compare, ranges, properties."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nuseal.versioning import NuGetVersion, VersionRange, highest, lowest_applicable, normalize_version

V = NuGetVersion.parse


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("1", "1.0.0"),
        ("1.0", "1.0.0"),
        ("1.0.0.0", "1.0.0"),
        ("1.0.116.0", "1.0.116"),
        ("3.5.0.2", "3.5.0.2"),
        ("01.002.0003", "1.2.3"),
        ("1.0.0-beta.1", "1.0.0-beta.1"),
        ("1.0-RC-2", "1.0.0-RC-2"),
        ("1.0.0+sha.abc", "1.0.0"),
        ("1.0.0.5-alpha+build.7", "1.0.0.5-alpha"),
        ("1.0.0-0A", "1.0.0-0A"),
        ("1.0.0+build.007", "1.0.0"),
        ("  2.1  ", "2.1.0"),
        ("2147483647.0", "2147483647.0.0"),
    ],
)
def test_normalize_version(raw: str, normalized: str) -> None:
    assert normalize_version(raw) == normalized == V(raw).normalized == str(V(raw))


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", ""), ("a.b", ""), ("1.2.3.4.5", ""), ("1.0.0-", ""), ("1.0.0-beta..1", ""), ("1.0.0+", ""),
        ("1..0", ""), ("-1.0", ""), ("1.0.0-beta_1", ""), ("1.0.0+a+b", ""), ("v1.0", ""), ("1.0 .0", ""),
        ("\u0661.0", ""),  # an Arabic-Indic digit: NuGet's parts are ASCII digits only
        ("99999999999.0", "outside 0..2147483647"),
        ("1.0.0-01", "leading zero"),
        ("1.0.0-beta.00", "leading zero"),
    ],
)
def test_invalid_versions_name_the_text_and_the_reason(raw: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"'{raw}' is not a valid NuGet version")) as err:
        normalize_version(raw)
    assert reason in str(err.value)
    assert NuGetVersion.try_parse(raw) is None


def test_parts_labels_and_metadata_are_kept() -> None:
    v = V("1.2.3.4-Beta.11+Build.5")
    assert (v.major, v.minor, v.patch, v.revision) == (1, 2, 3, 4)
    assert v.release_labels == ("Beta", "11") and v.release == "Beta.11" and v.metadata == "Build.5"
    assert v.full == "1.2.3.4-Beta.11+Build.5" and v.lower == "1.2.3.4-beta.11"
    assert V("1.0").full == "1.0.0" and V("1.0+m").full == "1.0.0+m"
    assert repr(V("1.0+m")) == "NuGetVersion('1.0.0+m')"


@pytest.mark.parametrize(("parts", "reason"), [
    ({"major": -1, "minor": 0, "patch": 0}, "outside 0..2147483647"),
    ({"major": 1, "minor": 0, "patch": 0, "revision": 2**31}, "outside 0..2147483647"),
    ({"major": 1, "minor": 0, "patch": 0, "release_labels": ("beta.1",)}, "label 'beta.1'"),
    ({"major": 1, "minor": 0, "patch": 0, "release_labels": ("",)}, "label ''"),
    ({"major": 1, "minor": 0, "patch": 0, "release_labels": ("007",)}, "leading zero"),
    ({"major": 1, "minor": 0, "patch": 0, "metadata": "a..b"}, "build metadata 'a..b'"),
])
def test_built_versions_are_checked_like_parsed_ones(parts: dict[str, object], reason: str) -> None:
    with pytest.raises(ValueError, match="not a valid NuGet version") as err:
        NuGetVersion(**parts)  # type: ignore[arg-type]
    assert reason in str(err.value)


def test_strict_semver_is_what_the_service_index_version_must_be() -> None:
    assert V("3.0.0", strict=True) == V("3.0.0")
    for text in ("3.0", "3.0.0.0", "03.0.0", " 3.0.0"):
        with pytest.raises(ValueError, match=re.escape(f"'{text}' is not a valid NuGet version")):
            V(text, strict=True)


def test_ordering_release_prerelease_labels_and_four_parts() -> None:
    ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11",
               "1.0.0-rc.1", "1.0.0", "1.0.0.1", "1.0.1", "1.10.0"]
    assert sorted(V(t) for t in reversed(ordered)) == [V(t) for t in ordered]
    assert [str(v) for v in sorted(V(t) for t in reversed(ordered))] == [V(t).normalized for t in ordered]
    assert V("1.0") == V("1.0.0.0") == V("1.0.0+build") and V("1.0-Beta") == V("1.0-beta")
    assert hash(V("1.0-Beta+x")) == hash(V("1.0.0-beta"))


@pytest.mark.parametrize(("low", "high"), [
    ("1.0.0-2", "1.0.0-10"),            # numeric labels compare numerically
    ("1.0.0-999", "1.0.0-a"),           # numeric below alphanumeric
    ("1.0.0--5", "1.0.0-0"),            # int.TryParse reads "-5" as a (negative) number
    ("1.0.0-99999999999", "1.0.0-a"),   # too big for int32: compared as text, digits sort below letters
    ("1.0.0-a-b", "1.0.0-a0"),          # ordinal: '-' sorts below digits
    ("1.0.0-a0", "1.0.0-Z"),            # ignore-case ordinal: "A0" < "Z" although 'a' > 'Z' in ASCII
    ("1.0.0-alpha", "1.0.0-alpha.0"),   # more labels win when the shared ones are equal
    ("1.0.0-rc", "1.0.0"),              # a release sorts above its prereleases
    ("1.0.0", "1.0.0.1-alpha"),         # the fourth part counts before labels
])
def test_label_comparison_rules(low: str, high: str) -> None:
    assert V(low) < V(high) and V(high) > V(low) and V(low) != V(high)


@pytest.mark.parametrize(("text", "prerelease", "semver2"), [
    ("1.0.0", False, False),
    ("1.0.0-beta", True, False),
    ("1.0.0-beta-2", True, False),
    ("1.0.0-beta.2", True, True),
    ("1.0.0+meta", False, True),
    ("1.0.0.1", False, False),
])
def test_prerelease_and_semver2_follow_nuget(text: str, prerelease: bool, semver2: bool) -> None:
    v = V(text)
    assert (v.is_prerelease, v.is_semver2) == (prerelease, semver2)


@pytest.mark.parametrize(("text", "inside", "outside", "normalized"), [
    ("1.0", ["1.0.0", "5.0.0"], ["0.9.0", "1.0.0-rc"], "[1.0.0, )"),
    ("[1.0,2.0)", ["1.0.0", "1.9.9"], ["2.0.0", "0.9.0"], "[1.0.0, 2.0.0)"),
    ("(,1.0]", ["0.1.0", "1.0.0"], ["1.0.1"], "(, 1.0.0]"),
    ("[1.0]", ["1.0.0", "1.0.0+meta"], ["1.0.1", "0.9.0"], "[1.0.0, 1.0.0]"),
    ("(1.0,)", ["1.0.1"], ["1.0.0"], "(1.0.0, )"),
    ("[ 1.0 , 2.0 ]", ["2.0.0"], ["2.0.1"], "[1.0.0, 2.0.0]"),
    ("(, )", ["0.0.1", "99.0.0-beta"], [], "(, )"),
    ("(1.0,1.0)", [], ["1.0.0"], "(1.0.0, 1.0.0)"),  # NuGet accepts this empty range
])
def test_ranges(text: str, inside: list[str], outside: list[str], normalized: str) -> None:
    r = VersionRange.parse(text)
    assert all(r.satisfies(V(v)) for v in inside)
    assert not any(r.satisfies(V(v)) for v in outside)
    assert r.normalized == normalized and str(r) == text
    assert VersionRange.parse(r.normalized) == r


def test_all_is_the_range_nuget_writes_as_open_parentheses() -> None:
    assert VersionRange.parse("(, )") == VersionRange.ALL and VersionRange.ALL.is_all
    assert str(VersionRange.ALL) == "(, )" and not VersionRange.parse("1.0").is_all


@pytest.mark.parametrize(("text", "reason"), [
    ("", "empty"), ("  ", "empty"), ("[1.0", "does not end"), ("(1.0)", "needs [ ]"), ("[1.0)", "needs [ ]"),
    ("[2.0,1.0]", "above"), ("[,]", "no bounds"), ("(,)", "no bounds"), ("[1,2,3]", "more than one comma"),
    ("abc", "not a valid NuGet version"), ("[1.0,x]", "not a valid NuGet version"),
    ("[1.0,1.0)", "both included and excluded"), ("1.*", "not a valid NuGet version"),
])
def test_bad_ranges_name_the_text_and_why(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=f"'{re.escape(text)}' is not a valid version range") as err:
        VersionRange.parse(text)
    assert reason in str(err.value)


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


# --- properties -------------------------------------------------------------------------------------------

_label = st.one_of(
    st.integers(0, 2**31 - 1).map(str),
    st.from_regex(r"[0-9A-Za-z-]*[A-Za-z-][0-9A-Za-z-]*", fullmatch=True).filter(lambda s: len(s) <= 12),
)
_part = st.integers(0, 2**31 - 1)
versions = st.builds(
    lambda nums, labels, meta: NuGetVersion(*nums, release_labels=tuple(labels), metadata=meta),
    st.tuples(_part, _part, _part, st.one_of(st.just(0), _part)),
    st.lists(_label, max_size=4),
    st.one_of(st.none(), st.from_regex(r"[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*", fullmatch=True)),
)
# Small values so that equal parts (and equal-ignoring-case labels) actually occur.
close_versions = st.builds(
    lambda nums, labels: NuGetVersion(*nums, release_labels=tuple(labels)),
    st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(0, 2), st.integers(0, 1)),
    st.lists(st.sampled_from(["1", "2", "10", "a", "A", "b", "-1", "rc"]), max_size=3),
)


@given(versions)
def test_parse_of_the_full_string_gives_the_same_version(v: NuGetVersion) -> None:
    again = NuGetVersion.parse(v.full)
    assert again == v and again.full == v.full and again.metadata == v.metadata
    assert NuGetVersion.parse(str(v)) == v


@given(versions)
def test_normalization_is_idempotent(v: NuGetVersion) -> None:
    assert normalize_version(v.normalized) == v.normalized
    assert normalize_version(v.full) == v.normalized


@given(close_versions, close_versions, close_versions)
def test_ordering_is_total_and_consistent(a: NuGetVersion, b: NuGetVersion, c: NuGetVersion) -> None:
    assert sum((a < b, a == b, a > b)) == 1
    assert (a <= b) == (a < b or a == b) and (a >= b) == (a > b or a == b)
    if a <= b and b <= c:
        assert a <= c
    if a == b:
        assert hash(a) == hash(b)


@given(close_versions, close_versions)
def test_ranges_built_from_two_versions_contain_exactly_what_lies_between(a: NuGetVersion,
                                                                         b: NuGetVersion) -> None:
    low, high = min(a, b), max(a, b)
    r = VersionRange.parse(f"[{low.normalized},{high.normalized}]")
    assert r.satisfies(a) and r.satisfies(b)
    assert VersionRange.parse(r.normalized) == r
