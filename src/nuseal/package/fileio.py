"""Package file I/O: reading large byte ranges at memory speed, one-pass copy-while-hashing, all-or-nothing outputs.

Reading. Hashing a package is the whole cost of verifying a large one. ``windows`` hands out large ranges as
read-only memory mappings of ``MAP_WINDOW`` bytes, each unmapped as soon as it is consumed: ``hashlib`` then hashes
straight from the page cache. A ``readinto`` loop copies every byte once more before hashing it, and on the
virtual machines nuseal is measured on that copy alone made the hash pass ~1.8x slower (bench/verify); peak memory
stays at a few windows whatever the package size. Small ranges, and files that cannot be mapped, are read into one
reused buffer. A file truncated by another process *while* it is mapped and read makes the kernel raise SIGBUS
(docs/decisions.md, "Reading large packages").

Writing. Signing copies almost the whole input unchanged (every local entry comes before the signature entry).
``RangeCopier`` writes those ranges to the output in the same pass that hashes them (nothing reads the input
twice): small copies are plain writes in the calling thread; large ones go to one writer thread that writes the
mapped windows with ``O_DIRECT`` (as ``dd oflag=direct`` does: no page-cache allocation for the output, which on
these machines costs more than hashing the same bytes, and a feed re-signing thousands of packages does not evict
its page cache) while the caller hashes the next window. Where ``O_DIRECT`` is refused (tmpfs, some network file
systems) the writer falls back to buffered writes; the bytes are the same either way.

Durability (docs/decisions.md, "Durable outputs"): ``atomic_output_path`` writes a temporary file next to the
destination and renames it into place; the rename is what makes the output all-or-nothing. With ``durable=True``
(the default) the file is fsynced before the rename and its folder after it, so a package reported as written
survives a crash or power loss; ``durable=False`` leaves both to the kernel's writeback (still all-or-nothing).
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import stat
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, BinaryIO

from nuseal.errors import PackageFormatError

if TYPE_CHECKING:
    from pathlib import Path  # imported where a path is made: hashing ahead (nuseal verify) starts before pathlib

#: Ranges at least this long are memory-mapped for reading; shorter ones are read into a buffer.
MAP_THRESHOLD = 1 << 20
#: Bytes per mapping. Large enough that the mmap/munmap calls do not show, small enough to keep memory flat.
MAP_WINDOW = 4 << 20
#: Bytes per read when a range is not mapped.
READ_CHUNK = 1 << 20
#: Copies at least this long are written by a writer thread (with O_DIRECT where possible) while the caller hashes.
DIRECT_COPY_THRESHOLD = 8 << 20
# O_DIRECT needs offsets, lengths and buffer addresses aligned to the device's logical block size; 4 KiB covers
# every common device (512-byte and 4K-native). Mapped windows are page-aligned, so they qualify as buffers.
_DIRECT_ALIGNMENT = 4096
# errno values meaning "this file system or file does not do O_DIRECT", not "the write failed".
_NO_DIRECT_IO = {errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP}
# Windows queued for the writer thread beyond the one it is writing: bounds memory, keeps the disk busy.
_WRITE_QUEUE = 1

Sink = Callable[[memoryview], object]


# --- reading ------------------------------------------------------------------------------------------------------


class Window:
    """A piece of a source file, ``view``, starting at file ``offset``. Valid until ``close()``.

    A mapped window is independent of the others (it can be handed to another thread); a read window shares the
    reader's buffer and is overwritten by the next one (``mapped`` says which).
    """

    __slots__ = ("_base", "_mapping", "mapped", "offset", "view")

    def __init__(self, offset: int, view: memoryview, base: memoryview | None, mapping: mmap.mmap | None) -> None:
        self.offset = offset
        self.view = view
        self._base = base
        self._mapping = mapping
        self.mapped = mapping is not None

    def close(self) -> None:
        """Release the view and unmap (a no-op for read windows)."""
        if self._mapping is None:
            return
        self.view.release()
        if self._base is not None:
            self._base.release()
        # A consumer that kept a slice of the view (it must not) would make close() fail: the GC unmaps it later.
        with contextlib.suppress(BufferError):
            self._mapping.close()
        self._mapping = None


def truncated(start: int, end: int, position: int, got: int) -> PackageFormatError:
    """The error for a source that ends before ``end`` while range ``[start, end)`` is read at ``position``."""
    return PackageFormatError(
        f"Truncated zip archive: expected {end - position} more bytes at offset {position} "
        f"(range {start}..{end}), read {got}."
    )


def _fileno(f: BinaryIO) -> int | None:
    try:
        return f.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError and a ValueError
        return None


def windows(f: BinaryIO, start: int, end: int, buffer: bytearray | None = None) -> Iterator[Window]:
    """Windows covering bytes ``[start, end)`` of ``f`` in order; ``PackageFormatError`` if ``f`` ends before.

    Large ranges of a real file are mapped (each window must be closed by the consumer, which may happen after
    the generator moved on); otherwise the bytes are read into ``buffer`` (``READ_CHUNK`` bytes if not given),
    one window at a time.
    """
    if end <= start:
        return
    fd = _fileno(f)
    status = os.fstat(fd) if fd is not None and end - start >= MAP_THRESHOLD else None
    if fd is not None and status is not None and stat.S_ISREG(status.st_mode):
        if status.st_size < end:
            raise truncated(start, end, start, max(0, status.st_size - start))
        mapped = _mapped_windows(fd, start, end)
        first = next(mapped, None)
        if first is not None:
            yield first
            yield from mapped
            return
    yield from _read_windows(f, start, end, buffer if buffer is not None else bytearray(READ_CHUNK))


def _mapped_windows(fd: int, start: int, end: int) -> Iterator[Window]:
    """Mapped windows; yields nothing at all when the file cannot be mapped (then the caller reads it)."""
    position = start
    if hasattr(mmap, "MAP_SHARED"):
        # Pre-faulted where the platform can (one call instead of a page fault per page).
        options: dict[str, int] = {"flags": mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0), "prot": mmap.PROT_READ}
    else:  # Windows
        options = {"access": mmap.ACCESS_READ}
    while position < end:
        base_offset = position - position % mmap.ALLOCATIONGRANULARITY
        length = min(end, base_offset + MAP_WINDOW) - base_offset
        try:
            mapping = mmap.mmap(fd, length, offset=base_offset, **options)
        except (OSError, ValueError):
            if position == start:
                return  # not mappable (a pipe, a special file): read it instead
            raise
        base = memoryview(mapping)
        view = base[position - base_offset:]
        yield Window(position, view, base, mapping)
        position = base_offset + length


def _read_windows(f: BinaryIO, start: int, end: int, buffer: bytearray) -> Iterator[Window]:
    whole = memoryview(buffer)
    f.seek(start)
    position = start
    while position < end:
        want = min(len(buffer), end - position)
        view = whole[:want]
        got = f.readinto(view)  # type: ignore[attr-defined]
        if got != want:
            raise truncated(start, end, position, got or 0)
        yield Window(position, view, None, None)
        position += want


def feed_range(f: BinaryIO, start: int, end: int, sink: Sink, buffer: bytearray | None = None) -> None:
    """Send bytes ``[start, end)`` of ``f`` to ``sink`` window by window (``sink`` must not keep the view)."""
    for window in windows(f, start, end, buffer):
        try:
            sink(window.view)
        finally:
            window.close()


# --- writing ------------------------------------------------------------------------------------------------------


class RangeCopier:
    """Copies source ranges to consecutive offsets of an output file, optionally feeding every byte to a sink.

    ``copy(src, ranges, out_path, out_offset, sink)`` returns the output offset after the last byte. The caller
    keeps its own descriptor for ``out_path`` and writes whatever follows once ``copy`` returned.
    """

    @staticmethod
    def copy(src: BinaryIO, ranges: Sequence[tuple[int, int]], out_path: Path, out_offset: int = 0,
             sink: Sink | None = None) -> int:
        total = sum(max(0, end - start) for start, end in ranges)
        if total >= DIRECT_COPY_THRESHOLD and hasattr(os, "O_DIRECT"):
            with _BackgroundWriter(out_path) as writer:
                return _copy(src, ranges, out_offset, sink, writer)
        fd = os.open(out_path, os.O_WRONLY)
        try:
            return _copy(src, ranges, out_offset, sink, _InlineWriter(fd))
        finally:
            os.close(fd)


def _copy(src: BinaryIO, ranges: Sequence[tuple[int, int]], out_offset: int, sink: Sink | None,
          writer: _InlineWriter | _BackgroundWriter) -> int:
    # Sized to the copy when it is small (see hashing.feed_plan): a 1 MiB buffer is not free to allocate.
    buffer = bytearray(min(READ_CHUNK, max(1, sum(max(0, end - start) for start, end in ranges))))
    position = out_offset
    for start, end in ranges:
        for window in windows(src, start, end, buffer):
            size = len(window.view)
            if sink is not None:
                try:
                    sink(window.view)
                except BaseException:
                    window.close()
                    raise
            writer.write(window, position)  # owns the window from here, closes it even on error
            position += size
    return position


class _InlineWriter:
    """Buffered positional writes in the calling thread; closes each window once written."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def write(self, window: Window, offset: int) -> None:
        try:
            _pwrite_all(self.fd, window.view, offset)
        finally:
            window.close()


