"""Package arguments: paths and globs, expanded the same way by verify, sign, repo-sign and remove-signature."""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

from nuseal.cli.base import fail


@dataclass(frozen=True)
class Unresolved:
    """A package argument that names no file, and why (the message names the argument)."""

    pattern: str
    message: str


def expand(patterns: list[str]) -> tuple[list[Path], list[Unresolved]]:
    """Files in argument order (each glob's matches sorted, each file once), and the arguments that name no file.

    A glob matches files only (``**`` recurses); a plain path must be a file: a folder is reported as one.
    """
    found: list[Path] = []
    unresolved: list[Unresolved] = []
    for pattern in patterns:
        if glob.has_magic(pattern):
            matches = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
            if not matches:
                unresolved.append(Unresolved(pattern, f"No file matches the pattern ({pattern})"))
            found.extend(matches)
        elif Path(pattern).is_file():
            found.append(Path(pattern))
        elif Path(pattern).is_dir():
            unresolved.append(Unresolved(pattern, f"The path is a directory, not a package file ({pattern})"))
        else:
            unresolved.append(Unresolved(pattern, f"File does not exist ({pattern})"))
    return list(dict.fromkeys(found)), unresolved


def expand_all(patterns: list[str]) -> list[Path]:
    """Every file the arguments name, or an error for the first argument that names none (nothing is done)."""
    found, unresolved = expand(patterns)
    if unresolved:
        fail(unresolved[0].message)
    return found
