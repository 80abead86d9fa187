"""The package hash: the "package without its signature" stream of spec §2.2, computed while streaming.

The stream is described as a short plan of segments (file ranges copied verbatim, or literal bytes for the
patched CD headers and EOCD fields) and then fed window by window to a hash or a file. Adjacent file ranges are
merged, so for an ordinary package the hash pass is one range hashed from memory-mapped windows
(``fileio.windows``): ``hashlib`` speed, flat memory.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO

from nuseal.errors import NusealError, PackageFormatError
from nuseal.oids import SHA2_HASHES
from nuseal.package import fileio, headstart
from nuseal.package.zipformat import (
    ArchiveLayout,
    SignatureEntry,
    find_signature_entry,
    has_signature_entry,
    pack_eocd_counts,
    read_eocd_counts,
    read_layout,
    read_signature_bytes,
)
from nuseal.record import Struct

if TYPE_CHECKING:
    from pathlib import Path  # not imported to run: ``nuseal verify`` starts a prefetch before pathlib is loaded

CHUNK_SIZE = fileio.READ_CHUNK
SUPPORTED_ALGORITHMS = ("sha256", "sha384", "sha512")


class FileRange(Struct, frozen=True):
    """Bytes ``[start, end)`` of the input file."""

    start: int
    end: int


Segment = FileRange | bytes


def _entry_sizes(layout: ArchiveLayout) -> dict[int, int]:
    """Total size of every entry, keyed by CD index: distance to the next LFH offset (spec §2.2 step 3).

    Data descriptors and gaps before the next entry are thereby counted in the entry, as NuGet does.
    """
    by_offset = sorted(range(len(layout.headers)), key=lambda i: layout.headers[i].local_header_offset)
    start_of_cd = layout.start_of_central_directory
    sizes: dict[int, int] = {}
    for rank, index in enumerate(by_offset):
        offset = layout.headers[index].local_header_offset
        if rank + 1 < len(by_offset):
            following = layout.headers[by_offset[rank + 1]].local_header_offset
        else:
            following = start_of_cd
        if following < offset:
            raise PackageFormatError(
                f"Invalid package archive: entry {layout.headers[index].name!r} has its local file header at "
                f"offset {offset}, after the start of the central directory at {start_of_cd}."
            )
        sizes[index] = following - offset
    return sizes


class ArchiveParts(Struct, frozen=True):
    """An archive cut where a signature entry goes: entries, central directory, EOCD head, counts, tail.

    ``entries`` are the bytes before the central directory in output order (prefix bytes included);
    ``eocd_head`` is the EOCD signature and disk numbers (bytes 0..8, plus anything NuGet copies before them);
    ``counts`` are EOCD bytes 8..20 as numbers; ``tail`` is the rest of the file from EOCD byte 20.
    """

    entries: tuple[FileRange, ...]
    central_directory: Segment
    eocd_head: FileRange
    counts: tuple[int, int, int, int]
    tail: FileRange

    @property
    def entries_size(self) -> int:
        return sum(r.end - r.start for r in self.entries)

    def plan(self) -> list[Segment]:
        plan: list[Segment] = []
        for segment in (*self.entries, self.central_directory, self.eocd_head, pack_eocd_counts(*self.counts),
                        self.tail):  # fmt: skip
            _append(plan, segment)
        return plan


def _append(plan: list[Segment], segment: Segment) -> None:
    """Add ``segment``, dropping empty ranges and merging a range that continues the previous one."""
    if isinstance(segment, bytes):
        plan.append(segment)
        return
    if segment.end <= segment.start:
        return
    last = plan[-1] if plan else None
    if isinstance(last, FileRange) and last.end == segment.start:
        plan[-1] = FileRange(last.start, segment.end)
    else:
        plan.append(segment)


def unsigned_view(f: BinaryIO, layout: ArchiveLayout, entry: SignatureEntry) -> ArchiveParts:
    """The §2.2 stream (the package without its signature entry) as parts, following the spec step by step."""
    headers = layout.headers
    sizes = _entry_sizes(layout)
    sig = entry.index
    others = sorted(
        (i for i in range(len(headers)) if i != sig), key=lambda i: headers[i].local_header_offset
    )

    entries: list[Segment] = []
    # 5.1: bytes before the first local header (normally none).
    _append(entries, FileRange(0, layout.start_of_local_headers))

    # Step 4 + 5.2: entries in LFH-offset order, each rebased to the running total from 0.
    new_offsets: dict[int, int] = {}
    running = 0
    for index in others:
        offset = headers[index].local_header_offset
        new_offsets[index] = running
        running += sizes[index]
        _append(entries, FileRange(offset, offset + sizes[index]))

    # 5.3: CD headers in CD order with the LFH offset replaced (mod 2^32 in to_bytes).
    central_directory = b"".join(headers[i].to_bytes(new_offsets[i]) for i in range(len(headers)) if i != sig)

    # 5.4: the EOCD, *assumed* to start right after the last CD header (NuGet does not look at the real one).
    eocd_start = layout.end_of_central_directory
    on_disk, total, cd_size, cd_offset = read_eocd_counts(f, eocd_start)
    return ArchiveParts(
        entries=tuple(r for r in entries if isinstance(r, FileRange)),
        central_directory=central_directory,
        eocd_head=FileRange(eocd_start, eocd_start + 8),
        counts=(on_disk - 1, total - 1, cd_size - entry.central.header_size, cd_offset - sizes[sig]),
        tail=FileRange(eocd_start + 20, layout.file_size),
    )


def unsigned_view_plan(f: BinaryIO, layout: ArchiveLayout, entry: SignatureEntry) -> list[Segment]:
    """The §2.2 stream as segments."""
    return unsigned_view(f, layout, entry).plan()


def feed_plan(f: BinaryIO, plan: list[Segment], sink: Callable[[memoryview], object]) -> None:
    """Send every byte of ``plan`` to ``sink``: large file ranges as memory-mapped windows, the rest through one
    reused ``CHUNK_SIZE`` buffer (``fileio.windows``).

    ``sink`` must consume each chunk before returning (the memory is unmapped or overwritten afterwards).
    """
    # No larger than the ranges need: a 1 MiB buffer for a few KB (a small package, a central directory) cost more to
    # allocate and fault in than reading them (~0.1-0.2 ms per call, several calls per signature).
    buffer = bytearray(min(CHUNK_SIZE, max(1, sum(s.end - s.start for s in plan if not isinstance(s, bytes)))))
    for segment in plan:
        if isinstance(segment, bytes):
            sink(memoryview(segment))
        else:
            fileio.feed_range(f, segment.start, segment.end, sink, buffer)


def _new_hash(algorithm: str) -> hashlib._Hash:
    if algorithm not in SUPPORTED_ALGORITHMS:
        raise ValueError(
            f"unsupported package hash algorithm {algorithm!r}; use one of {SUPPORTED_ALGORITHMS}"
        )
    return hashlib.new(algorithm)


def plan_digests(f: BinaryIO, plan: list[Segment], algorithms: tuple[str, ...]) -> tuple[bytes, ...]:
    """Digests of the bytes ``plan`` describes, one per algorithm, all from one read of the file (or from a
    ``prefetch`` of the same file and plan, if one was started)."""
    prefetched = _take_prefetched(f, plan, algorithms)
    if prefetched is not None:
        return prefetched
    return _plan_digests(f, plan, algorithms)


def _plan_digests(f: BinaryIO, plan: list[Segment], algorithms: tuple[str, ...],
                  stopped: Callable[[], bool] | None = None,
                  head: headstart.RawPass | None = None) -> tuple[bytes, ...]:
    """The digests; ``_Stopped`` before the next window once ``stopped()`` is true.

    ``head``: a SHA-256 pass over the file from byte 0, already running; the plan must then be SHA-256 only and
    start with a file range from byte 0, which is taken from the pass as far as it got.
    """
    if head is not None:
        first = plan[0]
        assert algorithms == ("sha256",) and isinstance(first, FileRange) and first.start == 0
        position, state = head.state_at(first.end)
        digests = [state]
        plan = [FileRange(position, first.end), *plan[1:]]
    else:
        digests = [_new_hash(name) for name in algorithms]

    def update(chunk: memoryview) -> None:
        if stopped is not None and stopped():
            raise _Stopped
        for digest in digests:
            digest.update(chunk)

    feed_plan(f, plan, digests[0].update if len(digests) == 1 and stopped is None else update)
    return tuple(digest.digest() for digest in digests)


def plan_hash(f: BinaryIO, plan: list[Segment], algorithm: str) -> bytes:
    """Digest of the bytes ``plan`` describes, with ``algorithm`` ("sha256", "sha384" or "sha512")."""
    return plan_digests(f, plan, (algorithm,))[0]


def package_hash(f: BinaryIO, layout: ArchiveLayout, entry: SignatureEntry, algorithm: str) -> bytes:
    """Digest of the §2.2 stream with ``algorithm`` ("sha256", "sha384" or "sha512")."""
    return plan_hash(f, unsigned_view_plan(f, layout, entry), algorithm)


def file_hash(f: BinaryIO, algorithm: str) -> bytes:
    """Digest of the whole file (what the signer hashes, spec §2.1)."""
    return plan_hash(f, [FileRange(0, f.seek(0, 2))], algorithm)


def content_hash(path: Path) -> str:
    """NuGet's package content hash (``.nupkg.metadata`` ``contentHash``): base64 SHA-512 (spec §2.3).

    Signed packages (level 1) hash the §2.2 stream without the signature entry's field checks, as NuGet
    does; unsigned ones hash the whole file.
    """
    with open(path, "rb") as f:
        layout = read_layout(f)
        if has_signature_entry(layout):
            entry = find_signature_entry(f, layout, check_fields=False)
            raw = package_hash(f, layout, entry, "sha512")
        else:
            raw = file_hash(f, "sha512")
    return base64.b64encode(raw).decode("ascii")


# --- hashing ahead of time ----------------------------------------------------------------------------------------

#: In ``prefetch``'s algorithms: the package hash algorithm the package's signature names.
SIGNED_ALGORITHM = "signed"

#: The GIL switch interval while a prefetch runs (``headstart.SWITCH_INTERVAL``, which says why).
PREFETCH_SWITCH_INTERVAL = headstart.SWITCH_INTERVAL


class _Prefetch(Struct):
    identity: tuple[int, int, int, int]
    plan: list[Segment]
    algorithms: tuple[str, ...]
    thread: threading.Thread | None = None
    result: tuple[bytes, ...] | None = None


_prefetches: dict[tuple[int, int, int, int], _Prefetch] = {}
_MAX_PREFETCHES = 8
_prefetch_lock = threading.Lock()


class _Stopped(Exception):
    """A prefetch was stopped (``stop_prefetches``)."""


class _Generation:
    """Prefetches started before the last ``stop_prefetches`` stop at their next window."""

    current = 0


def _identity(f: BinaryIO) -> tuple[int, int, int, int] | None:
    try:
        st = os.fstat(f.fileno())
    except (AttributeError, OSError, ValueError):
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _signed_algorithm(f: BinaryIO, entry: SignatureEntry) -> str:
    """The package hash algorithm the signature names, found as the ``<oid>-Hash:`` text of its signed content
    (spec §3) in the signature file's bytes: a guess, good enough to choose what to hash ahead (the verifier
    parses the signature and hashes again if the guess was wrong), for the cost of a byte search instead of the
    CMS parser's imports. SHA-256 when no such text is found."""
    try:
        data = read_signature_bytes(f, entry)
    except NusealError:
        return "sha256"
    found = [(data.find(oid.encode("ascii") + b"-Hash:"), name) for oid, name in SHA2_HASHES.items()]
    return min(((at, name) for at, name in found if at >= 0), default=(0, "sha256"))[1]