def _pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    done = 0
    while done < len(view):
        done += os.pwrite(fd, view[done:], offset + done)


class _BackgroundWriter:
    """One thread writing mapped windows (O_DIRECT where aligned and allowed) while the caller hashes the next one.

    Read (unmapped) windows are written at once in the caller's thread, after the queue drained, since their
    buffer is reused. Errors from the thread are raised by the next ``write`` or by ``__exit__``.
    """

    def __init__(self, out_path: Path) -> None:
        self._buffered_fd = os.open(out_path, os.O_WRONLY)
        self._direct_fd: int | None = None
        try:
            self._direct_fd = os.open(out_path, os.O_WRONLY | os.O_DIRECT)
        except OSError as exc:
            if exc.errno not in _NO_DIRECT_IO:
                os.close(self._buffered_fd)
                raise
        import queue  # here: verification reads through this module and never writes

        self._queue: queue.Queue[tuple[Window, int] | None] = queue.Queue(_WRITE_QUEUE)
        self._error: BaseException | None = None
        self._abandoned = False  # the caller failed: skip what is still queued
        self._thread = threading.Thread(target=self._run, name="nuseal-writer", daemon=True)
        self._thread.start()

    def __enter__(self) -> _BackgroundWriter:
        return self

    def write(self, window: Window, offset: int) -> None:
        try:
            self._raise_pending()
            if not window.mapped:
                self._drain()
                _pwrite_all(self._buffered_fd, window.view, offset)
        except BaseException:
            window.close()
            raise
        if window.mapped:
            self._queue.put((window, offset))
        else:
            window.close()

    def _drain(self) -> None:
        self._queue.join()
        self._raise_pending()

    def _raise_pending(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                window, offset = item
                try:
                    if self._error is None and not self._abandoned:
                        self._write(window, offset)
                except BaseException as exc:  # handed to the owning thread by write() / __exit__
                    self._error = exc
                finally:
                    window.close()
            finally:
                self._queue.task_done()

    def _write(self, window: Window, offset: int) -> None:
        view = window.view
        aligned = len(view) - len(view) % _DIRECT_ALIGNMENT
        # A window's memory is page-aligned exactly when its file offset is (mappings start on a page).
        page_aligned = offset % _DIRECT_ALIGNMENT == 0 and window.offset % _DIRECT_ALIGNMENT == 0
        if self._direct_fd is not None and aligned and page_aligned:
            try:
                _pwrite_all(self._direct_fd, view[:aligned], offset)
                view = view[aligned:]
                offset += aligned
            except OSError as exc:
                # Some file systems accept the O_DIRECT open and refuse the write: buffered from here on.
                if exc.errno not in _NO_DIRECT_IO:
                    raise
                os.close(self._direct_fd)
                self._direct_fd = None
        # The unaligned rest (the last partial block) goes past every direct write: no cached page is shared.
        _pwrite_all(self._buffered_fd, view, offset)

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._abandoned = exc is not None
        try:
            self._queue.put(None)
            self._thread.join()
        finally:
            if self._direct_fd is not None:
                os.close(self._direct_fd)
            os.close(self._buffered_fd)
        if exc is None:
            self._raise_pending()


# --- all-or-nothing outputs ---------------------------------------------------------------------------------------


def fsync_directory(folder: str | os.PathLike[str]) -> None:
    """Make a rename in ``folder`` durable (where the platform can open a directory)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # Windows and some file systems: the rename is as durable as it gets
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EBADF):  # directories that cannot be fsynced
            raise
    finally:
        os.close(fd)


#: Outputs up to this size are assembled from a source read whole into memory (``archive.SignedPackageWriter``):
#: one read, one write, no windows. Larger ones stream (and map, and copy with O_DIRECT) as above.
IN_MEMORY_LIMIT = MAP_THRESHOLD
_TMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_TMP_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789_"


def _tmp_token() -> str:
    """8 random characters, ``tempfile``'s alphabet and length (its ``mkstemp`` did this before: the temporary
    names look the same). ``os.urandom`` rather than ``random``: a forked worker would repeat its parent's
    sequence, and one draw per file costs less than ``tempfile``'s eight ``random.choice`` calls."""
    return "".join(_TMP_ALPHABET[b % 37] for b in os.urandom(8))


