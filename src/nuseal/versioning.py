"""NuGet SemVer 2 versions and version ranges (NuGet.Versioning semantics, the parts restore uses).

``NuGetVersion.parse`` accepts 1-4 numeric parts, a dot-separated prerelease label and build metadata.
Ordering: numeric parts (missing parts are 0), then release > prerelease, then prerelease labels compared
part by part (numeric parts numerically and below alphanumeric ones, alphanumeric parts case-insensitively,
more parts win when all shared parts are equal). Build metadata is ignored for ordering and equality.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import total_ordering

from nuseal.package.nuspec import normalize_version

_LABEL = r"[0-9A-Za-z-]+"
_VERSION = re.compile(
    rf"^(?P<parts>\d+(?:\.\d+){{0,3}})(?:-(?P<release>{_LABEL}(?:\.{_LABEL})*))?(?:\+(?P<meta>{_LABEL}(?:\.{_LABEL})*))?$"
)


@total_ordering
@dataclass(frozen=True)
class NuGetVersion:
    """A parsed version. ``text`` is NuGet's normalized string (``1.0`` → ``1.0.0``, ``1.0.0.0`` → ``1.0.0``)."""

    numbers: tuple[int, int, int, int]
    release_labels: tuple[str, ...]
    text: str

    @classmethod
    def parse(cls, text: str) -> NuGetVersion:
        """``ValueError`` naming the text if it is not a NuGet version."""
        match = _VERSION.match(text.strip())
        if match is None:
            raise ValueError(f"'{text}' is not a valid NuGet version")
        numbers = [int(p) for p in match["parts"].split(".")]
        numbers += [0] * (4 - len(numbers))
        labels = tuple(match["release"].split(".")) if match["release"] else ()
        return cls((numbers[0], numbers[1], numbers[2], numbers[3]), labels, normalize_version(text))

    @property
    def is_prerelease(self) -> bool:
        return bool(self.release_labels)

    def _key(self) -> tuple[tuple[int, int, int, int], int, tuple[tuple[int, int, str], ...], int]:
        # A release sorts after every prerelease of the same numbers; labels compare part by part.
        labels = tuple((1, 0, part.lower()) if not part.isdigit() else (0, int(part), "")
                       for part in self.release_labels)
        return self.numbers, 0 if self.release_labels else 1, labels, len(self.release_labels)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NuGetVersion):
            return NotImplemented
        return self._key() == other._key()

    def __lt__(self, other: NuGetVersion) -> bool:
        return self._key() < other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class VersionRange:
    """A NuGet version range: ``1.0`` (``>= 1.0``), ``[1.0]`` (exact), ``[1.0,2.0)``, ``(,1.0]``, ``(1.0,)``."""

    min_version: NuGetVersion | None
    min_inclusive: bool
    max_version: NuGetVersion | None
    max_inclusive: bool
    text: str

    @classmethod
    def parse(cls, text: str) -> VersionRange:
        """``ValueError`` naming the text for malformed ranges. An empty string means any version (NuGet)."""
        raw = text.strip()
        if not raw:
            return cls(None, True, None, True, text)
        if raw[0] not in "[(":
            return cls(NuGetVersion.parse(raw), True, None, True, text)
        if len(raw) < 3 or raw[-1] not in ")]":
            raise ValueError(f"'{text}' is not a valid version range")
        inner = raw[1:-1]
        min_inclusive, max_inclusive = raw[0] == "[", raw[-1] == "]"
        if "," not in inner:
            if not (min_inclusive and max_inclusive):
                raise ValueError(f"'{text}' is not a valid version range (an exact version needs [ ])")
            exact = NuGetVersion.parse(inner)
            return cls(exact, True, exact, True, text)
        low_text, _, high_text = inner.partition(",")
        if "," in high_text:
            raise ValueError(f"'{text}' is not a valid version range (more than one comma)")
        low = NuGetVersion.parse(low_text) if low_text.strip() else None
        high = NuGetVersion.parse(high_text) if high_text.strip() else None
        if low is None and high is None:
            raise ValueError(f"'{text}' is not a valid version range (no bounds)")
        if low is not None and high is not None and (high < low or (high == low and not (min_inclusive
                                                                                           and max_inclusive))):
            raise ValueError(f"'{text}' is not a valid version range (empty)")
        return cls(low, min_inclusive, high, max_inclusive, text)

    def satisfies(self, version: NuGetVersion) -> bool:
        low, high = self.min_version, self.max_version
        if low is not None and (version < low or (version == low and not self.min_inclusive)):
            return False
        return high is None or version < high or (version == high and self.max_inclusive)

    def allows_prerelease(self) -> bool:
        """NuGet allows prerelease candidates for a dependency only when a bound itself is a prerelease."""
        return any(v is not None and v.is_prerelease for v in (self.min_version, self.max_version))

    def __str__(self) -> str:
        return self.text


def lowest_applicable(ranges: Iterable[VersionRange], available: Iterable[NuGetVersion]) -> NuGetVersion | None:
    """The lowest available version inside every range (NuGet's dependency behaviour "Lowest").

    NuGet quirk: a prerelease candidate is considered only if some range bound is itself a prerelease;
    we follow that, so ``1.0`` never resolves to ``1.1.0-beta``.
    """
    wanted = list(ranges)
    prerelease_ok = any(r.allows_prerelease() for r in wanted)
    candidates = sorted(v for v in set(available)
                        if (prerelease_ok or not v.is_prerelease) and all(r.satisfies(v) for r in wanted))
    return candidates[0] if candidates else None


def highest(available: Iterable[NuGetVersion], *, prerelease: bool) -> NuGetVersion | None:
    """The highest version, stable only unless ``prerelease`` (what ``install ID`` without a version picks)."""
    candidates = [v for v in available if prerelease or not v.is_prerelease]
    return max(candidates) if candidates else None
