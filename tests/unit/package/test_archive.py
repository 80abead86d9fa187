"""archive: inserting and removing the signature entry byte-exactly (spec §1.3, §1.4)."""

from __future__ import annotations

import hashlib
import io
import shutil
import struct
import zipfile
import zlib
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import VECTORS
from tests.support import tamper
from tests.unit.package.helpers import ManifestRow, ids, signed_packages, signed_rows, unsigned_rows

from nuseal.codes import Messages, NuCode
from nuseal.errors import PackageFormatError, SignatureEntryError, SigningError
from nuseal.package.archive import insert_signature, remove_signature, write_signed
from nuseal.package.fileio import atomic_output
from nuseal.package.hashing import package_hash
from nuseal.package.zipformat import (
    find_signature_entry,
    read_layout,
    read_signature_bytes,
)

WHEN = datetime(2018, 2, 28, 17, 53, 10)
UNSIGNED = VECTORS / "real" / "Antlr.3.5.0.2__unsigned.nupkg"
FIXTURES = VECTORS / "fixtures"


def _signature_and_time(package: Path) -> tuple[bytes, datetime]:
    with open(package, "rb") as f:
        layout = read_layout(f)
        entry = find_signature_entry(f, layout)
        signature = read_signature_bytes(f, entry)
    t, d = entry.central.dos_time, entry.central.dos_date
    return signature, datetime(1980 + (d >> 9), (d >> 5) & 15, d & 31, t >> 11, (t >> 5) & 63, (t & 31) * 2)


@pytest.mark.parametrize("row", signed_rows(), ids=[r.path.name for r in signed_rows()])
def test_remove_reproduces_unsigned_content(tmp_path: Path, row: ManifestRow) -> None:
    dst = tmp_path / "unsigned.nupkg"
    remove_signature(row.path, dst)
    assert hashlib.sha256(dst.read_bytes()).hexdigest() == row.unsigned_content_sha256


def test_antlr_minus_signature_is_the_original_upload(tmp_path: Path, vectors: Path) -> None:
    dst = tmp_path / "antlr.nupkg"
    remove_signature(vectors / "real" / "Antlr.3.5.0.2.nupkg", dst)
    assert dst.read_bytes() == (vectors / "real" / "Antlr.3.5.0.2__unsigned.nupkg").read_bytes()


@pytest.mark.parametrize("package", signed_packages(), ids=ids(signed_packages()))
def test_reinserting_the_signature_reproduces_the_signed_file(tmp_path: Path, package: Path) -> None:
    """NuGet wrote all these signatures; with the same bytes and time we write the same file."""
    signature, when = _signature_and_time(package)
    unsigned = tmp_path / "unsigned.nupkg"
    remove_signature(package, unsigned)
    insert_signature(unsigned, tmp_path / "signed.nupkg", signature, when=when)
    assert (tmp_path / "signed.nupkg").read_bytes() == package.read_bytes()
    assert package.stat().st_size == unsigned.stat().st_size + len(signature) + 104


def test_inserted_records_match_nuget_bytes(tmp_path: Path) -> None:
    signature = b"\x30\x03\x02\x01\x05"
    dst = tmp_path / "signed.nupkg"
    insert_signature(UNSIGNED, dst, signature, when=WHEN)
    original = UNSIGNED.read_bytes()
    with open(UNSIGNED, "rb") as f:
        old = read_layout(f)
    data = dst.read_bytes()
    start = old.start_of_central_directory
    crc = struct.pack("<I", zlib.crc32(signature))
    lfh = (
        bytes.fromhex("504b0304 1400 0000 0000 a58e 5c4c")
        + crc
        + struct.pack("<IIHH", 5, 5, 14, 0)
        + b".signature.p7s"
    )
    assert data[:start] == original[:start]
    assert data[start : start + 44] == lfh
    assert data[start + 44 : start + 49] == signature
    with open(dst, "rb") as f:
        new = read_layout(f)
        entry = find_signature_entry(f, new)
    cd = data[entry.central.position : entry.central.position + 60]
    assert cd == (
        bytes.fromhex("504b0102 1400 1400 0000 0000 a58e 5c4c")
        + crc
        + struct.pack("<IIHHHHHII", 5, 5, 14, 0, 0, 0, 0, 0, start)
        + b".signature.p7s"
    )
    assert new.eocd.total_entries == old.eocd.total_entries + 1
    assert new.eocd.entries_on_disk == old.eocd.entries_on_disk + 1
    assert new.eocd.cd_size == old.eocd.cd_size + 60
    assert new.eocd.cd_offset == old.eocd.cd_offset + 49
    assert zipfile.ZipFile(dst).testzip() is None


