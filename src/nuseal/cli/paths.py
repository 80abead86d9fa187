"""Package arguments: paths and globs, expanded the same way by verify, sign, repo-sign and remove-signature."""

from __future__ import annotations

from pathlib import Path

from nuseal.cli.guard import fail
from nuseal.record import Struct
from nuseal.verify.paths import expand_paths, has_magic


class Unresolved(Struct, frozen=True):
    """A package argument that names no file, and why (the message names the argument)."""

    pattern: str
    message: str


def expand(patterns: list[str]) -> tuple[list[Path], list[Unresolved]]:
    """Files in argument order (each glob's matches sorted, each file once), and the arguments that name no file.

    The expansion is the library's (``nuseal.verify.paths.expand_paths``: ``**`` recurses, globs match files only);
    this adds why an argument names no file: a folder is reported as one, not as a missing file.
    """
    found, missing = expand_paths(patterns)
    return list(dict.fromkeys(found)), [Unresolved(pattern, _why(pattern)) for pattern in missing]


def _why(pattern: str) -> str:
    if has_magic(pattern):
        return f"No file matches the pattern ({pattern})"
    if Path(pattern).is_dir():
        return f"The path is a directory, not a package file ({pattern})"
    return f"File does not exist ({pattern})"


def expand_all(patterns: list[str]) -> list[Path]:
    """Every file the arguments name, or an error for the first argument that names none (nothing is done)."""
    found, unresolved = expand(patterns)
    if unresolved:
        fail(unresolved[0].message)
    return found

