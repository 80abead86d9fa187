"""Byte-level package tampering, modelled on NuGet.Client's tamper tests (spec §9.2).

Every helper is ``(src: Path, dst: Path, *, options) -> None`` and writes a new file. Helpers that change
sizes rebuild the archive with correct offsets (local entries, then CD, then EOCD); the others patch bytes in
place so that nothing else moves. ``src`` and ``dst`` may be the same path.
"""

from __future__ import annotations

import io
import random
import struct
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from nuseal.package import archive
from nuseal.package.zipformat import (
    EOCD_MAGIC,
    SIGNATURE_FILE_NAME,
    UTF8_FLAG,
    CentralDirectoryHeader,
    LocalFileHeader,
    dos_datetime,
    read_layout,
    read_local_header,
)
from nuseal.record import replace

Header = Literal["central", "local", "both"]

_DATA_DESCRIPTOR_FLAG = 0x0008


# --- an in-memory model of the archive, for rebuilding -------------------------------------------------


@dataclass
class _Entry:
    central: CentralDirectoryHeader
    block: bytes  # bytes from the LFH to the next LFH (or the CD): header, data, descriptor, gap

    @property
    def is_signature(self) -> bool:
        return self.central.name == SIGNATURE_FILE_NAME

    @property
    def local(self) -> LocalFileHeader:
        return read_local_header(io.BytesIO(self.block), 0)


@dataclass
class _Archive:
    entries: list[_Entry]  # in local (file) order
    cd_order: list[int]  # indices into ``entries``, in central directory order
    tail: bytes  # EOCD comment length, comment and anything after it


def _load(src: Path) -> _Archive:
    data = Path(src).read_bytes()
    with open(src, "rb") as f:
        layout = read_layout(f)
    headers = layout.headers
    by_offset = sorted(range(len(headers)), key=lambda i: headers[i].local_header_offset)
    entries: list[_Entry] = []
    position_of: dict[int, int] = {}
    for rank, index in enumerate(by_offset):
        start = headers[index].local_header_offset
        end = (
            headers[by_offset[rank + 1]].local_header_offset
            if rank + 1 < len(by_offset)
            else layout.start_of_central_directory
        )
        position_of[index] = len(entries)
        entries.append(_Entry(headers[index], data[start:end]))
    cd_order = [position_of[i] for i in range(len(headers))]
    return _Archive(entries, cd_order, data[layout.eocd.position + 20 :])


def _save(model: _Archive, dst: Path) -> None:
    out = bytearray()
    offsets: list[int] = []
    for entry in model.entries:
        offsets.append(len(out))
        out += entry.block
    cd_offset = len(out)
    for index in model.cd_order:
        out += model.entries[index].central.to_bytes(offsets[index])
    count = len(model.cd_order)
    out += struct.pack("<4sHHHHII", EOCD_MAGIC, 0, 0, count, count, len(out) - cd_offset, cd_offset)
    out += model.tail
    Path(dst).write_bytes(bytes(out))


def _pick(model: _Archive, name: str | None, *, non_empty: bool = False) -> int:
    """Index of the entry called ``name``, or of the first non-signature (non-empty) entry."""
    for i, entry in enumerate(model.entries):
        if name is not None:
            if entry.central.name == name.encode():
                return i
        elif (
            not entry.is_signature
            and not entry.central.name.endswith(b"/")
            and (not non_empty or entry.central.uncompressed_size > 0)
        ):
            return i
    raise ValueError(f"no entry {name!r} to tamper with")


def _signature(model: _Archive) -> int:
    for i, entry in enumerate(model.entries):
        if entry.is_signature:
            return i
    raise ValueError("the package has no .signature.p7s entry")


def _content(entry: _Entry) -> bytes:
    """Decompressed content of an entry (stored or deflated; a data descriptor is fine)."""
    local = entry.local
    raw = entry.block[local.header_size : local.header_size + entry.central.compressed_size]
    if entry.central.method == 0:
        return raw
    if entry.central.method == 8:
        return zlib.decompress(raw, -15)
    raise ValueError(f"cannot decode compression method {entry.central.method}")


def _reencode(entry: _Entry, content: bytes, method: int | None = None) -> _Entry:
    """The same entry (name, extra, times) holding ``content``; any data descriptor is dropped."""
    method = entry.central.method if method is None else method
    if method == 0:
        data = content
    else:
        compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        data = compressor.compress(content) + compressor.flush()
    crc = zlib.crc32(content)
    local = replace(
        entry.local,
        flags=entry.local.flags & ~_DATA_DESCRIPTOR_FLAG,
        method=method,
        crc32=crc,
        compressed_size=len(data),
        uncompressed_size=len(content),
    )
    central = replace(
        entry.central,
        flags=entry.central.flags & ~_DATA_DESCRIPTOR_FLAG,
        method=method,
        crc32=crc,
        compressed_size=len(data),
        uncompressed_size=len(content),
    )
    return _Entry(central, local.to_bytes() + data)


