"""tests/support/tamper.py: each helper does what it says and leaves a readable zip."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import pytest
from tests.conftest import VECTORS
from tests.support import tamper

from nuseal.package.zipformat import SIGNATURE_FILE_NAME, UTF8_FLAG, read_layout

SIGNED = VECTORS / "fixtures" / "TestPackage.AuthorSigned.1.0.0.nupkg"


def _zip(path: Path) -> zipfile.ZipFile:
    return zipfile.ZipFile(path)


def _names(path: Path) -> list[str]:
    with _zip(path) as archive:
        return archive.namelist()


def _sig_headers(path: Path) -> tuple[int, int]:
    with open(path, "rb") as f:
        layout = read_layout(f)
    sig = next(h for h in layout.headers if h.name.lower() == SIGNATURE_FILE_NAME)
    return sig.position, sig.local_header_offset


@pytest.fixture
def dst(tmp_path: Path) -> Path:
    return tmp_path / "out.nupkg"


def test_delete_entry(dst: Path) -> None:
    tamper.delete_entry(SIGNED, dst)
    before, after = _names(SIGNED), _names(dst)
    assert len(after) == len(before) - 1 and ".signature.p7s" in after
    assert _zip(dst).testzip() is None


def test_add_entry(dst: Path) -> None:
    tamper.add_entry(SIGNED, dst, name="new.txt", content=b"hello")
    with _zip(dst) as archive:
        assert archive.read("new.txt") == b"hello"
        assert archive.testzip() is None


def test_append_and_truncate_entry(dst: Path, tmp_path: Path) -> None:
    name = next(n for n in _names(SIGNED) if n.endswith(".nuspec"))
    original = _zip(SIGNED).read(name)
    tamper.append_to_entry(SIGNED, dst, name=name, extra=b"<!-- x -->")
    assert _zip(dst).read(name) == original + b"<!-- x -->"
    shorter = tmp_path / "short.nupkg"
    tamper.truncate_entry(SIGNED, shorter, name=name)
    assert _zip(shorter).read(name) == original[:-1]
    assert _zip(shorter).testzip() is None


def test_change_entry_time(dst: Path) -> None:
    tamper.change_entry_time(SIGNED, dst)
    a, b = _zip(SIGNED).infolist()[0], _zip(dst).infolist()[0]
    assert a.date_time != b.date_time
    assert len(SIGNED.read_bytes()) == len(dst.read_bytes())
    differing = [
        i for i, (x, y) in enumerate(zip(SIGNED.read_bytes(), dst.read_bytes(), strict=True)) if x != y
    ]
    assert 0 < len(differing) <= 4


def test_eocd_comment_and_trailing_bytes(dst: Path, tmp_path: Path) -> None:
    tamper.set_eocd_comment(SIGNED, dst, comment=b"hi")
    assert _zip(dst).comment == b"hi"
    trailing = tmp_path / "trailing.nupkg"
    tamper.append_trailing_bytes(SIGNED, trailing, data=b"zz")
    assert trailing.read_bytes() == SIGNED.read_bytes() + b"zz"


def test_remove_and_randomize_signature(dst: Path, tmp_path: Path) -> None:
    tamper.remove_signature(SIGNED, dst)
    assert ".signature.p7s" not in _names(dst)
    noisy = tmp_path / "noisy.nupkg"
    tamper.randomize_signature(SIGNED, noisy, seed=1)
    assert len(noisy.read_bytes()) == len(SIGNED.read_bytes())
    with _zip(SIGNED) as a, _zip(noisy) as b:
        assert a.getinfo(".signature.p7s").file_size == b.getinfo(".signature.p7s").file_size
        assert a.open(".signature.p7s").read() != b.open(".signature.p7s").read()


def test_deflate_signature(dst: Path) -> None:
    tamper.deflate_signature(SIGNED, dst)
    with _zip(dst) as a, _zip(SIGNED) as b:
        assert a.getinfo(".signature.p7s").compress_type == zipfile.ZIP_DEFLATED
        assert a.read(".signature.p7s") == b.read(".signature.p7s")


@pytest.mark.parametrize(
    ("field", "header", "offset", "fmt", "value"),
    [
        ("flags", "central", 8, "<H", 1),
        ("flags", "local", 6, "<H", 1),
        ("method", "central", 10, "<H", 8),
        ("compressed_size", "local", 18, "<I", 1),
        ("uncompressed_size", "central", 24, "<I", 1),
        ("external_attributes", "central", 38, "<I", 0x20),
    ],
)
def test_set_signature_field(dst: Path, field: str, header: str, offset: int, fmt: str, value: int) -> None:
    tamper.set_signature_field(SIGNED, dst, field=field, value=value, header=header)  # type: ignore[arg-type]
    cd, lfh = _sig_headers(dst)
    base = cd if header == "central" else lfh
    assert struct.unpack_from(fmt, dst.read_bytes(), base + offset)[0] == value
    assert len(dst.read_bytes()) == len(SIGNED.read_bytes())


def test_named_field_wrappers(dst: Path, tmp_path: Path) -> None:
    tamper.set_signature_flags(SIGNED, dst, flags=3, header="both")
    cd, lfh = _sig_headers(dst)
    data = dst.read_bytes()
    assert struct.unpack_from("<H", data, cd + 8)[0] == struct.unpack_from("<H", data, lfh + 6)[0] == 3
    other = tmp_path / "o.nupkg"
    tamper.set_signature_utf8_flag(SIGNED, other, header="both")
    cd, lfh = _sig_headers(other)
    data = other.read_bytes()
    assert (
        struct.unpack_from("<H", data, cd + 8)[0] == struct.unpack_from("<H", data, lfh + 6)[0] == UTF8_FLAG
    )
    tamper.set_signature_size_mismatch(SIGNED, other, field="uncompressed_size", header="local")
    _, lfh = _sig_headers(other)
    assert struct.unpack_from("<I", other.read_bytes(), lfh + 22)[0] == 1
    tamper.set_signature_external_attributes(SIGNED, other)
    cd, _ = _sig_headers(other)
    assert struct.unpack_from("<I", other.read_bytes(), cd + 38)[0] == 0x20
    with pytest.raises(ValueError, match="central directory"):
        tamper.set_signature_field(SIGNED, other, field="external_attributes", value=1, header="local")


def test_uppercase_signature_name(dst: Path) -> None:
    tamper.uppercase_signature_name(SIGNED, dst)
    names = _names(dst)
    assert ".SIGNATURE.P7S" in names and ".signature.p7s" not in names
    cd, lfh = _sig_headers(dst)
    data = dst.read_bytes()
    assert data[cd + 46 : cd + 60] == data[lfh + 30 : lfh + 44] == b".SIGNATURE.P7S"


@pytest.mark.parametrize("move", [tamper.move_signature_first, tamper.move_signature_to_middle])
def test_move_signature(dst: Path, move: object) -> None:
    move(SIGNED, dst)  # type: ignore[operator]
    with open(dst, "rb") as f:
        layout = read_layout(f)
    order = [h.name for h in layout.headers]
    index = order.index(SIGNATURE_FILE_NAME)
    expected = 0 if move is tamper.move_signature_first else (len(order) - 1) // 2
    assert index == expected
    by_offset = sorted(layout.headers, key=lambda h: h.local_header_offset)
    assert [h.name for h in by_offset].index(SIGNATURE_FILE_NAME) == expected
    with _zip(dst) as a, _zip(SIGNED) as b:
        assert a.testzip() is None
        assert sorted(a.namelist()) == sorted(b.namelist())
