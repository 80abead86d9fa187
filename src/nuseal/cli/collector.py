"""No cyclic garbage collection while ``nuseal verify`` starts, and none of start-up's objects looked at again.

Start-up (the imports, the command line, the trust setup) makes long-lived objects only, yet set off ~33 young and
3 middle collections: ~7 ms of CPU before the first package, about 5 % of verifying the 18 real vectors (issue 12).
The console entry pauses the collector before it imports anything (:func:`pause`); ``nuseal.cli.verify_run`` then
freezes what exists (``gc.freeze``: a generation that is never collected) and turns collection back on right before
the first package (:func:`after_start_up`), so verification collects as before, over its own objects only. Forked
workers keep the frozen pages shared too (``nuseal.forked`` freezes before it forks, in the order Python's
``gc.freeze`` documentation gives). Everything is undone on the way out: an in-process caller (tests) keeps its usual
collector.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager

_paused = False  # the console entry turned the collector off (pause) and nothing has turned it back on yet


def pause() -> None:
    """Turn the collector off for start-up (the console entry, before its imports); :func:`after_start_up` or
    :func:`resume` turns it back on."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def resume() -> None:
    """Undo :func:`pause` (a command line that goes to typer instead)."""
    global _paused
    if _paused:
        _paused = False
        gc.enable()


@contextmanager
def after_start_up() -> Iterator[Callable[[], None]]:
    """The collector off inside (if it was on, or paused by the entry); the callback given freezes what exists and
    turns it back on. On the way out the freeze is undone and the collector left as it was before :func:`pause`."""
    global _paused
    enabled = gc.isenabled() or _paused
    _paused = False
    frozen = False

    def start_collecting() -> None:
        nonlocal frozen
        if not frozen:
            gc.freeze()
            frozen = True
        if enabled:
            gc.enable()

    gc.disable()
    try:
        yield start_collecting
    finally:
        if frozen:
            gc.unfreeze()
        if enabled:
            gc.enable()