def _new_stored_entry(name: bytes, content: bytes) -> _Entry:
    crc = zlib.crc32(content)
    dos = dos_datetime(2020, 1, 1, 0, 0, 0)
    local = LocalFileHeader(0, 20, 0, 0, dos & 0xFFFF, dos >> 16, crc, len(content), len(content), name, b"")
    central = CentralDirectoryHeader(
        0, 20, 20, 0, 0, dos & 0xFFFF, dos >> 16, crc, len(content), len(content), 0, 0, 0, 0, name, b"", b""
    )
    return _Entry(central, local.to_bytes() + content)


# --- in-place byte patches -------------------------------------------------------------------------------


def _signature_positions(src: Path) -> tuple[int, int]:
    """(CD header position, LFH position) of the ``.signature.p7s`` entry."""
    with open(src, "rb") as f:
        layout = read_layout(f)
    for header in layout.headers:
        if header.name == SIGNATURE_FILE_NAME:
            return header.position, header.local_header_offset
    raise ValueError(f"{src} has no .signature.p7s entry")


def patch_signature_bytes(src: Path, dst: Path, *, header: Header, offset: int, data: bytes) -> None:
    """Overwrite ``data`` at ``offset`` from the start of the signature's CD header and/or LFH."""
    cd_position, lfh_position = _signature_positions(src)
    buffer = bytearray(Path(src).read_bytes())
    starts = {"central": [cd_position], "local": [lfh_position], "both": [cd_position, lfh_position]}[header]
    for start in starts:
        buffer[start + offset : start + offset + len(data)] = data
    Path(dst).write_bytes(bytes(buffer))


_FIELD_OFFSETS = {
    # field: (offset in CD header, offset in LFH, struct format)
    "flags": (8, 6, "<H"),
    "method": (10, 8, "<H"),
    "compressed_size": (20, 18, "<I"),
    "uncompressed_size": (24, 22, "<I"),
    "external_attributes": (38, None, "<I"),
}


def set_signature_field(src: Path, dst: Path, *, field: str, value: int, header: Header = "central") -> None:
    """Set one zip field of the signature entry: flags, method, compressed_size, uncompressed_size or
    external_attributes (CD only)."""
    cd_offset, lfh_offset, fmt = _FIELD_OFFSETS[field]
    packed = struct.pack(fmt, value)
    if header in ("central", "both"):
        patch_signature_bytes(src, dst, header="central", offset=cd_offset, data=packed)
        src = dst
    if header in ("local", "both"):
        if lfh_offset is None:
            raise ValueError(f"{field} exists only in the central directory header")
        patch_signature_bytes(src, dst, header="local", offset=lfh_offset, data=packed)


def set_signature_flags(src: Path, dst: Path, *, flags: int = 1, header: Header = "central") -> None:
    set_signature_field(src, dst, field="flags", value=flags, header=header)


def set_signature_utf8_flag(src: Path, dst: Path, *, header: Header = "central") -> None:
    """Set general-purpose bit 11 (UTF-8 name) on the signature entry: level 1 still "signed", level 2 not."""
    set_signature_field(src, dst, field="flags", value=UTF8_FLAG, header=header)


def set_signature_size_mismatch(
    src: Path, dst: Path, *, field: str = "compressed_size", header: Header = "central"
) -> None:
    """Make the signature's compressed and uncompressed sizes differ (the chosen one becomes 1)."""
    set_signature_field(src, dst, field=field, value=1, header=header)


def set_signature_external_attributes(src: Path, dst: Path, *, value: int = 0x20) -> None:
    set_signature_field(src, dst, field="external_attributes", value=value)


def uppercase_signature_name(src: Path, dst: Path) -> None:
    """Rename ``.signature.p7s`` to ``.SIGNATURE.P7S`` in both headers (not a signature for NuGet)."""
    upper = SIGNATURE_FILE_NAME.upper()
    patch_signature_bytes(src, dst, header="central", offset=46, data=upper)
    # The CD no longer names the signature, so find the LFH through the patched file's CD.
    with open(dst, "rb") as f:
        layout = read_layout(f)
    lfh = next(h.local_header_offset for h in layout.headers if h.name == upper)
    buffer = bytearray(Path(dst).read_bytes())
    buffer[lfh + 30 : lfh + 30 + len(upper)] = upper
    Path(dst).write_bytes(bytes(buffer))


def randomize_signature(src: Path, dst: Path, *, seed: int = 0) -> None:
    """Replace the signature bytes with random bytes of the same length (CRC updated to match)."""
    model = _load(src)
    entry = model.entries[_signature(model)]
    local = entry.local
    size = entry.central.uncompressed_size
    noise = random.Random(seed).randbytes(size)
    crc = zlib.crc32(noise)
    head = entry.block[:14] + struct.pack("<I", crc) + entry.block[18 : local.header_size]
    entry.block = head + noise + entry.block[local.header_size + size :]
    entry.central = replace(entry.central, crc32=crc)
    _save(model, dst)


