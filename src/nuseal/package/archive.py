"""Adding and removing the ``.signature.p7s`` entry, byte-exactly as NuGet does (spec §1.3, §1.4).

Both operations stream from the input to a temporary file next to the destination and rename it into place,
so the destination is never half-written and the source may be the destination.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import zlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from nuseal.codes import Messages, NuCode
from nuseal.errors import PackageFormatError, SigningError
from nuseal.package.hashing import FileRange, feed_plan, unsigned_view_plan
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


@contextlib.contextmanager
def atomic_output(dst: Path, *, mode_from: Path | None = None) -> Iterator[BinaryIO]:
    """Yield a binary file that becomes ``dst`` only if the block completes; otherwise it is deleted.

    The temporary file lives in ``dst``'s directory so the final ``os.replace`` is a rename on one file
    system. ``mode_from`` copies that file's permission bits (temp files are created 0600).
    """
    dst = Path(dst)
    fd, tmp_name = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        if mode_from is not None:
            os.chmod(tmp, Path(mode_from).stat().st_mode & 0o7777)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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


def write_signed(f: BinaryIO, out: BinaryIO, signature: bytes, dos_time: int) -> None:
    """Stream ``f`` plus the signature entry to ``out`` (spec §1.3). ``dos_time`` is the packed u32.

    Refuses zip64 (NU3006), an existing signature entry (NU3001) and archives whose entry count or offsets
    would need zip64 after adding the entry (NU3039).
    """
    try:
        layout = read_layout(f)
    except PackageFormatError:
        # NuGet checks zip64 before anything else, so even an empty zip64 archive (no CD headers) gets NU3006.
        if is_zip64(f):
            raise SigningError(Messages.ZIP64_NOT_SUPPORTED, NuCode.NU3006) from None
        raise
    if is_zip64(f, layout):
        raise SigningError(Messages.ZIP64_NOT_SUPPORTED, NuCode.NU3006)
    if has_signature_entry(layout):
        raise SigningError(Messages.ALREADY_SIGNED, NuCode.NU3001)
    eocd = layout.eocd
    if eocd.total_entries >= _MAX_SIGNABLE_ENTRIES:
        raise SigningError(
            f"{Messages.WOULD_REQUIRE_ZIP64} (it has {eocd.total_entries} entries)", NuCode.NU3039
        )
    start_of_cd = layout.start_of_central_directory
    end_of_cd = layout.end_of_central_directory
    if end_of_cd > eocd.position:
        raise PackageFormatError(
            f"Invalid package archive: the central directory ends at offset {end_of_cd}, after the end of "
            f"central directory record at {eocd.position}."
        )
    local, central = _signature_records(signature, dos_time, start_of_cd)
    added_data = len(local) + len(signature)
    new_cd_offset = eocd.cd_offset + added_data
    new_cd_size = eocd.cd_size + len(central)
    if start_of_cd > _U32_MAX or new_cd_offset > _U32_MAX or new_cd_size > _U32_MAX:
        raise SigningError(
            f"{Messages.WOULD_REQUIRE_ZIP64} (the central directory would start beyond 4 GiB)", NuCode.NU3039
        )
    eocd_counts = pack_eocd_counts(
        eocd.entries_on_disk + 1, eocd.total_entries + 1, new_cd_size, new_cd_offset
    )
    plan: list[FileRange | bytes] = [
        FileRange(0, start_of_cd),
        local,
        signature,
        FileRange(start_of_cd, end_of_cd),
        central,
        # Whatever sits between the last CD header and the EOCD is copied, as NuGet does.
        FileRange(end_of_cd, eocd.position + 8),
        eocd_counts,
        FileRange(eocd.position + 20, layout.file_size),
    ]
    feed_plan(f, plan, out.write)


def insert_signature(src: Path, dst: Path, signature: bytes, *, when: datetime | None = None) -> None:
    """Write ``src`` with ``signature`` added as ``.signature.p7s`` to ``dst`` (may equal ``src``).

    ``when`` is the entry's local wall-clock time (NuGet uses ``DateTime.Now``); it defaults to now.
    """
    moment = when if when is not None else datetime.now()
    dos_time = dos_datetime(moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second)
    with open(src, "rb") as f, atomic_output(Path(dst), mode_from=Path(src)) as out:
        write_signed(f, out, signature, dos_time)


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


def remove_signature(src: Path, dst: Path, *, check_fields: bool = True) -> None:
    """Write ``src`` without its signature entry to ``dst`` (may equal ``src``); the inverse of insert.

    ``check_fields=False`` also removes a signature entry that fails NuGet's NU3005 field checks.
    """
    with open(src, "rb") as f, atomic_output(Path(dst), mode_from=Path(src)) as out:
        write_unsigned(f, out, check_fields=check_fields)
