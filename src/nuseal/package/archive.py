"""Adding and removing the ``.signature.p7s`` entry, byte-exactly as NuGet does (spec §1.3, §1.4).

Both operations stream from the input to a temporary file next to the destination and rename it into place,
so the destination is never half-written and the source may be the destination. The long unchanged run of
local entries is copied by ``fileio.RangeCopier`` (in the same pass that hashes it, when signing).
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import zlib
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from nuseal.codes import Messages, NuCode
from nuseal.errors import PackageFormatError, SigningError
from nuseal.package.fileio import (
    IN_MEMORY_LIMIT,
    READ_CHUNK,
    AtomicFile,
    RangeCopier,
    atomic_output_path,
    pwrite_all,
)
from nuseal.package.hashing import (
    ArchiveParts,
    FileRange,
    Segment,
    feed_plan,
    unsigned_view,
    unsigned_view_plan,
)
from nuseal.package.zipformat import (
    SIGNATURE_FILE_NAME,
    CentralDirectoryHeader,
    LocalFileHeader,
    dos_datetime,
    find_signature_entry,
    has_signature_entry,
    is_zip64,
    pack_eocd_counts,
    read_layout,
)

# NuGet writes version 2.0 in both "made by" and "needed", no flags, stored, no extra field (spec §1.3).
_VERSION_20 = 20
_MAX_SIGNABLE_ENTRIES = 0xFFFE  # total entries >= this would need zip64 once the signature is added
_U32_MAX = 0xFFFFFFFF


def _signature_records(signature: bytes, dos_time: int, local_offset: int) -> tuple[bytes, bytes]:
    """The 44-byte LFH (without data) and the 60-byte CD header NuGet writes for the signature."""
    crc = zlib.crc32(signature) & _U32_MAX
    size = len(signature)
    local = LocalFileHeader(
        position=local_offset,
        version_needed=_VERSION_20,
        flags=0,
        method=0,
        dos_time=dos_time & 0xFFFF,
        dos_date=dos_time >> 16,
        crc32=crc,
        compressed_size=size,
        uncompressed_size=size,
        name=SIGNATURE_FILE_NAME,
        extra=b"",
    )
    central = CentralDirectoryHeader(
        position=0,
        version_made_by=_VERSION_20,
        version_needed=_VERSION_20,
        flags=0,
        method=0,
        dos_time=dos_time & 0xFFFF,
        dos_date=dos_time >> 16,
        crc32=crc,
        compressed_size=size,
        uncompressed_size=size,
        disk_start=0,
        internal_attributes=0,
        external_attributes=0,
        local_header_offset=local_offset,
        name=SIGNATURE_FILE_NAME,
        extra=b"",
        comment=b"",
    )
    return local.to_bytes(), central.to_bytes()


def _signable_parts(f: BinaryIO, *, replace_signature: bool = False, where: str = "") -> ArchiveParts:
    """Check that ``f`` can take a signature entry (spec §1.3) and cut it where the entry goes.

    Refuses zip64 (NU3006), an existing signature entry unless ``replace_signature`` (NU3001) and archives whose
    entry count would need zip64 after adding the entry (NU3039); the offset checks that depend on the
    signature's size are in ``_signed_plan``. With ``replace_signature`` a signed archive is cut as its §2.2
    view, so the old signature is dropped in the same pass that adds the new one (what NuGet does in two).
    ``where`` (the file's path) is named in the refusals.
    """
    at = f" ({where})" if where else ""
    try:
        layout = read_layout(f)
    except PackageFormatError:
        # NuGet checks zip64 before anything else, so even an empty zip64 archive (no CD headers) gets NU3006.
        if is_zip64(f):
            raise SigningError(Messages.ZIP64_NOT_SUPPORTED + at, NuCode.NU3006) from None
        raise
    if is_zip64(f, layout):
        raise SigningError(Messages.ZIP64_NOT_SUPPORTED + at, NuCode.NU3006)
    signed = has_signature_entry(layout)
    if signed and not replace_signature:
        raise SigningError(Messages.ALREADY_SIGNED + at, NuCode.NU3001)
    eocd = layout.eocd
    entries = eocd.total_entries - (1 if signed else 0)
    if entries >= _MAX_SIGNABLE_ENTRIES:
        raise SigningError(f"{Messages.WOULD_REQUIRE_ZIP64} ({where or 'it'} has {entries} entries)", NuCode.NU3039)
    if layout.end_of_central_directory > eocd.position:
        raise PackageFormatError(
            f"Invalid package archive: the central directory ends at offset {layout.end_of_central_directory}, "
            f"after the end of central directory record at {eocd.position}."
        )
    if signed:
        return unsigned_view(f, layout, find_signature_entry(f, layout))
    start_of_cd, end_of_cd = layout.start_of_central_directory, layout.end_of_central_directory
    return ArchiveParts(
        entries=(FileRange(0, start_of_cd),),
        central_directory=FileRange(start_of_cd, end_of_cd),
        # Whatever sits between the last CD header and the EOCD is copied, as NuGet does.
        eocd_head=FileRange(end_of_cd, eocd.position + 8),
        counts=(eocd.entries_on_disk, eocd.total_entries, eocd.cd_size, eocd.cd_offset),
        tail=FileRange(eocd.position + 20, layout.file_size),
    )


def _signed_plan(parts: ArchiveParts, signature: bytes, dos_time: int) -> list[Segment]:
    """The signed archive as segments: entries, the signature entry, the CD plus its header, the EOCD."""
    start_of_cd = parts.entries_size
    local, central = _signature_records(signature, dos_time, start_of_cd)
    on_disk, total, cd_size, cd_offset = parts.counts
    new_cd_offset = cd_offset + len(local) + len(signature)
    new_cd_size = cd_size + len(central)
    if start_of_cd > _U32_MAX or new_cd_offset > _U32_MAX or new_cd_size > _U32_MAX:
        raise SigningError(
            f"{Messages.WOULD_REQUIRE_ZIP64} (the central directory would start beyond 4 GiB)", NuCode.NU3039
        )
    return [
        *parts.entries,
        local,
        signature,
        parts.central_directory,
        central,
        parts.eocd_head,
        pack_eocd_counts(on_disk + 1, total + 1, new_cd_size, new_cd_offset),
        parts.tail,
    ]


def write_signed(f: BinaryIO, out: BinaryIO, signature: bytes, dos_time: int) -> None:
    """Stream ``f`` plus the signature entry to ``out`` (spec §1.3). ``dos_time`` is the packed u32."""
    feed_plan(f, _signed_plan(_signable_parts(f), signature, dos_time), out.write)


def _dos_time(moment: datetime | None) -> int:
    """NuGet stamps the entry with the local wall-clock time (``DateTime.Now``); default now."""
    moment = moment if moment is not None else datetime.now()
    return dos_datetime(moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second)


class SignedPackageWriter:
    """Writes ``src`` with a signature entry added to ``dst`` (may equal ``src``), all or nothing.

    Entering checks that ``src`` can be signed and creates a temporary output next to ``dst``. ``package_hash``
    then reads ``src`` once: the local entries, which the signature does not change, are hashed and written to
    the output in the same pass (large packages: written by a writer thread while the next window is hashed,
    ``fileio.RangeCopier``). The caller meanwhile has nothing else to wait for; it signs and timestamps, and
    ``finish(signature)`` appends the signature entry, the central directory and the EOCD, then fsyncs (unless
    ``durable=False``) and renames into place. Leaving the block without ``finish`` (or with an exception)
    deletes the temporary file and leaves ``dst`` untouched.

    A source of at most ``fileio.IN_MEMORY_LIMIT`` bytes (the usual package) is read whole by one ``read`` and its
    descriptor closed at once; ``finish`` writes the whole output with one ``pwritev`` from that memory (about 10
    system calls per package instead of ~40, and no windows, file objects or Paths: issue 12).

    ``replace_signature=True`` accepts a signed ``src`` and writes it without its old signature entry
    (``--overwrite``): the same bytes as removing the signature and then signing, in one pass.
    ``name_source=True`` puts ``src``'s path in the refusals (NU3006/NU3001/NU3039). ``durable`` and
    ``sync_folder``: see ``fileio.atomic_output_path``. The output gets ``src``'s permission bits (as read when
    entering).
    """

    def __init__(self, src: Path, dst: Path, *, replace_signature: bool = False, name_source: bool = False,
                 durable: bool = True, sync_folder: bool = True) -> None:
        # Path(p) parses p again even when it is a Path already (~5 us each).
        self._src = src if isinstance(src, Path) else Path(src)
        self._dst = dst if isinstance(dst, Path) else Path(dst)
        self._replace = replace_signature
        self._where = str(self._src) if name_source else ""
        self._durable = durable
        self._sync_folder = sync_folder
        self._done = False
        self._written: int | None = None  # output bytes so far, once the entries are written
        self._data: bytes | None = None  # the whole source, when small
        self._source: BinaryIO | None = None
        self._output: AtomicFile | None = None

    def __enter__(self) -> SignedPackageWriter:
        try:
            self._data, self._mode = _read_small(self._src)
            source = self._source = io.BytesIO(self._data) if self._data is not None else open(self._src, "rb")
            if self._data is None:
                self._mode = os.fstat(source.fileno()).st_mode & 0o7777
            self._parts = _signable_parts(source, replace_signature=self._replace, where=self._where)
            self._output = AtomicFile(self._dst)
        except BaseException:
            self._close()
            raise
        return self

    def _close(self) -> None:
        if self._output is not None:
            self._output.abort()
            self._output = None
        if self._source is not None:
            self._source.close()
            self._source = None

    def _write_entries(self, sink: Callable[[memoryview], object] | None) -> None:
        assert self._source is not None and self._output is not None
        ranges = [(r.start, r.end) for r in self._parts.entries]
        self._written = RangeCopier.copy(self._source, ranges, Path(self._output.tmp), 0, sink)

    def package_hash(self, algorithm: str) -> bytes:
        """The package hash to sign (spec §2.1): of ``src`` without any signature entry, in one streaming pass that
        also writes the entries to the output."""
        assert self._source is not None
        digest = hashlib.new(algorithm)
        if self._data is not None:  # in memory: the entries are written by finish(), from the same bytes
            view = memoryview(self._data)
            for entries in self._parts.entries:
                digest.update(view[entries.start:entries.end])
            _feed_memory(view, _without_entries(self._parts), digest.update)
        elif self._written is None:
            self._write_entries(digest.update)
            feed_plan(self._source, _without_entries(self._parts), digest.update)
        else:  # a second hash (another algorithm): the entries are written already, only read them again
            feed_plan(self._source, self._parts.plan(), digest.update)
        return digest.digest()

    def finish(self, signature: bytes, *, when: datetime | None = None) -> None:
        """Complete the output with ``signature`` as ``.signature.p7s`` stamped ``when`` (local time)."""
        if self._done:
            raise RuntimeError("SignedPackageWriter.finish() called twice")
        assert self._source is not None and self._output is not None
        plan = _signed_plan(self._parts, signature, _dos_time(when))
        fd = self._output.fd
        try:
            if self._data is not None:
                view = memoryview(self._data)
                pwrite_all(fd, [s if isinstance(s, bytes) else view[s.start:s.end] for s in plan])
            else:
                if self._written is None:
                    self._write_entries(None)
                position = self._parts.entries_size
                pieces: list[bytes] = []
                feed_plan(self._source, plan[len(self._parts.entries):], lambda v: pieces.append(bytes(v)))
                pwrite_all(fd, pieces, position)
        except BaseException:
            self._close()
            raise
        output, self._output = self._output, None
        self._done = True
        self._close()
        output.commit(mode=self._mode, durable=self._durable, sync_folder=self._sync_folder)  # fsync and rename

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if self._done:
            return
        self._close()  # deletes the temporary file
        if exc is not None:
            return
        raise RuntimeError(f"signing {self._src} ended without finish(): nothing was written")


def _read_small(path: Path) -> tuple[bytes | None, int]:
    """``path``'s bytes and permission bits if it is a regular file of at most ``fileio.IN_MEMORY_LIMIT`` bytes;
    ``(None, 0)`` otherwise (then it is opened as a stream, which also words the errors of odd paths)."""
    try:
        # O_NONBLOCK: a FIFO's open must not wait for a writer here (no effect on regular files).
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None, 0
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode) or status.st_size > IN_MEMORY_LIMIT:
            return None, 0
        data = os.read(fd, status.st_size + 1)  # one read; an extra byte means the file grew since fstat
        if len(data) > status.st_size:
            chunks = [data]
            while chunk := os.read(fd, READ_CHUNK):
                chunks.append(chunk)
            data = b"".join(chunks)
        return data, status.st_mode & 0o7777
    finally:
        os.close(fd)


def _feed_memory(view: memoryview, plan: list[Segment], sink: Callable[[memoryview], object]) -> None:
    """``hashing.feed_plan`` over bytes already in memory."""
    for segment in plan:
        sink(memoryview(segment) if isinstance(segment, bytes) else view[segment.start:segment.end])


def _without_entries(parts: ArchiveParts) -> list[Segment]:
    """What the package hash covers after the entries: the patched central directory and the EOCD."""
    return ArchiveParts((), parts.central_directory, parts.eocd_head, parts.counts, parts.tail).plan()


def check_signable(path: Path, *, replace_signature: bool = False) -> None:
    """Raise what signing ``path`` would be refused with (NU3006, NU3001, NU3039), without writing anything."""
    with open(path, "rb") as f:
        _signable_parts(f, replace_signature=replace_signature, where=str(path))


def insert_signature(
    src: Path, dst: Path, signature: bytes, *, when: datetime | None = None, replace_signature: bool = False,
    durable: bool = True,
) -> None:
    """Write ``src`` with ``signature`` added as ``.signature.p7s`` to ``dst`` (may equal ``src``).

    ``when`` is the entry's local wall-clock time (NuGet uses ``DateTime.Now``); it defaults to now.
    ``replace_signature`` swaps out the signature entry of a signed ``src`` instead of refusing it.
    ``durable``: see ``fileio.atomic_output_path``.
    """
    with SignedPackageWriter(src, dst, replace_signature=replace_signature, durable=durable) as writer:
        writer.finish(signature, when=when)


def write_unsigned(f: BinaryIO, out: BinaryIO, *, check_fields: bool = True) -> None:
    """Stream ``f`` without its signature entry to ``out``.

    NuGet quirk: NuGet's ``RemoveSignature`` cuts the entry out without rebasing the LFH offsets of entries
    stored after it. We write the §2.2 stream instead, which is byte-identical whenever the signature is
    the last entry (the only place NuGet writes it) and is still a valid zip, hashing to the signed package
    hash, when the entry was moved.
    """
    layout = read_layout(f)
    entry = find_signature_entry(f, layout, check_fields=check_fields)
    feed_plan(f, unsigned_view_plan(f, layout, entry), out.write)


def remove_signature(src: Path, dst: Path, *, check_fields: bool = True, durable: bool = True) -> None:
    """Write ``src`` without its signature entry to ``dst`` (may equal ``src``); the inverse of insert.

    ``check_fields=False`` also removes a signature entry that fails NuGet's NU3005 field checks.
    """
    with open(src, "rb") as f, atomic_output_path(Path(dst), mode_from=Path(src), durable=durable) as (tmp, out):
        layout = read_layout(f)
        entry = find_signature_entry(f, layout, check_fields=check_fields)
        parts = unsigned_view(f, layout, entry)
        # The entries before the signature come first, unchanged: the fast large-range copy.
        written = RangeCopier.copy(f, [(r.start, r.end) for r in parts.entries], tmp)
        out.seek(written)
        feed_plan(f, _without_entries(parts), out.write)
