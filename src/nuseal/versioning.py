"""NuGet versions and version ranges: the one place nuseal parses, normalizes and compares them.

Semantics are NuGet.Versioning's (``NuGetVersion``, ``VersionComparer.Default``, ``VersionRange``):

- **Parse.** One to four numeric parts (``1`` means ``1.0``; leading zeros allowed; each part at most
  2147483647), then an optional prerelease (``-`` and dot-separated labels of ``[0-9A-Za-z-]``; an all-digit
  label may not have a leading zero) and optional build metadata (``+`` and labels, leading zeros allowed).
  Surrounding whitespace is ignored. ``strict=True`` is SemVer 2.0 as NuGet's ``SemanticVersion`` reads it:
  exactly three parts without leading zeros (the service index ``version``).
- **Normalize** (``ToNormalizedString``): ``major.minor.patch``, the fourth part only when non-zero, the
  prerelease labels as written, no metadata. ``full`` keeps the metadata (``ToFullString``). URLs use the
  lower-cased normalized form (``lower``); versions are ASCII, so ``str.lower`` is .NET's ToLowerInvariant.
- **Compare.** Numeric parts, then a release above any prerelease of the same numbers, then labels one by
  one: numeric labels (what ``int.TryParse`` accepts: optional ``-``, 32-bit) numerically and below
  alphanumeric ones, alphanumeric labels ordinal-ignore-case; with equal shared labels, more labels win.
  Build metadata never matters. Equality and hashing follow the same key.
- **Ranges** (``VersionRange.Parse`` without floating): ``1.0`` (``>= 1.0``), ``[1.0]`` (exactly),
  ``[1.0,2.0)``, ``(,1.0]``, ``(1.0,)``; ``(, )`` (what nuget.org writes for "any") is every version.
- **SemVer 2** (``IsSemVer2``, nuget.org's definition): more than one prerelease label, or build metadata.

Floating ranges (``1.*``) are project-file syntax and are not supported here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from typing import TYPE_CHECKING, ClassVar

from nuseal.record import Struct, force_setattr

_INT32_MAX = 2**31 - 1
# ASCII only: NuGet accepts [0-9A-Za-z-] and Python's \d would also match other scripts' digits.
_LABEL = r"[0-9A-Za-z-]+"
# The patterns are compiled on first use (~0.5 ms each): most runs parse a version or two, or none.


@cache
def _version_re() -> re.Pattern[str]:
    return re.compile(
        rf"(?P<parts>[0-9]+(?:\.[0-9]+){{0,3}})"
        rf"(?:-(?P<release>{_LABEL}(?:\.{_LABEL})*))?"
        rf"(?:\+(?P<meta>{_LABEL}(?:\.{_LABEL})*))?"
    )


@cache
def _numeric_label_re() -> re.Pattern[str]:
    return re.compile(r"-?[0-9]+")


@cache
def _label_re() -> re.Pattern[str]:
    return re.compile(_LABEL)


@cache
def _metadata_re() -> re.Pattern[str]:
    return re.compile(rf"{_LABEL}(?:\.{_LABEL})*")


#: How a prerelease label sorts: (0, value, text) for numeric labels, (1, 0, TEXT) for the others.
_LabelKey = tuple[int, int, str]
_VersionKey = tuple[int, int, int, int, int, tuple[_LabelKey, ...]]


def _label_key(label: str) -> _LabelKey:
    # NuGet calls a label numeric when int.TryParse accepts it: an optional sign and a 32-bit value.
    if _numeric_label_re().fullmatch(label) and -(2**31) <= (value := int(label)) <= _INT32_MAX:
        return (0, value, label)
    # OrdinalIgnoreCase compares upper-cased characters ordinally.
    return (1, 0, label.upper())


def _invalid(text: str, reason: str = "") -> ValueError:
    return ValueError(f"'{text}' is not a valid NuGet version{f' ({reason})' if reason else ''}")


def _problem(numbers: Iterable[int], labels: Iterable[str], metadata: str | None) -> str:
    """Why these parts do not make a NuGet version ("" when they do)."""
    if any(not 0 <= n <= _INT32_MAX for n in numbers):
        return f"a numeric part is outside 0..{_INT32_MAX}"
    for label in labels:
        if not _label_re().fullmatch(label):
            return f"the prerelease label '{label}' is not made of [0-9A-Za-z-]"
        if len(label) > 1 and label[0] == "0" and label.isdigit():
            return f"the numeric prerelease label '{label}' has a leading zero"
    if metadata is not None and not _metadata_re().fullmatch(metadata):
        return f"the build metadata '{metadata}' is not dot-separated [0-9A-Za-z-] labels"
    return ""


class NuGetVersion(Struct, frozen=True, dict=True):
    """A parsed NuGet version. ``str(v)`` is the normalized form; ordering and equality are NuGet's."""

    major: int
    minor: int
    patch: int
    revision: int = 0
    release_labels: tuple[str, ...] = ()
    metadata: str | None = None
    if TYPE_CHECKING:  # not a field (so not a constructor argument): the sort key, set once by __post_init__
        _key: ClassVar[_VersionKey]

    def __post_init__(self) -> None:
        if problem := _problem((self.major, self.minor, self.patch, self.revision), self.release_labels,
                               self.metadata):
            raise ValueError(f"not a valid NuGet version: {problem}")
        # A frozen struct refuses attribute writes; dict=True gives it a __dict__ for this derived value.
        self.__dict__["_key"] = (self.major, self.minor, self.patch, self.revision, 0 if self.release_labels else 1,
                                 tuple(_label_key(label) for label in self.release_labels))

    @classmethod
    def parse(cls, text: str, *, strict: bool = False) -> NuGetVersion:
        """``text`` as NuGet reads it; ``ValueError`` naming ``text`` (and why) when it is not a version."""
        raw = text if strict else text.strip()
        match = _version_re().fullmatch(raw)
        if match is None:
            raise _invalid(text)
        parts = match["parts"].split(".")
        if strict and (len(parts) != 3 or any(len(p) > 1 and p[0] == "0" for p in parts)):
            raise _invalid(text, "SemVer 2.0 needs exactly three numeric parts without leading zeros")
        numbers = [int(p) for p in parts]
        labels = tuple(match["release"].split(".")) if match["release"] else ()
        if problem := _problem(numbers, labels, match["meta"]):
            raise _invalid(text, problem)
        numbers += [0] * (4 - len(numbers))
        return cls(numbers[0], numbers[1], numbers[2], numbers[3], labels, match["meta"])

    @classmethod
    def try_parse(cls, text: str) -> NuGetVersion | None:
        try:
            return cls.parse(text)
        except ValueError:
            return None

    @property
    def is_prerelease(self) -> bool:
        return bool(self.release_labels)

    @property
    def has_metadata(self) -> bool:
        return self.metadata is not None

    @property
    def is_semver2(self) -> bool:
        """NuGet's ``IsSemVer2``: a dotted prerelease (several labels) or build metadata."""
        return len(self.release_labels) > 1 or self.has_metadata

    @property
    def release(self) -> str:
        """The prerelease label as written (``beta.1``), empty for a release."""
        return ".".join(self.release_labels)

    @property
    def normalized(self) -> str:
        """``ToNormalizedString()``: ``1.0`` → ``1.0.0``, ``1.0.0.0`` → ``1.0.0``, metadata dropped."""
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.revision > 0:
            text += f".{self.revision}"
        if self.release_labels:
            text += f"-{self.release}"
        return text

    @property
    def full(self) -> str:
        """``ToFullString()``: the normalized form plus ``+metadata`` when present."""
        return f"{self.normalized}+{self.metadata}" if self.metadata is not None else self.normalized

    @property
    def lower(self) -> str:
        """The normalized form lower-cased, as flat-container and registration URLs spell it."""
        return self.normalized.lower()

    def __str__(self) -> str:
        return self.normalized

    def __repr__(self) -> str:
        return f"NuGetVersion({self.full!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NuGetVersion):
            return NotImplemented
        return self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __lt__(self, other: NuGetVersion) -> bool:
        return self._key < other._key

    def __le__(self, other: NuGetVersion) -> bool:
        return self._key <= other._key

    def __gt__(self, other: NuGetVersion) -> bool:
        return self._key > other._key

    def __ge__(self, other: NuGetVersion) -> bool:
        return self._key >= other._key


