"""The package hash: the "package without its signature" stream of spec §2.2, computed while streaming.

The stream is described as a short plan of segments (file ranges copied verbatim, or literal bytes for the
patched CD headers and EOCD fields) and then fed chunk by chunk to a hash or a file. Adjacent file ranges are
merged, so for an ordinary package the hot loop is a few large ``readinto`` calls on one reused buffer.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from nuseal.errors import PackageFormatError
from nuseal.package.zipformat import (
    ArchiveLayout,
    SignatureEntry,
    find_signature_entry,
    has_signature_entry,
    pack_eocd_counts,
    read_eocd_counts,
    read_layout,
)

CHUNK_SIZE = 1 << 20
SUPPORTED_ALGORITHMS = ("sha256", "sha384", "sha512")


@dataclass(frozen=True, slots=True)
class FileRange:
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


def unsigned_view_plan(f: BinaryIO, layout: ArchiveLayout, entry: SignatureEntry) -> list[Segment]:
    """The §2.2 stream as segments, following the spec step by step."""
    headers = layout.headers
    sizes = _entry_sizes(layout)
    sig = entry.index
    others = sorted(
        (i for i in range(len(headers)) if i != sig), key=lambda i: headers[i].local_header_offset
    )

    plan: list[Segment] = []

    def add_range(start: int, end: int) -> None:
        if end <= start:
            return
        last = plan[-1] if plan else None
        if isinstance(last, FileRange) and last.end == start:
            plan[-1] = FileRange(last.start, end)
        else:
            plan.append(FileRange(start, end))

    # 5.1: bytes before the first local header (normally none).
    add_range(0, layout.start_of_local_headers)

    # Step 4 + 5.2: entries in LFH-offset order, each rebased to the running total from 0.
    new_offsets: dict[int, int] = {}
    running = 0
    for index in others:
        offset = headers[index].local_header_offset
        new_offsets[index] = running
        running += sizes[index]
        add_range(offset, offset + sizes[index])

    # 5.3: CD headers in CD order with the LFH offset replaced (mod 2^32 in to_bytes).
    plan.append(b"".join(headers[i].to_bytes(new_offsets[i]) for i in range(len(headers)) if i != sig))

    # 5.4: the EOCD, *assumed* to start right after the last CD header (NuGet does not look at the real one).
    eocd_start = layout.end_of_central_directory
    on_disk, total, cd_size, cd_offset = read_eocd_counts(f, eocd_start)
    add_range(eocd_start, eocd_start + 8)
    plan.append(
        pack_eocd_counts(on_disk - 1, total - 1, cd_size - entry.central.header_size, cd_offset - sizes[sig])
    )
    add_range(eocd_start + 20, layout.file_size)
    return plan


def feed_plan(f: BinaryIO, plan: list[Segment], sink: Callable[[memoryview], object]) -> None:
    """Send every byte of ``plan`` to ``sink``; file ranges go through one reused 1 MiB buffer.

    ``sink`` must consume each chunk before returning (the buffer is overwritten afterwards).
    """
    buffer = bytearray(CHUNK_SIZE)
    view = memoryview(buffer)
    for segment in plan:
        if isinstance(segment, bytes):
            sink(memoryview(segment))
            continue
        remaining = segment.end - segment.start
        if remaining <= 0:
            continue
        f.seek(segment.start)
        while remaining >= CHUNK_SIZE:
            got = f.readinto(buffer)  # type: ignore[attr-defined]
            if got != CHUNK_SIZE:
                raise _truncated(segment, remaining, got)
            sink(view)
            remaining -= CHUNK_SIZE
        if remaining:
            got = f.readinto(view[:remaining])  # type: ignore[attr-defined]
            if got != remaining:
                raise _truncated(segment, remaining, got)
            sink(view[:remaining])


def _truncated(segment: FileRange, wanted: int, got: int | None) -> PackageFormatError:
    position = segment.end - wanted
    return PackageFormatError(
        f"Truncated zip archive: expected {wanted} more bytes at offset {position} "
        f"(range {segment.start}..{segment.end}), read {got or 0}."
    )


def iter_unsigned_view(f: BinaryIO, layout: ArchiveLayout, entry: SignatureEntry) -> Iterator[bytes]:
    """Yield the bytes of the package without its signature entry (spec §2.2), in chunks of up to 1 MiB."""
    for segment in unsigned_view_plan(f, layout, entry):
        if isinstance(segment, bytes):
            yield segment
            continue
        position = segment.start
        while position < segment.end:
            f.seek(position)
            chunk = f.read(min(CHUNK_SIZE, segment.end - position))
            if not chunk:
                raise _truncated(segment, segment.end - position, 0)
            position += len(chunk)
            yield chunk


def _new_hash(algorithm: str) -> hashlib._Hash:
    if algorithm not in SUPPORTED_ALGORITHMS:
        raise ValueError(
            f"unsupported package hash algorithm {algorithm!r}; use one of {SUPPORTED_ALGORITHMS}"
        )
    return hashlib.new(algorithm)


def package_hash(f: BinaryIO, layout: ArchiveLayout, entry: SignatureEntry, algorithm: str) -> bytes:
    """Digest of the §2.2 stream with ``algorithm`` ("sha256", "sha384" or "sha512")."""
    digest = _new_hash(algorithm)
    feed_plan(f, unsigned_view_plan(f, layout, entry), digest.update)
    return digest.digest()


def file_hash(f: BinaryIO, algorithm: str) -> bytes:
    """Digest of the whole file (what the signer hashes, spec §2.1)."""
    size = f.seek(0, 2)
    digest = _new_hash(algorithm)
    feed_plan(f, [FileRange(0, size)], digest.update)
    return digest.digest()


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