# --- rebuilding tampers ----------------------------------------------------------------------------------


def delete_entry(src: Path, dst: Path, *, name: str | None = None) -> None:
    """Remove an entry (default: the first non-signature file) from both the local entries and the CD."""
    model = _load(src)
    victim = _pick(model, name)
    del model.entries[victim]
    model.cd_order = [i if i < victim else i - 1 for i in model.cd_order if i != victim]
    _save(model, dst)


def add_entry(src: Path, dst: Path, *, name: str = "tampered.txt", content: bytes = b"tampered\n") -> None:
    """Add a stored entry after all existing ones (last in both orders)."""
    model = _load(src)
    model.entries.append(_new_stored_entry(name.encode(), content))
    model.cd_order.append(len(model.entries) - 1)
    _save(model, dst)


def append_to_entry(src: Path, dst: Path, *, name: str | None = None, extra: bytes = b"\n") -> None:
    """Append bytes to an entry's content (re-encoded with its own compression method)."""
    model = _load(src)
    index = _pick(model, name)
    entry = model.entries[index]
    model.entries[index] = _reencode(entry, _content(entry) + extra)
    _save(model, dst)


def truncate_entry(src: Path, dst: Path, *, name: str | None = None) -> None:
    """Drop the last byte of an entry's content."""
    model = _load(src)
    index = _pick(model, name, non_empty=True)
    entry = model.entries[index]
    model.entries[index] = _reencode(entry, _content(entry)[:-1])
    _save(model, dst)


def deflate_signature(src: Path, dst: Path) -> None:
    """Re-store the signature entry deflated (method 8), as .NET ZipArchive would write it."""
    model = _load(src)
    index = _signature(model)
    entry = model.entries[index]
    model.entries[index] = _reencode(entry, _content(entry), method=8)
    _save(model, dst)


def change_entry_time(src: Path, dst: Path, *, name: str | None = None, seconds: int = 2) -> None:
    """Shift an entry's DOS time/date by ``seconds`` in both its LFH and CD header (nothing else moves)."""
    model = _load(src)
    index = _pick(model, name)
    entry = model.entries[index]
    t, d = entry.central.dos_time, entry.central.dos_date
    moment = datetime(1980 + (d >> 9), (d >> 5) & 15 or 1, d & 31 or 1, t >> 11, (t >> 5) & 63, (t & 31) * 2)
    moment += timedelta(seconds=seconds)
    packed = dos_datetime(moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second)
    new_time, new_date = packed & 0xFFFF, packed >> 16
    entry.central = replace(entry.central, dos_time=new_time, dos_date=new_date)
    entry.block = entry.block[:10] + struct.pack("<HH", new_time, new_date) + entry.block[14:]
    _save(model, dst)


def set_eocd_comment(src: Path, dst: Path, *, comment: bytes = b"tampered") -> None:
    """Replace the archive comment (and drop anything after it)."""
    model = _load(src)
    model.tail = struct.pack("<H", len(comment)) + comment
    _save(model, dst)


def append_trailing_bytes(src: Path, dst: Path, *, data: bytes = b"\x00") -> None:
    """Append bytes after the end of the file (after the EOCD)."""
    Path(dst).write_bytes(Path(src).read_bytes() + data)


def remove_signature(src: Path, dst: Path) -> None:
    """Delete the signature entry the way NuGet does (nuseal's own remover)."""
    archive.remove_signature(src, dst, check_fields=False)


def _move_signature(src: Path, dst: Path, position: Literal["first", "middle"], order: Header) -> None:
    model = _load(src)
    sig = _signature(model)
    if order in ("local", "both"):
        remaining = [i for i in range(len(model.entries)) if i != sig]
        target = 0 if position == "first" else len(remaining) // 2
        new_order = [*remaining[:target], sig, *remaining[target:]]
        new_index = {old: new for new, old in enumerate(new_order)}
        model.entries = [model.entries[old] for old in new_order]
        model.cd_order = [new_index[i] for i in model.cd_order]
        sig = target
    if order in ("central", "both"):
        model.cd_order.remove(sig)
        target = 0 if position == "first" else len(model.cd_order) // 2
        model.cd_order.insert(target, sig)
    _save(model, dst)


def move_signature_first(src: Path, dst: Path, *, order: Header = "both") -> None:
    """Move the signature entry to the front of the local entries and/or the CD (spec §1.2: still valid)."""
    _move_signature(src, dst, "first", order)


def move_signature_to_middle(src: Path, dst: Path, *, order: Header = "both") -> None:
    """Move the signature entry to the middle of the local entries and/or the CD."""
    _move_signature(src, dst, "middle", order)
