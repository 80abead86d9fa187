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
from pathlib import Path
from typing import BinaryIO

from msgspec import Struct

from nuseal.errors import NusealError, PackageFormatError
from nuseal.package import fileio
from nuseal.package.zipformat import (
    ArchiveLayout,
    SignatureEntry,
    find_signature_entry,
    has_signature_entry,
    pack_eocd_counts,
    read_eocd_counts,
    read_layout,
)

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


def _plan_digests(f: BinaryIO, plan: list[Segment], algorithms: tuple[str, ...]) -> tuple[bytes, ...]:
    digests = [_new_hash(name) for name in algorithms]

    def update(chunk: memoryview) -> None:
        for digest in digests:
            digest.update(chunk)

    feed_plan(f, plan, digests[0].update if len(digests) == 1 else update)
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


class _Prefetch(Struct):
    identity: tuple[int, int, int, int]
    plan: list[Segment]
    algorithms: tuple[str, ...]
    thread: threading.Thread | None = None
    result: tuple[bytes, ...] | None = None


_prefetches: dict[tuple[int, int, int, int], _Prefetch] = {}
_MAX_PREFETCHES = 8
_prefetch_lock = threading.Lock()


def _identity(f: BinaryIO) -> tuple[int, int, int, int] | None:
    try:
        st = os.fstat(f.fileno())
    except (AttributeError, OSError, ValueError):
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def prefetch(path: Path, algorithms: tuple[str, ...] = ("sha256",)) -> bool:
    """Start hashing the §2.2 stream of the signed package ``path`` in a background thread.

    A later ``package_hash``/``plan_digests`` of the same file (same device, inode, size and mtime) and plan then
    waits for that result instead of reading the file again. ``hashlib`` releases the GIL, so the hash runs on
    another core while this thread does something else: importing the verifier, verifying the previous package of
    a batch. Returns False (and starts nothing) for an unsigned, unreadable or malformed package: the verifier
    reports those itself.
    """
    try:
        f = open(path, "rb")  # noqa: SIM115 (the hashing thread closes it)
    except OSError:
        return False
    try:
        layout = read_layout(f)
        if not has_signature_entry(layout):
            f.close()
            return False
        plan = unsigned_view_plan(f, layout, find_signature_entry(f, layout, check_fields=False))
        identity = _identity(f)
        for name in algorithms:
            _new_hash(name)
    except (NusealError, OSError, ValueError):
        f.close()
        return False
    if identity is None:
        f.close()
        return False
    job = _Prefetch(identity, plan, algorithms)

    def run() -> None:
        # A failure leaves ``result`` unset: the verifier then reads the file itself and reports what is wrong.
        with contextlib.suppress(Exception), f:
            job.result = _plan_digests(f, plan, algorithms)

    job.thread = threading.Thread(target=run, name="nuseal-prefetch-hash", daemon=True)
    with _prefetch_lock:
        _prefetches[identity] = job
        while len(_prefetches) > _MAX_PREFETCHES:  # never used (say the verifier stopped before hashing): forget
            del _prefetches[next(iter(_prefetches))]
    job.thread.start()
    return True


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
