"""zipformat: layout reading, signature entry detection (levels 1 and 2), NU3005 checks, zip64 (spec §1)."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from tests.conftest import VECTORS
from tests.support import tamper
from tests.unit.package.helpers import ids, signed_packages

from nuseal.codes import Messages, NuCode
from nuseal.errors import PackageFormatError, SignatureEntryError, SignatureFormatError
from nuseal.package.zipformat import (
    SIGNATURE_FILE_NAME,
    dos_datetime,
    find_signature_entry,
    has_signature_entry,
    is_zip64,
    read_layout,
    read_signature_bytes,
)

FIXTURES = VECTORS / "fixtures"
SIGNED = FIXTURES / "TestPackage.AuthorSigned.1.0.0.nupkg"


def _open(data: bytes) -> io.BytesIO:
    return io.BytesIO(data)


def _entry_error(path: Path) -> SignatureEntryError:
    with open(path, "rb") as f:
        layout = read_layout(f)
        with pytest.raises(SignatureEntryError) as caught:
            find_signature_entry(f, layout)
    assert caught.value.code is NuCode.NU3005
    return caught.value


def test_vectors_present() -> None:
    assert len(signed_packages()) >= 25


# --- the NuGet zip fixtures (EXPECTED.md) ------------------------------------------------------------------


def test_signature_file_entry_fixture_is_valid() -> None:
    with open(FIXTURES / "SignatureFileEntry.zip", "rb") as f:
        layout = read_layout(f)
        assert has_signature_entry(layout)
        entry = find_signature_entry(f, layout)
        assert entry.central.version_made_by == 45
        assert entry.size == 7
        # This fixture's sizes say 7 but no data was written: NuGet reads the next 7 bytes (the CD) raw.
        assert entry.data_offset == 44
        assert read_signature_bytes(f, entry) == b"PK\x01\x02-\x00\x14"
        assert not is_zip64(f, layout)


def test_deflated_signature_fixture_names_compression_method() -> None:
    error = _entry_error(FIXTURES / "SignatureFileWithDeflateCompressionMethodAndDefaultCompressionLevel.zip")
    assert error.message == Messages.INVALID_ENTRY_FIELD.format(
        header="central directory", field="compression method", value=8
    )


def test_fake_content_fixture_yields_content_bytes() -> None:
    with open(FIXTURES / "SignatureFileWithFakeContent.zip", "rb") as f:
        layout = read_layout(f)
        assert read_signature_bytes(f, find_signature_entry(f, layout)) == b"content"


def test_uppercase_name_fixture_is_not_signed() -> None:
    with open(FIXTURES / "SignatureFileWithUppercaseFileName.zip", "rb") as f:
        layout = read_layout(f)
        assert not has_signature_entry(layout)
    assert _entry_error(FIXTURES / "SignatureFileWithUppercaseFileName.zip").message == (
        Messages.NO_VALID_SIGNATURE_FILE
    )


@pytest.mark.parametrize(
    "name",
    ["LocalFileHeaderWithZip64ExtraField.zip", "CentralDirectoryHeaderWithZip64ExtraField.zip"],
)
def test_zip64_extra_field_fixtures_are_zip64(name: str) -> None:
    with open(FIXTURES / name, "rb") as f:
        assert is_zip64(f, read_layout(f))
        assert is_zip64(f)


def test_empty_zip64_is_zip64_but_has_no_layout() -> None:
    with open(FIXTURES / "EmptyZip64.zip", "rb") as f:
        assert is_zip64(f)
        with pytest.raises(PackageFormatError, match="no central directory header"):
            read_layout(f)


@pytest.mark.parametrize("package", signed_packages(), ids=ids(signed_packages()))
def test_signed_vectors_have_a_valid_last_signature_entry(package: Path) -> None:
    with open(package, "rb") as f:
        layout = read_layout(f)
        entry = find_signature_entry(f, layout)
        assert not is_zip64(f, layout)
    assert entry.index == len(layout.headers) - 1
    assert entry.central.name == entry.local.name == SIGNATURE_FILE_NAME
    assert layout.end_of_central_directory == layout.eocd.position
    assert package.stat().st_size == layout.file_size


# --- malformed input ---------------------------------------------------------------------------------------


def test_zero_filled_download_is_not_a_zip() -> None:
    path = VECTORS / "real" / "HtmlAgilityPack.1.11.46__MALFORMED-zero-filled.nupkg"
    with open(path, "rb") as f, pytest.raises(PackageFormatError, match="0x504B0506"):
        read_layout(f)


def test_empty_file_is_not_a_zip() -> None:
    with pytest.raises(PackageFormatError, match="0x504B0506"):
        read_layout(_open(b""))


def test_truncated_eocd_names_its_offset() -> None:
    with pytest.raises(PackageFormatError, match="offset 3"):
        read_layout(_open(b"abcPK\x05\x06\x00\x00"))


def test_cd_offset_pointing_nowhere_is_invalid() -> None:
    eocd = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 1, 1, 46, 5000, 0)
    with pytest.raises(PackageFormatError, match="offset 5000"):
        read_layout(_open(b"\x00" * 10 + eocd))


def test_truncated_central_directory_header() -> None:
    data = (FIXTURES / "SignatureFileEntry.zip").read_bytes()
    cd = data.index(b"PK\x01\x02")
    # Cut the CD header short but keep an EOCD: the walk finds PK\x01\x02 and then runs out of bytes.
    eocd = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 1, 1, 60, cd, 0)
    with pytest.raises(PackageFormatError, match=f"offset {cd}"):
        read_layout(_open(data[: cd + 20] + eocd))


def test_eocd_scan_finds_signature_straddling_a_4k_chunk_boundary() -> None:
    data = (FIXTURES / "SignatureFileEntry.zip").read_bytes()
    # A comment long enough that the EOCD magic crosses the 4096-byte boundary counted from EOF.
    comment_len = 4096 - 22 + 2
    patched = data[:-2] + struct.pack("<H", comment_len) + b"x" * comment_len
    layout = read_layout(_open(patched))
    assert layout.eocd.position == len(data) - 22
    assert layout.eocd.comment_length == comment_len


def test_cd_walk_ignores_eocd_entry_count() -> None:
    data = bytearray(SIGNED.read_bytes())
    eocd = data.rindex(b"PK\x05\x06")
    struct.pack_into("<HH", data, eocd + 8, 1, 1)
    layout = read_layout(_open(bytes(data)))
    assert layout.eocd.total_entries == 1
    assert len(layout.headers) == 7


# --- level 1 / level 2 detection and NU3005 (spec §1.1, §1.2, §9.2) -----------------------------------


def test_unsigned_package_has_no_signature_entry(vectors: Path) -> None:
    path = vectors / "real" / "Antlr.3.5.0.2__unsigned.nupkg"
    with open(path, "rb") as f:
        layout = read_layout(f)
    assert not has_signature_entry(layout)
    assert _entry_error(path).message == Messages.NO_VALID_SIGNATURE_FILE


def test_multiple_signature_entries(tmp_path: Path) -> None:
    dst = tmp_path / "two.nupkg"
    tamper.add_entry(SIGNED, dst, name=".signature.p7s", content=b"again")
    assert _entry_error(dst).message == Messages.MULTIPLE_SIGNATURE_FILES


@pytest.mark.parametrize(
    ("header", "offset", "value", "message_header", "field"),
    [
        ("central", 8, 1, "central directory", "general purpose bit"),
        ("central", 10, 8, "central directory", "compression method"),
        ("central", 20, 1, "central directory", "compressed size"),
        # NuGet quirk kept: an uncompressed-size mismatch is reported as 'compressed size'.
        ("central", 24, 1, "central directory", "compressed size"),
        ("central", 38, 0x20, "central directory", "external file attributes"),
        ("local", 6, 1, "local file", "general purpose bit"),
        ("local", 8, 1, "local file", "compression method"),
        ("local", 18, 1, "local file", "compressed size"),
        ("local", 22, 1, "local file", "compressed size"),
    ],
)
def test_nu3005_byte_patches(
    tmp_path: Path, header: str, offset: int, value: int, message_header: str, field: str
) -> None:
    dst = tmp_path / "patched.nupkg"
    tamper.patch_signature_bytes(SIGNED, dst, header=header, offset=offset, data=bytes([value]))  # type: ignore[arg-type]
    data = dst.read_bytes()
    with open(dst, "rb") as f:
        layout = read_layout(f)
    sig = layout.headers[-1]
    base = sig.position if header == "central" else sig.local_header_offset
    size_offset = offset - 4 if offset in (24, 22) else offset
    fmt = "<H" if offset in (6, 8, 10) else "<I"
    expected_value = struct.unpack_from(fmt, data, base + size_offset)[0]
    error = _entry_error(dst)
    assert error.message == Messages.INVALID_ENTRY_FIELD.format(
        header=message_header, field=field, value=expected_value
    )


@pytest.mark.parametrize("header", ["central", "local"])
def test_utf8_flag_is_level1_signed_but_not_level2(tmp_path: Path, header: str) -> None:
    dst = tmp_path / "utf8.nupkg"
    tamper.set_signature_utf8_flag(SIGNED, dst, header=header)  # type: ignore[arg-type]
    raw = dst.read_bytes()
    with open(dst, "rb") as f:
        layout = read_layout(f)
    sig = layout.headers[-1]
    # NuGet's unit tests set CD byte 9 / LFH byte 7 to 0x08: exactly bit 11.
    assert raw[sig.position + 9 if header == "central" else sig.local_header_offset + 7] == 0x08
    assert has_signature_entry(layout)
    assert _entry_error(dst).message == Messages.NO_VALID_SIGNATURE_FILE


def test_uppercase_name_only_in_local_header_is_not_level2(tmp_path: Path) -> None:
    data = bytearray(SIGNED.read_bytes())
    with open(SIGNED, "rb") as f:
        lfh = read_layout(f).headers[-1].local_header_offset
    data[lfh + 30 : lfh + 44] = b".SIGNATURE.P7S"
    dst = tmp_path / "lfh-upper.nupkg"
    dst.write_bytes(bytes(data))
    assert _entry_error(dst).message == Messages.NO_VALID_SIGNATURE_FILE


def test_check_fields_false_still_locates_a_deflated_signature(tmp_path: Path) -> None:
    dst = tmp_path / "deflated.nupkg"
    tamper.deflate_signature(SIGNED, dst)
    with open(dst, "rb") as f:
        layout = read_layout(f)
        entry = find_signature_entry(f, layout, check_fields=False)
    assert entry.central.method == 8


def test_signature_lfh_missing_is_nu3005() -> None:
    data = bytearray((FIXTURES / "SignatureFileEntry.zip").read_bytes())
    data[0:4] = b"XXXX"
    with pytest.raises(SignatureEntryError) as caught:
        find_signature_entry(_open(bytes(data)), read_layout(_open(bytes(data))))
    assert caught.value.code is NuCode.NU3005
    assert "offset 0" in caught.value.message


def test_truncated_signature_data() -> None:
    data = (FIXTURES / "SignatureFileEntry.zip").read_bytes()
    f = _open(data)
    entry = find_signature_entry(f, read_layout(f))
    short = _open(data[: entry.data_offset + 3])
    # NuGet reads a zero-padded buffer that fails to decode: NU3003, for the signature, not the zip.
    with pytest.raises(SignatureFormatError, match="only 3 are available") as caught:
        read_signature_bytes(short, entry)
    assert caught.value.code is NuCode.NU3003


# --- DOS time -----------------------------------------------------------------------------------------------


def test_dos_datetime_matches_nuget_fixture_bytes() -> None:
    # TestPackage.AuthorSigned: time a58e, date 5c4c (spec §1.3) = 2018-02-28 17:53:10.
    assert struct.pack("<I", dos_datetime(2018, 2, 28, 17, 53, 10)) == bytes.fromhex("a58e5c4c")


def test_dos_datetime_clamps_unencodable_years() -> None:
    assert dos_datetime(1970, 6, 1, 1, 1, 1) == dos_datetime(1980, 1, 1, 0, 0, 0)
    assert dos_datetime(2200, 6, 1, 1, 1, 1) == dos_datetime(2107, 12, 31, 23, 59, 58)
