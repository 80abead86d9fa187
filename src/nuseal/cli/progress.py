"""A progress bar for long batches (sign, repo-sign, verify): rich, on stderr, only where someone watches.

The bar is shown when stderr is a terminal, the batch has at least ``MIN_BATCH`` packages and the output is
not ``--json``; it is transient, so what stays on screen is exactly the command's normal output. rich is
imported only when a bar is shown, to keep it out of the start-up of one-package and scripted runs.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from rich.console import Console

MIN_BATCH = 2

Advance = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


@contextlib.contextmanager
def batch_progress(
    total: int, verb: str, *, enabled: bool = True, stream: TextIO | None = None, console: Console | None = None
) -> Iterator[Advance]:
    """Yield ``advance(name)``, called after each package; a bar is drawn when it helps (see module doc).

    ``console`` forces a particular rich console (tests pass one that records a terminal).
    """
    target = stream if stream is not None else sys.stderr
    if console is None and (not enabled or total < MIN_BATCH or not target.isatty()):
        yield _quiet
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn(f"{verb} {{task.fields[current]}}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console if console is not None else Console(file=target), transient=console is None,
    )  # fmt: skip
    task = progress.add_task(verb, total=total, current="")
    with progress:

        def advance(name: str) -> None:
            progress.update(task, advance=1, current=name)

        yield advance
