"""Package arguments (paths and globs) to files, as NuGet's verify command expands them.

Apart from ``nuseal.verify.batch`` (which re-exports it) so that the CLI expands its arguments, and starts hashing a
large package (``nuseal.package.hashing.prefetch``), before it imports the verifier.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = ["expand_paths", "has_magic"]


def has_magic(pattern: str) -> bool:
    """``glob.has_magic``: the pattern holds ``*``, ``?`` or ``[``. Written out so that a command line of plain
    paths never imports ``glob`` (its import compiles two regular expressions)."""
    return any(ch in pattern for ch in "*?[")


def expand_paths(patterns: Sequence[str]) -> tuple[list[Path], list[str]]:
    """Paths and globs → existing files (sorted per pattern, patterns in order) and the patterns that matched
    nothing. ``**`` recurses, as in NuGet's verify command."""
    found: list[Path] = []
    missing: list[str] = []
    for pattern in patterns:
        if has_magic(pattern):
            import glob

            matches = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
        else:
            matches = [Path(pattern)] if Path(pattern).is_file() else []
        if not matches:
            missing.append(pattern)
        found.extend(matches)
    return found, missing