class AtomicFile:
    """A temporary file ``tmp`` in ``dst``'s folder, open for writing as ``fd``, that becomes ``dst`` on
    ``commit()`` and vanishes on ``abort()`` (docs/decisions.md, "Durable outputs").

    Hand-written instead of ``tempfile.mkstemp`` plus ``os.fdopen``: one ``open`` per output and no file object,
    Path or generator (a small package is signed in ~1 ms of CPU here, and that overhead was a tenth of it).
    Created 0600 (``mkstemp``'s mode); ``commit(mode=...)`` sets the final permission bits.
    """

    __slots__ = ("dst", "fd", "folder", "tmp")

    def __init__(self, dst: str | os.PathLike[str]) -> None:
        self.dst = os.fspath(dst)
        folder, name = os.path.split(self.dst)
        self.folder = folder or "."
        for _ in range(100):  # a name another process holds (O_EXCL) is retried with a new one
            self.tmp = os.path.join(folder, f".{name}.{_tmp_token()}.tmp")
            try:
                self.fd = os.open(self.tmp, _TMP_FLAGS, 0o600)
                return
            except FileExistsError:
                continue
        raise FileExistsError(errno.EEXIST, "No usable temporary name found", self.tmp)

    def commit(self, *, mode: int | None = None, durable: bool = True, sync_folder: bool = True) -> None:
        """Permission bits ``mode``, fsync (``durable``), close, rename onto ``dst``, then fsync the folder
        (``durable and sync_folder``). Up to the rename, a failure deletes the temporary file and raises."""
        try:
            if mode is not None:
                os.fchmod(self.fd, mode)
            if durable:
                os.fsync(self.fd)
            fd, self.fd = self.fd, -1
            os.close(fd)
            os.replace(self.tmp, self.dst)
        except BaseException:
            self.abort()
            raise
        if durable and sync_folder:
            fsync_directory(self.folder)

    def abort(self) -> None:
        """Close and delete the temporary file (``dst`` stays as it was)."""
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)