def normalize_version(text: str) -> str:
    """NuGet's ``NuGetVersion.Parse(text).ToNormalizedString()``; ``ValueError`` naming ``text``."""
    return NuGetVersion.parse(text).normalized


def _invalid_range(text: str, reason: str) -> ValueError:
    return ValueError(f"'{text}' is not a valid version range ({reason})")


def _bound(text: str, part: str) -> NuGetVersion | None:
    # NuGet skips a bound that is only whitespace, so "(, )" has neither bound.
    if not part.strip():
        return None
    try:
        return NuGetVersion.parse(part)
    except ValueError as exc:
        raise _invalid_range(text, str(exc)) from None


class VersionRange(Struct, frozen=True):
    """A NuGet version range. An absent bound is unbounded (its ``*_inclusive`` flag is then False).

    ``original`` is the text it was parsed from (``None`` when built); ``str()`` gives it back when known,
    ``normalized`` is NuGet's ``ToNormalizedString()`` (``[1.0.0, )``).
    """

    min_version: NuGetVersion | None = None
    min_inclusive: bool = False
    max_version: NuGetVersion | None = None
    max_inclusive: bool = False
    original: str | None = None  # not compared nor hashed (__eq__, __hash__)

    ALL: ClassVar[VersionRange]

    def __post_init__(self) -> None:
        # One representation per meaning: inclusiveness of a missing bound means nothing.
        if self.min_version is None:
            force_setattr(self, "min_inclusive", False)
        if self.max_version is None:
            force_setattr(self, "max_inclusive", False)

    def _compared(self) -> tuple[NuGetVersion | None, bool, NuGetVersion | None, bool]:
        return (self.min_version, self.min_inclusive, self.max_version, self.max_inclusive)

    def __eq__(self, other: object) -> bool:
        if type(other) is not VersionRange:
            return NotImplemented
        return self._compared() == other._compared()

    def __hash__(self) -> int:
        return hash(self._compared())

    @classmethod
    def parse(cls, text: str) -> VersionRange:
        """``text`` as NuGet's ``VersionRange.Parse`` reads it; ``ValueError`` naming ``text`` and the reason.

        An empty string is not a range (NuGet); callers that treat a missing range as "any version" use
        ``VersionRange.ALL``.
        """
        raw = text.strip()
        if not raw:
            raise _invalid_range(text, "it is empty")
        if raw[0] not in "[(":
            return cls(_bound(text, raw), True, None, False, text)
        if len(raw) < 2 or raw[-1] not in ")]":
            raise _invalid_range(text, "it opens with a bracket but does not end with ')' or ']'")
        min_inclusive, max_inclusive = raw[0] == "[", raw[-1] == "]"
        parts = raw[1:-1].split(",")
        if len(parts) > 2:
            raise _invalid_range(text, "more than one comma")
        if all(not p for p in parts):
            raise _invalid_range(text, "no bounds")
        if len(parts) == 1:
            if not (min_inclusive and max_inclusive):
                raise _invalid_range(text, "an exact version needs [ ]")
            exact = _bound(text, parts[0])
            return cls(exact, True, exact, True, text)
        low, high = _bound(text, parts[0]), _bound(text, parts[1])
        if low is not None and high is not None:
            if low > high:
                raise _invalid_range(text, "the lower bound is above the upper bound")
            if low == high and min_inclusive != max_inclusive:
                raise _invalid_range(text, "a single version cannot be both included and excluded")
        return cls(low, min_inclusive, high, max_inclusive, text)

    @property
    def is_all(self) -> bool:
        return self.min_version is None and self.max_version is None

    def satisfies(self, version: NuGetVersion) -> bool:
        low, high = self.min_version, self.max_version
        if low is not None and (version < low if self.min_inclusive else version <= low):
            return False
        return high is None or (version <= high if self.max_inclusive else version < high)

    def allows_prerelease(self) -> bool:
        """NuGet allows prerelease candidates for a dependency only when a bound itself is a prerelease."""
        return any(v is not None and v.is_prerelease for v in (self.min_version, self.max_version))

    @property
    def normalized(self) -> str:
        """NuGet's ``ToNormalizedString()``: ``[1.0.0, )``, ``(, 2.0.0]``, ``[1.0.0, 1.0.0]``, ``(, )``."""
        low = self.min_version.normalized if self.min_version else ""
        high = self.max_version.normalized if self.max_version else ""
        return f"{'[' if self.min_inclusive else '('}{low}, {high}{']' if self.max_inclusive else ')'}"

    def __str__(self) -> str:
        return self.original if self.original is not None else self.normalized


VersionRange.ALL = VersionRange()


def lowest_applicable(ranges: Iterable[VersionRange], available: Iterable[NuGetVersion]) -> NuGetVersion | None:
    """The lowest available version inside every range (NuGet's dependency behaviour "Lowest").

    NuGet quirk: a prerelease candidate is considered only if some range bound is itself a prerelease;
    we follow that, so ``1.0`` never resolves to ``1.1.0-beta``.
    """
    wanted = list(ranges)
    prerelease_ok = any(r.allows_prerelease() for r in wanted)
    candidates = [v for v in set(available)
                  if (prerelease_ok or not v.is_prerelease) and all(r.satisfies(v) for r in wanted)]
    return min(candidates) if candidates else None


def highest(available: Iterable[NuGetVersion], *, prerelease: bool) -> NuGetVersion | None:
    """The highest version, stable only unless ``prerelease`` (what ``install ID`` without a version picks)."""
    candidates = [v for v in available if prerelease or not v.is_prerelease]
    return max(candidates) if candidates else None