@pytest.mark.parametrize("row", unsigned_rows(), ids=[r.path.name for r in unsigned_rows()])
def test_insert_then_remove_round_trips(tmp_path: Path, row: ManifestRow) -> None:
    signed = tmp_path / "signed.nupkg"
    insert_signature(row.path, signed, b"not really a signature", when=WHEN)
    with open(signed, "rb") as f:
        layout = read_layout(f)
        entry = find_signature_entry(f, layout)
        assert read_signature_bytes(f, entry) == b"not really a signature"
        assert package_hash(f, layout, entry, "sha256") == hashlib.sha256(row.path.read_bytes()).digest()
    assert zipfile.ZipFile(signed).testzip() is None
    remove_signature(signed, tmp_path / "back.nupkg")
    assert (tmp_path / "back.nupkg").read_bytes() == row.path.read_bytes()


def test_in_place_insert_and_remove(tmp_path: Path) -> None:
    work = tmp_path / "pkg.nupkg"
    shutil.copyfile(UNSIGNED, work)
    work.chmod(0o640)
    insert_signature(work, work, b"sig", when=WHEN)
    assert work.stat().st_size == UNSIGNED.stat().st_size + 3 + 104
    assert work.stat().st_mode & 0o777 == 0o640
    remove_signature(work, work)
    assert work.read_bytes() == UNSIGNED.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pkg.nupkg"]


def test_default_time_is_now(tmp_path: Path) -> None:
    dst = tmp_path / "signed.nupkg"
    before = datetime.now().replace(microsecond=0)
    insert_signature(UNSIGNED, dst, b"sig")
    after = datetime.now()
    _, when = _signature_and_time(dst)
    assert before.replace(second=before.second - before.second % 2) <= when <= after


# --- refusals --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "EmptyZip64.zip",
        "LocalFileHeaderWithZip64ExtraField.zip",
        "CentralDirectoryHeaderWithZip64ExtraField.zip",
    ],
)
def test_zip64_is_refused(tmp_path: Path, name: str) -> None:
    dst = tmp_path / "out.zip"
    with pytest.raises(SigningError) as caught:
        insert_signature(FIXTURES / name, dst, b"sig", when=WHEN)
    assert caught.value.code is NuCode.NU3006
    assert caught.value.message == Messages.ZIP64_NOT_SUPPORTED
    assert not dst.exists()
    assert list(tmp_path.iterdir()) == []


def test_already_signed_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SigningError) as caught:
        insert_signature(FIXTURES / "SignedPackage.1.0.0.nupkg", tmp_path / "x", b"sig", when=WHEN)
    assert caught.value.code is NuCode.NU3001
    assert caught.value.message == (
        "The package already contains a signature. Please remove the existing signature before adding a "
        "new signature."
    )


def test_level1_signature_entry_counts_as_signed(tmp_path: Path) -> None:
    utf8 = tmp_path / "utf8.nupkg"
    tamper.set_signature_utf8_flag(FIXTURES / "SignedPackage.1.0.0.nupkg", utf8)
    with pytest.raises(SigningError) as caught:
        insert_signature(utf8, tmp_path / "x", b"sig", when=WHEN)
    assert caught.value.code is NuCode.NU3001


def _with_entry_count(count: int) -> bytes:
    data = bytearray(UNSIGNED.read_bytes())
    eocd = data.rindex(b"PK\x05\x06")
    struct.pack_into("<HH", data, eocd + 8, count, count)
    return bytes(data)


def test_would_need_zip64_is_refused() -> None:
    with pytest.raises(SigningError) as caught:
        write_signed(io.BytesIO(_with_entry_count(0xFFFE)), io.BytesIO(), b"sig", 0)
    assert caught.value.code is NuCode.NU3039
    assert caught.value.message.startswith(Messages.WOULD_REQUIRE_ZIP64)


def test_largest_signable_entry_count_is_accepted() -> None:
    out = io.BytesIO()
    write_signed(io.BytesIO(_with_entry_count(0xFFFD)), out, b"sig", 0)
    eocd = out.getvalue().rindex(b"PK\x05\x06")
    assert struct.unpack_from("<HH", out.getvalue(), eocd + 8) == (0xFFFE, 0xFFFE)


def test_synthetic_central_directory_of_0xfffe_entries_is_refused() -> None:
    """A real CD of 0xFFFE headers (not just a faked count)."""
    count = 0xFFFE
    names = [b"%04x" % i for i in range(count)]
    local = b"".join(
        struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 0, 0, 0, 0, 0, 0, 4, 0) + n for n in names
    )
    central = b"".join(
        struct.pack(
            "<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 34 * i
        )
        + n
        for i, n in enumerate(names)
    )
    eocd = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, count, count, len(central), len(local), 0)
    out = io.BytesIO(local + central + eocd)
    with pytest.raises(SigningError) as caught:
        write_signed(out, io.BytesIO(), b"sig", 0)
    assert caught.value.code is NuCode.NU3039


