"""Writing package files: all-or-nothing outputs, and copying large unchanged byte ranges quickly.

Signing a package copies almost all of it unchanged (every local entry comes before the new signature
entry). For large packages that copy, not the hash, used to dominate: each buffered write needs fresh
page-cache pages, which on virtual machines that hand freed memory back to the host costs more than
hashing the same bytes. Large ranges are therefore written with ``O_DIRECT`` from one reused, aligned
buffer (as ``dd oflag=direct`` does), which also keeps a feed re-signing thousands of packages from
evicting the page cache. Where ``O_DIRECT`` is unavailable (tmpfs, macOS, some network file systems) the
copy falls back to ordinary buffered writes; the bytes written are the same either way.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

# O_DIRECT needs offsets, lengths and buffer addresses aligned to the device's logical block size;
# 4 KiB covers every common device (512-byte and 4K-native).
_DIRECT_ALIGNMENT = 4096
_COPY_BUFFER_SIZE = 4 << 20
# Below this the page cache is cheap and a synchronous direct write would only add latency.
DIRECT_COPY_THRESHOLD = 8 << 20
# errno values meaning "this file system or file does not do O_DIRECT", not "the copy failed".
_NO_DIRECT_IO = {errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP}


@contextlib.contextmanager
def atomic_output_path(dst: Path, *, mode_from: Path | None = None) -> Iterator[tuple[Path, BinaryIO]]:
    """Yield ``(temporary path, binary file)``; the file becomes ``dst`` only if the block completes.

    The temporary file lives in ``dst``'s directory so the final ``os.replace`` is a rename on one file
    system; it is fsynced first so a crash never leaves a renamed but empty package. ``mode_from`` copies
    that file's permission bits (temporary files are created 0600). On any exception the temporary file
    is deleted and ``dst`` is left as it was.
    """
    dst = Path(dst)
    fd, tmp_name = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            yield tmp, out
            out.flush()
            os.fsync(out.fileno())
        if mode_from is not None:
            os.chmod(tmp, Path(mode_from).stat().st_mode & 0o7777)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_output(dst: Path, *, mode_from: Path | None = None) -> Iterator[BinaryIO]:
    """``atomic_output_path`` for callers that only need the file."""
    with atomic_output_path(dst, mode_from=mode_from) as (_, out):
        yield out


class CopyCancelled(Exception):
    """Raised inside a background copy when its owner gave up (the output is being deleted)."""


def copy_prefix(src_fd: int, dst_path: Path, length: int, cancel: threading.Event | None = None) -> None:
    """Write bytes ``[0, length)`` of ``src_fd`` to the start of the existing file ``dst_path``.

    Large copies go through ``O_DIRECT`` for the block-aligned part and a buffered write for the last
    partial block (beyond the current end of file, so the two never share a cached page). ``cancel`` is
    checked between chunks. The caller keeps its own descriptor for ``dst_path`` and writes what follows
    ``length`` once this returns.
    """
    direct_end = 0
    if length >= DIRECT_COPY_THRESHOLD and hasattr(os, "O_DIRECT"):
        direct_end = _copy_direct(src_fd, dst_path, length - length % _DIRECT_ALIGNMENT, cancel)
    if direct_end < length:
        _copy_buffered(src_fd, dst_path, direct_end, length, cancel)


def _copy_direct(src_fd: int, dst_path: Path, length: int, cancel: threading.Event | None) -> int:
    """Copy ``[0, length)`` (aligned) with O_DIRECT; 0 if the file system refused O_DIRECT before any byte."""
    try:
        dst_fd = os.open(dst_path, os.O_WRONLY | os.O_DIRECT)
    except OSError as exc:
        if exc.errno in _NO_DIRECT_IO:
            return 0
        raise
    # An anonymous mmap is page-aligned, as O_DIRECT requires of the buffer address.
    buffer = mmap.mmap(-1, _COPY_BUFFER_SIZE)
    view = memoryview(buffer)
    try:
        _copy_range(src_fd, dst_fd, 0, length, view, cancel)
        return length
    except OSError as exc:
        # Some file systems accept the O_DIRECT open and refuse the first write.
        if exc.errno in _NO_DIRECT_IO and os.fstat(dst_fd).st_size == 0:
            return 0
        raise
    finally:
        os.close(dst_fd)
        # A propagating traceback can still hold a slice of the buffer; then the GC unmaps it later.
        with contextlib.suppress(BufferError):
            view.release()
            buffer.close()


def _copy_buffered(src_fd: int, dst_path: Path, start: int, end: int, cancel: threading.Event | None) -> None:
    dst_fd = os.open(dst_path, os.O_WRONLY)
    try:
        _copy_range(src_fd, dst_fd, start, end, memoryview(bytearray(min(_COPY_BUFFER_SIZE, end - start))), cancel)
    finally:
        os.close(dst_fd)


def _copy_range(
    src_fd: int, dst_fd: int, start: int, end: int, view: memoryview, cancel: threading.Event | None
) -> None:
    """Copy ``[start, end)`` to the same offsets through ``view``, checking ``cancel`` between chunks."""
    position = start
    while position < end:
        if cancel is not None and cancel.is_set():
            raise CopyCancelled
        want = min(len(view), end - position)
        got = os.preadv(src_fd, [view[:want]], position)
        if got != want:
            raise OSError(errno.EIO, f"source ended at offset {position + got}, expected {end} bytes")
        done = 0
        while done < want:
            done += os.pwrite(dst_fd, view[done:want], position + done)
        position += want


class BackgroundPrefixCopy:
    """``copy_prefix`` in a thread, so the unchanged part of a package is written while it is hashed.

    ``wait()`` re-raises whatever the copy raised; ``cancel()`` stops it at the next chunk and waits.
    """

    def __init__(self, src_fd: int, dst_path: Path, length: int) -> None:
        self._cancel = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(src_fd, dst_path, length), name="nuseal-prefix-copy", daemon=True
        )
        self._thread.start()

    def _run(self, src_fd: int, dst_path: Path, length: int) -> None:
        try:
            copy_prefix(src_fd, dst_path, length, self._cancel)
        except BaseException as exc:  # handed to the owning thread by wait()
            self._error = exc

    def wait(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error

    def cancel(self) -> None:
        self._cancel.set()
        self._thread.join()