def prefetch(path: str | Path, algorithms: tuple[str, ...] = (SIGNED_ALGORITHM,)) -> bool:
    """Start hashing the §2.2 stream of the signed package ``path`` in a background thread.

    ``algorithms`` are hashlib names or ``SIGNED_ALGORITHM`` (the one the package's signature names). A later
    ``package_hash``/``plan_digests`` of the same file (same device, inode, size and mtime) and plan, with
    algorithms among these, then waits for that result instead of reading the file again. ``hashlib`` releases the
    GIL, so the hash runs on another core while this thread does something else: importing the verifier, verifying
    the previous package of a batch. Returns False (and starts nothing) for an unsigned, unreadable or malformed
    package: the verifier reports those itself; True also when a prefetch of the same file and algorithms is
    already running (a second one would only hash it twice).
    """
    try:
        f = open(path, "rb")  # noqa: SIM115 (the hashing thread closes it)
    except OSError:
        return False
    identity = _identity(f)
    try:
        layout = read_layout(f)
        if identity is None or not has_signature_entry(layout):
            raise ValueError("not a signed package")
        entry = find_signature_entry(f, layout, check_fields=False)
        plan = unsigned_view_plan(f, layout, entry)
        if SIGNED_ALGORITHM in algorithms:
            signed = _signed_algorithm(f, entry)
            algorithms = tuple(dict.fromkeys(signed if name == SIGNED_ALGORITHM else name for name in algorithms))
        for name in algorithms:
            _new_hash(name)
    except (NusealError, OSError, ValueError):
        f.close()
        head = headstart.take(identity) if identity is not None else None
        if head is not None:
            head.stop()  # nothing to carry it on to
        return False
    with _prefetch_lock:
        running = _prefetches.get(identity)
        if running is not None and running.plan == plan and set(algorithms) <= set(running.algorithms):
            f.close()
            return True
    job = _Prefetch(identity, plan, algorithms)
    generation = _Generation.current
    # A pass from byte 0 started before the layout was known (``headstart``) carries on if it fits this stream.
    head = headstart.take(identity)
    first = plan[0] if plan else None
    if head is not None and not (algorithms == ("sha256",) and isinstance(first, FileRange) and first.start == 0):
        head.stop()
        head = None

    def run() -> None:
        # A failure leaves ``result`` unset: the verifier then reads the file itself and reports what is wrong.
        with contextlib.suppress(Exception), f, headstart.SwitchInterval.shortened():
            job.result = _plan_digests(f, plan, algorithms, lambda: _Generation.current != generation, head)

    job.thread = threading.Thread(target=run, name="nuseal-prefetch-hash", daemon=True)
    with _prefetch_lock:
        _prefetches[identity] = job
        while len(_prefetches) > _MAX_PREFETCHES:  # never used (say the verifier stopped before hashing): forget
            del _prefetches[next(iter(_prefetches))]
        job.thread.start()  # under the lock: ``stop_prefetches`` never sees a registered job not yet started
    return True


