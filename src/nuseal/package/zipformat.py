"""The zip byte format as NuGet's signing code reads it (spec §1).

This is the one module that knows zip record layouts: every ``struct`` format for the end of central directory
record (EOCD), central directory (CD) headers and local file headers (LFH) lives here. The rest of
``nuseal.package`` works with the frozen records defined below.

Reading never loads a whole package: the EOCD is found by a backwards scan in 4 KiB chunks, and only the
central directory and the few local headers asked for are read.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import BinaryIO, ClassVar

from nuseal.codes import Messages, NuCode
from nuseal.errors import PackageFormatError, SignatureEntryError, SignatureFormatError
from nuseal.record import Struct

SIGNATURE_FILE_NAME = b".signature.p7s"
UTF8_FLAG = 0x0800
ZIP64_EXTRA_FIELD_ID = 0x0001

EOCD_MAGIC = b"PK\x05\x06"
CD_MAGIC = b"PK\x01\x02"
LFH_MAGIC = b"PK\x03\x04"
ZIP64_LOCATOR_MAGIC = b"PK\x06\x07"
ZIP64_LOCATOR_SIZE = 20

_EOCD = struct.Struct("<4sHHHHIIH")  # 22 bytes
_CD = struct.Struct("<4sHHHHHHIIIHHHHHII")  # 46 bytes
_LFH = struct.Struct("<4sHHHHHIIIHH")  # 30 bytes
_EOCD_COUNTS = struct.Struct("<HHII")  # entries on disk, total entries, CD size, CD offset
_EXTRA_FIELD_HEADER = struct.Struct("<HH")

_SCAN_CHUNK = 4096

#: Largest ``.signature.p7s`` nuseal reads. NuGet has no bound (it allocates whatever the local header says); real
#: signatures are a few KiB (the largest vector: 26 KiB) and parsing costs several times the size in memory, so
#: this keeps one hostile package from costing a batch hundreds of megabytes (docs/decisions.md).
MAX_SIGNATURE_BYTES = 8 * 1024 * 1024


class EndOfCentralDirectory(Struct, frozen=True):
    """The EOCD record found at ``position`` (its variable comment is not kept: it is copied verbatim)."""

    SIZE: ClassVar[int] = _EOCD.size

    position: int
    disk_number: int
    cd_disk_number: int
    entries_on_disk: int
    total_entries: int
    cd_size: int
    cd_offset: int
    comment_length: int

    def to_bytes(self) -> bytes:
        """The 22 fixed bytes of this record."""
        return _EOCD.pack(
            EOCD_MAGIC,
            self.disk_number,
            self.cd_disk_number,
            self.entries_on_disk,
            self.total_entries,
            self.cd_size,
            self.cd_offset,
            self.comment_length,
        )


class CentralDirectoryHeader(Struct, frozen=True):
    """One CD header at ``position``; ``name``/``extra``/``comment`` are the raw bytes as stored."""

    FIXED_SIZE: ClassVar[int] = _CD.size

    position: int
    version_made_by: int
    version_needed: int
    flags: int
    method: int
    dos_time: int
    dos_date: int
    crc32: int
    compressed_size: int
    uncompressed_size: int
    disk_start: int
    internal_attributes: int
    external_attributes: int
    local_header_offset: int
    name: bytes
    extra: bytes
    comment: bytes

    @property
    def header_size(self) -> int:
        """46 + name length + extra length + comment length (NuGet's ``HeaderSize``)."""
        return _CD.size + len(self.name) + len(self.extra) + len(self.comment)

    @property
    def end(self) -> int:
        return self.position + self.header_size

    def to_bytes(self, local_header_offset: int | None = None) -> bytes:
        """The header bytes, optionally with another LFH offset (taken modulo 2^32 like NuGet)."""
        offset = self.local_header_offset if local_header_offset is None else local_header_offset
        fixed = _CD.pack(
            CD_MAGIC,
            self.version_made_by,
            self.version_needed,
            self.flags,
            self.method,
            self.dos_time,
            self.dos_date,
            self.crc32,
            self.compressed_size,
            self.uncompressed_size,
            len(self.name),
            len(self.extra),
            len(self.comment),
            self.disk_start,
            self.internal_attributes,
            self.external_attributes,
            offset & 0xFFFFFFFF,
        )
        return fixed + self.name + self.extra + self.comment


class LocalFileHeader(Struct, frozen=True):
    """One LFH at ``position``; the entry data starts at ``data_offset``."""

    FIXED_SIZE: ClassVar[int] = _LFH.size

    position: int
    version_needed: int
    flags: int
    method: int
    dos_time: int
    dos_date: int
    crc32: int
    compressed_size: int
    uncompressed_size: int
    name: bytes
    extra: bytes

    @property
    def header_size(self) -> int:
        return _LFH.size + len(self.name) + len(self.extra)

    @property
    def data_offset(self) -> int:
        return self.position + self.header_size

    def to_bytes(self) -> bytes:
        fixed = _LFH.pack(
            LFH_MAGIC,
            self.version_needed,
            self.flags,
            self.method,
            self.dos_time,
            self.dos_date,
            self.crc32,
            self.compressed_size,
            self.uncompressed_size,
            len(self.name),
            len(self.extra),
        )
        return fixed + self.name + self.extra


class ArchiveLayout(Struct, frozen=True):
    """What NuGet's ``ReadSignedArchiveMetadata`` collects: the EOCD and every CD header in file order."""

    file_size: int
    eocd: EndOfCentralDirectory
    headers: tuple[CentralDirectoryHeader, ...]

    @property
    def start_of_central_directory(self) -> int:
        """The lowest CD header position (NuGet's ``EndOfLocalFileHeadersPosition``)."""
        return min(h.position for h in self.headers)

    @property
    def end_of_central_directory(self) -> int:
        """End of the last parsed CD header; NuGet assumes the EOCD starts here."""
        return self.headers[-1].end

    @property
    def start_of_local_headers(self) -> int:
        """min(file size, lowest LFH offset): the bytes before it are a prefix hashed verbatim."""
        return min(self.file_size, min(h.local_header_offset for h in self.headers))


class SignatureEntry(Struct, frozen=True):
    """The ``.signature.p7s`` entry: its CD header (and index in CD order) and the LFH it points to."""

    index: int
    central: CentralDirectoryHeader
    local: LocalFileHeader

    @property
    def data_offset(self) -> int:
        return self.local.data_offset

    @property
    def size(self) -> int:
        """Signature length as NuGet reads it: the LFH uncompressed size."""
        return self.local.uncompressed_size


# --- reading ---------------------------------------------------------------------------------------


def _file_size(f: BinaryIO) -> int:
    return f.seek(0, 2)


def _read_exact(f: BinaryIO, offset: int, size: int, what: str) -> bytes:
    f.seek(offset)
    data = f.read(size)
    if len(data) != size:
        raise PackageFormatError(
            f"Truncated zip archive: {what} at offset {offset} needs {size} bytes, "
            f"only {len(data)} available."
        )
    return data


def find_eocd(f: BinaryIO) -> EndOfCentralDirectory:
    """Scan backwards from EOF in 4 KiB chunks for ``PK\\x05\\x06``; the first hit from the end is the EOCD.

    NuGet quirk: a ``PK\\x05\\x06`` inside the archive comment wins over the real record, exactly as NuGet's
    backward byte scan does; we keep that so both read the same (possibly wrong) EOCD.
    """
    size = _file_size(f)
    end = size
    position = -1
    while end > 0:
        start = max(0, end - _SCAN_CHUNK)
        f.seek(start)
        # Read 3 bytes past the chunk so a signature straddling two chunks is still seen.
        chunk = f.read(min(size, end + len(EOCD_MAGIC) - 1) - start)
        hit = chunk.rfind(EOCD_MAGIC)
        if hit >= 0:
            position = start + hit
            break
        end = start
    if position < 0:
        raise PackageFormatError(
            f"Not a zip archive: byte signature not found in package archive: 0x504B0506 "
            f"(no end of central directory record in {size} bytes)."
        )
    if position + _EOCD.size > size:
        raise PackageFormatError(
            f"Truncated zip archive: end of central directory record at offset {position} needs "
            f"{_EOCD.size} bytes, only {size - position} available."
        )
    fields = _EOCD.unpack(_read_exact(f, position, _EOCD.size, "end of central directory record"))
    return EndOfCentralDirectory(position, *fields[1:])


def _iter_central_directory(f: BinaryIO, start: int, file_size: int) -> Iterator[CentralDirectoryHeader]:
    """CD headers from ``start`` for as long as the next 4 bytes are ``PK\\x01\\x02`` (EOCD count unused)."""
    position = start
    while position + 4 <= file_size:
        f.seek(position)
        fixed = f.read(_CD.size)
        if fixed[:4] != CD_MAGIC:
            return
        if len(fixed) != _CD.size:
            raise PackageFormatError(
                f"Truncated zip archive: central directory header at offset {position} is cut off."
            )
        fields = _CD.unpack(fixed)
        name_len, extra_len, comment_len = fields[10], fields[11], fields[12]
        variable = f.read(name_len + extra_len + comment_len)
        if len(variable) != name_len + extra_len + comment_len:
            raise PackageFormatError(
                f"Truncated zip archive: central directory header at offset {position} is cut off."
            )
        header = CentralDirectoryHeader(
            position=position,
            version_made_by=fields[1],
            version_needed=fields[2],
            flags=fields[3],
            method=fields[4],
            dos_time=fields[5],
            dos_date=fields[6],
            crc32=fields[7],
            compressed_size=fields[8],
            uncompressed_size=fields[9],
            disk_start=fields[13],
            internal_attributes=fields[14],
            external_attributes=fields[15],
            local_header_offset=fields[16],
            name=variable[:name_len],
            extra=variable[name_len : name_len + extra_len],
            comment=variable[name_len + extra_len :],
        )
        yield header
        position = header.end


def read_layout(f: BinaryIO) -> ArchiveLayout:
    """Find the EOCD and walk the central directory from its CD offset (spec §1.2).

    Raises ``PackageFormatError`` when there is no EOCD, a record is truncated, or no CD header is found.
    """
    size = _file_size(f)
    eocd = find_eocd(f)
    headers = tuple(_iter_central_directory(f, eocd.cd_offset, size))
    if not headers:
        raise PackageFormatError(
            f"Invalid package archive: no central directory header at offset {eocd.cd_offset} "
            f"(taken from the end of central directory record at offset {eocd.position})."
        )
    return ArchiveLayout(file_size=size, eocd=eocd, headers=headers)


def read_local_header(f: BinaryIO, offset: int) -> LocalFileHeader:
    """The LFH at ``offset``; ``PackageFormatError`` if it is missing or cut off."""
    f.seek(offset)
    fixed = f.read(_LFH.size)
    if len(fixed) != _LFH.size or fixed[:4] != LFH_MAGIC:
        raise PackageFormatError(f"Invalid package archive: no local file header at offset {offset}.")
    fields = _LFH.unpack(fixed)
    name_len, extra_len = fields[9], fields[10]
    variable = f.read(name_len + extra_len)
    if len(variable) != name_len + extra_len:
        raise PackageFormatError(f"Truncated zip archive: local file header at offset {offset} is cut off.")
    return LocalFileHeader(
        position=offset,
        version_needed=fields[1],
        flags=fields[2],
        method=fields[3],
        dos_time=fields[4],
        dos_date=fields[5],
        crc32=fields[6],
        compressed_size=fields[7],
        uncompressed_size=fields[8],
        name=variable[:name_len],
        extra=variable[name_len:],
    )


def read_eocd_counts(f: BinaryIO, position: int) -> tuple[int, int, int, int]:
    """(entries on disk, total entries, CD size, CD offset) of an EOCD assumed to start at ``position``."""
    raw = _read_exact(f, position + 8, _EOCD_COUNTS.size, "end of central directory record")
    entries_on_disk, total_entries, cd_size, cd_offset = _EOCD_COUNTS.unpack(raw)
    return entries_on_disk, total_entries, cd_size, cd_offset


def pack_eocd_counts(entries_on_disk: int, total_entries: int, cd_size: int, cd_offset: int) -> bytes:
    """EOCD bytes 8..20, each field reduced modulo 2^16 / 2^32 as NuGet's unchecked arithmetic does."""
    return _EOCD_COUNTS.pack(
        entries_on_disk & 0xFFFF, total_entries & 0xFFFF, cd_size & 0xFFFFFFFF, cd_offset & 0xFFFFFFFF
    )


# --- signature entry detection (spec §1.1, §1.2) ---------------------------------------------------


def has_signature_entry(layout: ArchiveLayout) -> bool:
    """NuGet's level-1 "is signed": some CD entry is named exactly ``.signature.p7s`` (any flags)."""
    return any(h.name == SIGNATURE_FILE_NAME for h in layout.headers)


def _is_signature_name(name: bytes, flags: int) -> bool:
    return name == SIGNATURE_FILE_NAME and not flags & UTF8_FLAG


def _invalid_field(header: str, field: str, value: int) -> SignatureEntryError:
    return SignatureEntryError(
        Messages.INVALID_ENTRY_FIELD.format(header=header, field=field, value=value), NuCode.NU3005
    )


def _check_common_fields(header: str, flags: int, method: int, compressed: int, uncompressed: int) -> None:
    if flags != 0:
        raise _invalid_field(header, "general purpose bit", flags)
    if method != 0:
        raise _invalid_field(header, "compression method", method)
    # NuGet quirk: a size mismatch is always reported as field 'compressed size' with the compressed size,
    # whichever of the two was altered; we keep NuGet's exact message.
    if compressed != uncompressed:
        raise _invalid_field(header, "compressed size", compressed)


def find_signature_entry(f: BinaryIO, layout: ArchiveLayout, *, check_fields: bool = True) -> SignatureEntry:
    """NuGet's level-2 detection: exactly one CD entry named ``.signature.p7s`` (ASCII, UTF-8 flag clear)
    whose LFH carries the same name, then the §1.2 field checks.

    ``check_fields=False`` skips the field checks (NuGet does so for the content hash). Every failure is a
    ``SignatureEntryError`` with NU3005 and NuGet's wording.
    """
    found = [i for i, h in enumerate(layout.headers) if _is_signature_name(h.name, h.flags)]
    if len(found) > 1:
        raise SignatureEntryError(Messages.MULTIPLE_SIGNATURE_FILES, NuCode.NU3005)
    if not found:
        raise SignatureEntryError(Messages.NO_VALID_SIGNATURE_FILE, NuCode.NU3005)
    index = found[0]
    central = layout.headers[index]
    try:
        local = read_local_header(f, central.local_header_offset)
    except PackageFormatError as exc:
        raise SignatureEntryError(
            f"{Messages.NO_VALID_SIGNATURE_FILE} ({exc.message})", NuCode.NU3005
        ) from exc
    if not _is_signature_name(local.name, local.flags):
        raise SignatureEntryError(Messages.NO_VALID_SIGNATURE_FILE, NuCode.NU3005)
    if check_fields:
        cd = "central directory"
        _check_common_fields(
            cd, central.flags, central.method, central.compressed_size, central.uncompressed_size
        )
        if central.external_attributes != 0:
            raise _invalid_field(cd, "external file attributes", central.external_attributes)
        _check_common_fields(
            "local file", local.flags, local.method, local.compressed_size, local.uncompressed_size
        )
    return SignatureEntry(index=index, central=central, local=local)


def read_signature_bytes(f: BinaryIO, entry: SignatureEntry) -> bytes:
    """The signature file: LFH uncompressed-size bytes from the LFH data offset (NuGet reads them raw).

    ``SignatureFormatError`` NU3003 when it is larger than ``MAX_SIGNATURE_BYTES`` (nuseal's bound, see
    docs/decisions.md) or runs past the end of the file (NuGet then decodes a zero-padded buffer, which fails the
    same way).
    """
    if entry.size > MAX_SIGNATURE_BYTES:
        raise SignatureFormatError(
            f"{Messages.SIGNATURE_INVALID} (the signature file is {entry.size} bytes; nuseal reads signatures of "
            f"at most {MAX_SIGNATURE_BYTES} bytes)", NuCode.NU3003)
    f.seek(entry.data_offset)
    data = f.read(entry.size)
    if len(data) != entry.size:
        raise SignatureFormatError(
            f"{Messages.SIGNATURE_INVALID} (the signature file at offset {entry.data_offset} needs {entry.size} "
            f"bytes, only {len(data)} are available)", NuCode.NU3003)
    return data


# --- zip64 detection (spec §1.3) -------------------------------------------------------------------


def _has_zip64_extra_field(extra: bytes) -> bool:
    offset = 0
    while offset + _EXTRA_FIELD_HEADER.size <= len(extra):
        field_id, field_size = _EXTRA_FIELD_HEADER.unpack_from(extra, offset)
        if field_id == ZIP64_EXTRA_FIELD_ID:
            return True
        offset += _EXTRA_FIELD_HEADER.size + field_size
    return False


def is_zip64(f: BinaryIO, layout: ArchiveLayout | None = None) -> bool:
    """NuGet's ``IsZip64``: a zip64 EOCD locator 20 bytes before the EOCD, or a 0x0001 extra field in any
    CD header or in the LFH it points to.

    Without ``layout`` the CD is walked here and may be empty, so an empty zip64 archive (which
    ``read_layout`` rejects) is still recognised, as NuGet does before anything else when signing.
    """
    eocd = layout.eocd if layout is not None else find_eocd(f)
    if eocd.position >= ZIP64_LOCATOR_SIZE:
        f.seek(eocd.position - ZIP64_LOCATOR_SIZE)
        if f.read(4) == ZIP64_LOCATOR_MAGIC:
            return True
    headers = (
        layout.headers
        if layout is not None
        else tuple(_iter_central_directory(f, eocd.cd_offset, _file_size(f)))
    )
    for header in headers:
        if _has_zip64_extra_field(header.extra):
            return True
        if _has_zip64_extra_field(_local_extra(f, header.local_header_offset)):
            return True
    return False


def _local_extra(f: BinaryIO, offset: int) -> bytes:
    """Just the extra field of the LFH at ``offset`` (cheap: runs once per entry)."""
    f.seek(offset)
    fixed = f.read(_LFH.size)
    if len(fixed) != _LFH.size or fixed[:4] != LFH_MAGIC:
        raise PackageFormatError(f"Invalid package archive: no local file header at offset {offset}.")
    name_len, extra_len = struct.unpack_from("<HH", fixed, 26)
    if not extra_len:
        return b""
    f.seek(offset + _LFH.size + name_len)
    return f.read(extra_len)


# --- reading one entry as Python's zipfile would (the verifier's nuspec identity) ---------------------------

#: zipfile's ``MAX_EXTRACT_VERSION``: it refuses an archive naming a later one in any CD header.
_ZIPFILE_MAX_EXTRACT_VERSION = 63
#: Flags zipfile refuses to read (encrypted, compressed patched data, strong encryption).
_ZIPFILE_REFUSED_FLAGS = 0x01 | 0x20 | 0x40


def zipfile_names(f: BinaryIO, layout: ArchiveLayout) -> list[str] | None:
    """The entry names ``zipfile.ZipFile(f).infolist()`` gives (``ZipInfo.filename``, in CD order), when zipfile
    reads exactly this layout's headers and nothing else; None whenever it might not (then ask zipfile itself).

    The verifier reads the nuspec identity from the archive it has already walked instead of having zipfile walk
    it again (~0.3 ms of a small package's verification). Anything zipfile would read differently or refuse gives
    None: an archive comment, zip64 records or extra fields, data before the archive, a CD that is not exactly the
    one the EOCD sizes, a CD header naming a version or an extra field zipfile refuses, a name it cannot decode.
    """
    eocd = layout.eocd
    if eocd.comment_length or eocd.position + _EOCD.size != layout.file_size:
        return None  # zipfile reads the last 22 bytes as the EOCD only without a comment
    if eocd.position >= ZIP64_LOCATOR_SIZE:
        f.seek(eocd.position - ZIP64_LOCATOR_SIZE)
        if f.read(4) == ZIP64_LOCATOR_MAGIC:
            return None
    if eocd.position != eocd.cd_offset + eocd.cd_size:  # zipfile's "concat": data before the archive
        return None
    headers = layout.headers
    if headers[0].position != eocd.cd_offset or headers[-1].end != eocd.cd_offset + eocd.cd_size:
        return None
    names: list[str] = []
    for header in headers:
        if header.version_needed & 0xFF > _ZIPFILE_MAX_EXTRACT_VERSION or not _plain_extra(header.extra):
            return None
        if 0xFFFFFFFF in (header.compressed_size, header.uncompressed_size, header.local_header_offset):
            return None
        try:
            name = header.name.decode("utf-8" if header.flags & UTF8_FLAG else "cp437")
        except UnicodeDecodeError:
            return None
        end = name.find("\0")
        names.append(name if end < 0 else name[:end])
    return names


def _plain_extra(extra: bytes) -> bool:
    """zipfile's ``ZipInfo._decodeExtra`` accepts the extra field, and it holds no zip64 field."""
    offset = 0
    while len(extra) - offset >= 4:
        field_id, field_size = _EXTRA_FIELD_HEADER.unpack_from(extra, offset)
        if field_id == ZIP64_EXTRA_FIELD_ID or offset + 4 + field_size > len(extra):
            return False
        offset += 4 + field_size
    return True


def read_entry_as_zipfile(f: BinaryIO, layout: ArchiveLayout, index: int, limit: int) -> bytes | None:
    """The bytes ``zipfile`` reads for the entry of CD header ``index`` (at most ``limit``), for an archive
    :func:`zipfile_names` vouched for; None whenever zipfile might read other bytes or raise: a size over
    ``limit``, a method other than stored or deflate, a refused flag, a local header that is missing or names
    another file, data that overlaps the next entry, is cut off, does not inflate to exactly the declared size, or
    fails its CRC."""
    import zlib  # only for a compressed nuspec, which every package has

    header = layout.headers[index]
    if (header.uncompressed_size > limit or header.method not in (0, 8) or header.flags & _ZIPFILE_REFUSED_FLAGS):
        return None
    f.seek(header.local_header_offset)
    fixed = f.read(_LFH.size)
    if len(fixed) != _LFH.size or fixed[:4] != LFH_MAGIC:
        return None
    fields = _LFH.unpack(fixed)
    local_name = f.read(fields[9])
    try:
        if local_name.decode("utf-8" if fields[2] & UTF8_FLAG else "cp437") != header.name.decode(
                "utf-8" if header.flags & UTF8_FLAG else "cp437"):
            return None
    except UnicodeDecodeError:
        return None
    start = header.local_header_offset + _LFH.size + fields[9] + fields[10]
    following = [h.local_header_offset for h in layout.headers if h.local_header_offset > header.local_header_offset]
    if start + header.compressed_size > min(following, default=layout.eocd.cd_offset):
        return None  # overlapping entries: newer zipfile versions refuse them
    f.seek(start)
    stored = f.read(header.compressed_size)
    if len(stored) != header.compressed_size:
        return None
    if header.method == 0:
        data = stored
    else:
        inflater = zlib.decompressobj(-15)
        try:
            data = inflater.decompress(stored, limit + 1)
        except zlib.error:
            return None
        if not inflater.eof or inflater.unconsumed_tail:
            return None
    if len(data) != header.uncompressed_size or zlib.crc32(data) != header.crc32:
        return None
    return data


# --- DOS time --------------------------------------------------------------------------------------

_DOS_YEAR_MIN = 1980
_DOS_YEAR_MAX = 2107


def dos_datetime(year: int, month: int, day: int, hour: int, minute: int, second: int) -> int:
    """MS-DOS date/time as one u32: time in the low half, date in the high half (spec §1.3).

    Years outside 1980..2107 cannot be encoded; we clamp to the first/last encodable instant.
    """
    if year < _DOS_YEAR_MIN:
        year, month, day, hour, minute, second = _DOS_YEAR_MIN, 1, 1, 0, 0, 0
    elif year > _DOS_YEAR_MAX:
        year, month, day, hour, minute, second = _DOS_YEAR_MAX, 12, 31, 23, 59, 58
    return (
        ((year - _DOS_YEAR_MIN) & 0x7F) << 25
        | month << 21
        | day << 16
        | hour << 11
        | minute << 5
        | second // 2
    )
