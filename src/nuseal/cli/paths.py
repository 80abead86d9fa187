"""Package arguments: paths and globs, expanded the same way by verify, sign, repo-sign and remove-signature."""

from __future__ import annotations

from pathlib import Path

from msgspec import Struct

from nuseal.cli.guard import fail
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



#: Below this size the hash is over before a thread would help.
PREFETCH_MIN_BYTES = 4 << 20


def prefetch_hashes(paths: list[Path], workers: int) -> None:
    """Start hashing the first package on another core (``nuseal.package.hashing.prefetch``) when it is large and
    this process verifies it, so that its hash overlaps the import of the rest of the library; the verifier takes
    the digest when it gets there. Not for batches run by worker processes: they hash their own packages, and a
    running thread here would make the pool start them through a forkserver (``nuseal.parallel``)."""
    if not paths or (len(paths) > 1 and workers > 1):
        return
    try:
        large = paths[0].stat().st_size >= PREFETCH_MIN_BYTES
    except OSError:
        return  # its verdict will say so
    if large:
        from nuseal.package import hashing

        hashing.prefetch(paths[0])
