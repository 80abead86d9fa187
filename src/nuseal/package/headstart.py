"""A SHA-256 pass over a package file from its first byte, started before its zip layout is known (issue 12).

The §2.2 stream of an ordinary signed package begins with bytes ``[0, X)`` of the file (every entry before the
signature entry). ``nuseal verify`` starts this pass right after the interpreter (``nuseal.cli.prefetch``), before
the zip reader and its records are imported; the pass keeps a copy of its hash state (``hash.copy()``, ~100 bytes)
at every window boundary, so that once the layout says what ``X`` is, ``hashing.prefetch`` resumes from the
checkpoint below ``X`` and hashes the rest of the stream (``state_at``). A pass that turns out not to fit (another
algorithm, a stream that does not start at byte 0, a changed file) is stopped and forgotten.

Only the standard library is imported here: the point is to start before everything else. The windows are
read-only mappings as in ``nuseal.package.fileio`` (which this module does not import, for its imports).

While a pass runs, hashing or prefetching, the GIL switch interval is short (``SwitchInterval``): the pass needs
the GIL back after every window, and the main thread, importing the verifier, would otherwise hold it for 5 ms each
time (docs/performance.md, "Hashing a large package ahead of the verifier").
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
import stat
import sys
import threading
from collections.abc import Iterator

#: Bytes per mapped window (as ``fileio.MAP_WINDOW``).
WINDOW = 4 << 20

#: The GIL switch interval while a pass runs (seconds; Python's default is 0.005).
#:
#: A hashing thread needs the GIL back after every window it hashed (and after each mmap/munmap around it). While
#: the main thread runs Python code (importing the verifier, verifying the previous package) it gives the GIL up
#: only when asked and only after the switch interval: at the default 5 ms the thread waited 1.3-2.4 ms for every
#: ms of hashing. At 0.1 ms the wait is ~0.1 ms per ms. The main thread pays only the switches the hashing thread
#: asks for (a few hundred per 200 MB, microseconds each): with no other thread waiting the interval changes
#: nothing. Larger windows would also mean fewer switches, but every mapped byte counts in the resident set.
SWITCH_INTERVAL = 0.0001

_lock = threading.Lock()


class SwitchInterval:
    """``SWITCH_INTERVAL`` while at least one pass runs; the interval found before, after the last one."""

    running = 0
    saved = 0.0

    @classmethod
    @contextlib.contextmanager
    def shortened(cls) -> Iterator[None]:
        with _lock:
            if cls.running == 0:
                cls.saved = sys.getswitchinterval()
                sys.setswitchinterval(min(cls.saved, SWITCH_INTERVAL))
            cls.running += 1
        try:
            yield
        finally:
            with _lock:
                cls.running -= 1
                if cls.running == 0:
                    sys.setswitchinterval(cls.saved)


Identity = tuple[int, int, int, int]


def identity_of(status: os.stat_result) -> Identity:
    """Device, inode, size and mtime: the same file, unchanged, when they are equal."""
    return status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns


class RawPass:
    """SHA-256 of the file from byte 0, window by window, on a thread; a copy of the state at every boundary."""

    def __init__(self, fd: int, identity: Identity) -> None:
        self.identity = identity
        self._fd = fd
        self._checkpoints: list[tuple[int, hashlib._Hash]] = [(0, hashlib.sha256())]
        self._stop_at = identity[2]  # lowered by ``state_at``: nothing past the range it needs is hashed
        self._done = False
        self.taken = False
        self._changed = threading.Condition(_lock)
        self.thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)

    def _run(self) -> None:
        try:
            with SwitchInterval.shortened():
                self._hash()
        except Exception:  # what was hashed before the failure is still used; the rest is read again
            pass
        finally:
            with self._changed:
                self._done = True
                self._changed.notify_all()
            os.close(self._fd)

    def _hash(self) -> None:
        digest = hashlib.sha256()
        position = 0
        flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
        while True:
            with _lock:
                end = min(self._stop_at, position + WINDOW)
            if position >= end:
                return
            # ``position`` is a multiple of WINDOW, so a valid mapping offset.
            mapping = mmap.mmap(self._fd, end - position, offset=position, flags=flags, prot=mmap.PROT_READ)
            try:
                with memoryview(mapping) as view:
                    digest.update(view)
            finally:
                mapping.close()
            position = end
            with self._changed:
                self._checkpoints.append((position, digest.copy()))
                self._changed.notify_all()

    def state_at(self, offset: int) -> tuple[int, hashlib._Hash]:
        """``(position, state)``: a SHA-256 state after bytes ``[0, position)``, ``position`` <= ``offset`` and as
        close to it as the pass got; waits until the pass has reached ``offset`` or ended, stops it there and
        returns once its thread has ended (so that the command can exit without waiting for it). The caller hashes
        bytes ``[position, offset)`` itself (none when the pass got there)."""
        with self._changed:
            self._stop_at = min(self._stop_at, offset)
            while not self._done and self._checkpoints[-1][0] < offset:
                self._changed.wait()
            position, state = max((c for c in self._checkpoints if c[0] <= offset), key=lambda c: c[0])
        self.thread.join()  # it stops at ``offset``: at most the window it is in
        return position, state.copy()

    def stop(self) -> None:
        """Stop at the next window boundary; returns once the thread has ended."""
        with self._changed:
            self._stop_at = 0
        self.thread.join()


THREAD_NAME = "nuseal-headstart-hash"
_passes: dict[Identity, RawPass] = {}


def start(path: str) -> bool:
    """Start a pass over ``path`` (a regular file that can be mapped); False when it cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except (OSError, ValueError):
        return False
    try:
        status = os.fstat(fd)
    except OSError:
        os.close(fd)
        return False
    if not stat.S_ISREG(status.st_mode) or not hasattr(mmap, "MAP_SHARED"):
        os.close(fd)
        return False
    job = RawPass(fd, identity_of(status))
    with _lock:
        if job.identity in _passes:
            os.close(fd)
            return True
        _passes[job.identity] = job
        job.thread.start()  # under the lock: ``stop_all`` never sees a registered pass not yet started
    return True


def take(identity: Identity) -> RawPass | None:
    """The pass over the file with ``identity`` (running or ended: its checkpoints stay), if one was started and
    not taken yet (used once)."""
    with _lock:
        job = _passes.get(identity)
        if job is None or job.taken:
            return None
        job.taken = True
        return job


def stop_all() -> None:
    """Stop every pass, taken or not, and forget them; returns once their threads have ended."""
    with _lock:
        jobs = list(_passes.values())
        _passes.clear()
    for job in jobs:
        job.stop()
