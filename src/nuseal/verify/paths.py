"""Package arguments (paths and globs) to files, as NuGet's verify command expands them.

Apart from ``nuseal.verify.batch`` (which re-exports it) so that the CLI expands its arguments, and starts hashing a
large package (``nuseal.package.hashing.prefetch``), before it imports the verifier.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from pathlib import Path

__all__ = ["expand_paths"]


def expand_paths(patterns: Sequence[str]) -> tuple[list[Path], list[str]]:
    """Paths and globs → existing files (sorted per pattern, patterns in order) and the patterns that matched
    nothing. ``**`` recurses, as in NuGet's verify command."""
    found: list[Path] = []
    missing: list[str] = []
    for pattern in patterns:
        if glob.has_magic(pattern):
            matches = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
        else:
            matches = [Path(pattern)] if Path(pattern).is_file() else []
        if not matches:
            missing.append(pattern)
        found.extend(matches)
    return found, missing