def test_remove_from_unsigned_is_nu3005(tmp_path: Path) -> None:
    with pytest.raises(SignatureEntryError) as caught:
        remove_signature(UNSIGNED, tmp_path / "x")
    assert caught.value.code is NuCode.NU3005
    assert not (tmp_path / "x").exists()


def test_remove_invalid_entry_needs_check_fields_false(tmp_path: Path) -> None:
    deflated = tmp_path / "deflated.nupkg"
    tamper.deflate_signature(FIXTURES / "SignedPackage.1.0.0.nupkg", deflated)
    with pytest.raises(SignatureEntryError):
        remove_signature(deflated, tmp_path / "x")
    remove_signature(deflated, tmp_path / "x", check_fields=False)
    unsigned = tmp_path / "plain.nupkg"
    remove_signature(FIXTURES / "SignedPackage.1.0.0.nupkg", unsigned)
    assert (tmp_path / "x").read_bytes() == unsigned.read_bytes()


def test_not_a_zip_is_a_format_error(tmp_path: Path) -> None:
    with pytest.raises(PackageFormatError):
        insert_signature(
            VECTORS / "real" / "HtmlAgilityPack.1.11.46__MALFORMED-zero-filled.nupkg", tmp_path / "x", b"s"
        )
    assert list(tmp_path.iterdir()) == []


# --- atomic_output -----------------------------------------------------------------------------------------


def test_atomic_output_keeps_old_file_on_failure(tmp_path: Path) -> None:
    dst = tmp_path / "out.bin"
    dst.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_output(dst) as out:
        out.write(b"partial")
        raise RuntimeError("boom")
    assert dst.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_atomic_output_replaces_on_success(tmp_path: Path) -> None:
    dst = tmp_path / "out.bin"
    dst.write_bytes(b"old")
    with atomic_output(dst) as out:
        out.write(b"new")
        assert dst.read_bytes() == b"old"
    assert dst.read_bytes() == b"new"


# --- property ----------------------------------------------------------------------------------------------

_names = st.text(alphabet="abcdefghij/._-", min_size=1, max_size=12).filter(
    lambda n: not n.endswith("/") and n != ".signature.p7s"
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    files=st.dictionaries(_names, st.binary(max_size=300), min_size=1, max_size=6),
    compress=st.booleans(),
    comment=st.binary(max_size=40).filter(lambda c: b"PK\x05\x06" not in c),
    signature=st.binary(min_size=1, max_size=2000),
)
def test_insert_then_remove_is_identity(
    tmp_path: Path, files: dict[str, bytes], compress: bool, comment: bytes, signature: bytes
) -> None:
    buffer = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(buffer, "w", method) as archive:
        archive.comment = comment
        for name, content in files.items():
            archive.writestr(name, content)
    original = buffer.getvalue()
    src = tmp_path / "prop.zip"
    src.write_bytes(original)
    signed = tmp_path / "prop-signed.zip"
    insert_signature(src, signed, signature, when=WHEN)
    with open(signed, "rb") as f:
        layout = read_layout(f)
        entry = find_signature_entry(f, layout)
        assert read_signature_bytes(f, entry) == signature
        assert package_hash(f, layout, entry, "sha512") == hashlib.sha512(original).digest()
    remove_signature(signed, tmp_path / "prop-back.zip")
    assert (tmp_path / "prop-back.zip").read_bytes() == original


# --- replacing a signature in one pass ---------------------------------------------------------------------


@pytest.mark.parametrize("package", signed_packages(), ids=ids(signed_packages()))
def test_one_pass_replacement_equals_remove_then_insert(tmp_path: Path, package: Path) -> None:
    """``--overwrite`` drops the old entry while adding the new one; NuGet removes, then signs."""
    from nuseal.package.archive import SignedPackageWriter

    signature = b"\x30\x03\x02\x01\x07" * 300
    two_pass = tmp_path / "two-pass.nupkg"
    remove_signature(package, tmp_path / "unsigned.nupkg")
    insert_signature(tmp_path / "unsigned.nupkg", two_pass, signature, when=WHEN)

    one_pass = tmp_path / "one-pass.nupkg"
    with SignedPackageWriter(package, one_pass, replace_signature=True) as writer:
        with open(package, "rb") as f:
            layout = read_layout(f)
            expected_hash = package_hash(f, layout, find_signature_entry(f, layout), "sha512")
        assert writer.package_hash("sha512") == expected_hash
        writer.finish(signature, when=WHEN)
    assert one_pass.read_bytes() == two_pass.read_bytes()


def test_signed_source_without_replacement_is_nu3001(tmp_path: Path) -> None:
    from nuseal.package.archive import SignedPackageWriter

    signed = signed_packages()[0]
    with pytest.raises(SigningError) as caught, SignedPackageWriter(signed, tmp_path / "x.nupkg"):
        pass
    assert caught.value.code is NuCode.NU3001
    assert list(tmp_path.iterdir()) == []