def pwrite_all(fd: int, views: Sequence[bytes | memoryview], offset: int = 0) -> int:
    """Write ``views`` one after the other at ``offset`` (one ``pwritev`` where the platform has it); the offset
    after the last byte."""
    if not hasattr(os, "pwritev"):
        for view in views:
            _pwrite_all(fd, memoryview(view), offset)
            offset += len(view)
        return offset
    pending = [memoryview(v) for v in views if len(v)]
    while pending:
        done = os.pwritev(fd, pending[:_IOV_MAX], offset)
        if done == 0:  # never for a regular file with room; do not spin
            raise OSError(errno.EIO, "the output accepted no bytes")
        offset += done
        while pending and done >= len(pending[0]):
            done -= len(pending[0])
            pending.pop(0)
        if done:
            pending[0] = pending[0][done:]
    return offset


_IOV_MAX = 1024


@contextlib.contextmanager
def atomic_output_path(
    dst: Path, *, mode_from: Path | None = None, durable: bool = True, sync_folder: bool = True
) -> Iterator[tuple[Path, BinaryIO]]:
    """Yield ``(temporary path, binary file)``; the file becomes ``dst`` only if the block completes.

    The temporary file lives in ``dst``'s directory so the final ``os.replace`` is a rename on one file system.
    ``durable``: fsync the file before the rename (a crash never leaves a renamed but empty package) and the
    folder after it (the rename itself survives a crash; ``sync_folder=False`` leaves that fsync to a caller that
    writes many files to one folder and fsyncs it once, before it reports them written). ``mode_from`` copies
    that file's permission bits (temporary files are created 0600). On any exception the temporary file is
    deleted and ``dst`` is left as it was.
    """
    from pathlib import Path

    target = AtomicFile(dst)
    try:
        with open(target.fd, "wb", closefd=False) as out:
            yield Path(target.tmp), out
        mode = os.stat(mode_from).st_mode & 0o7777 if mode_from is not None else None
    except BaseException:
        target.abort()
        raise
    target.commit(mode=mode, durable=durable, sync_folder=sync_folder)


@contextlib.contextmanager
def atomic_output(dst: Path, *, mode_from: Path | None = None, durable: bool = True) -> Iterator[BinaryIO]:
    """``atomic_output_path`` for callers that only need the file."""
    with atomic_output_path(dst, mode_from=mode_from, durable=durable) as (_, out):
        yield out
