"""Starting the hash of the package ``nuseal verify`` checks before the verifier is imported (issue 12).

Verifying a large package is mostly hashing it, and importing the verifier is most of the rest: the hash runs on
another core meanwhile and the verifier takes its digest when it gets there. The earlier it starts the more of it
is hidden, so the console entry starts a SHA-256 pass from the file's first byte from the raw command line, before
even the command-line parser or the zip reader is imported (``from_command_line``, ``nuseal.package.headstart``:
standard library only). ``nuseal.cli.verify_run`` then calls ``for_paths`` with the parsed, expanded paths
(``nuseal.package.hashing.prefetch``): it reads the zip layout, carries that pass on to the §2.2 stream when it
fits, and starts one itself otherwise (globs, command lines typer parses, another algorithm).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence  # loaded with os already; typing and pathlib are not, and wait

#: Below this size the hash is over before a thread would help.
PREFETCH_MIN_BYTES = 4 << 20


def _large_file(word: str) -> bool:
    try:
        status = os.stat(word)
    except (OSError, ValueError):
        return False
    return stat.S_ISREG(status.st_mode) and status.st_size >= PREFETCH_MIN_BYTES


def from_command_line(words: Sequence[str]) -> None:
    """Prefetch the package of ``nuseal verify WORDS`` when exactly one word that is not an option names a file of
    at least ``PREFETCH_MIN_BYTES``.

    A guess made before parsing, and a harmless one when wrong: a file that is not verified after all is hashed on
    another core for nothing; one that is not the only package (small ones next to it) is used if this process
    verifies it, and stopped first if the batch goes to worker processes (``nuseal.verify.batch``). Several large
    files are a batch: left to ``for_paths``, which knows whether this process verifies them.
    """
    large = [word for word in words if not word.startswith("-") and _large_file(word)]
    if len(large) == 1:
        from nuseal.package import headstart

        headstart.start(large[0])


def for_paths(paths: Sequence[os.PathLike[str]], workers: int) -> None:
    """Start hashing the first package on another core when it is large and this process verifies it, so that its
    hash overlaps the import of the rest of the library. Not for batches run by worker processes: they hash their
    own packages, and a running thread here would make the pool start them through a forkserver
    (``nuseal.parallel``)."""
    if not paths or (len(paths) > 1 and workers > 1):
        return
    if _large_file(os.fspath(paths[0])):
        from nuseal.package import hashing

        hashing.prefetch(os.fspath(paths[0]))