def stop_prefetches() -> None:
    """Stop every prefetch that is running (within a window) and forget them all; returns once their threads have
    ended. For a caller about to fork worker processes that hash their own packages: a process with other threads
    running cannot fork them safely (``nuseal.parallel``)."""
    with _prefetch_lock:
        _Generation.current += 1
        jobs = list(_prefetches.values())
        _prefetches.clear()
    headstart.stop_all()
    for job in jobs:
        if job.thread is not None:
            job.thread.join()


def _take_prefetched(f: BinaryIO, plan: list[Segment], algorithms: tuple[str, ...]) -> tuple[bytes, ...] | None:
    if not _prefetches:
        return None
    identity = _identity(f)
    with _prefetch_lock:
        job = _prefetches.get(identity) if identity is not None else None
        if job is None or job.plan != plan or not set(algorithms) <= set(job.algorithms):
            return None
        del _prefetches[identity]  # type: ignore[arg-type]
    assert job.thread is not None
    job.thread.join()
    if job.result is None:
        return None  # it failed: hash again here, where the error is reported
    return tuple(job.result[job.algorithms.index(name)] for name in algorithms)


def file_sha512_base64(path: Path) -> str:
    """The whole file's SHA-512, base64: what NuGet writes to ``.nupkg.sha512`` next to an installed package and
    what a feed records as the package hash."""
    with path.open("rb") as handle:
        return base64.b64encode(hashlib.file_digest(handle, "sha512").digest()).decode("ascii")
