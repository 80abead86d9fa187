"""The verifier reads a package's nuspec identity from the zip layout it has already walked
(``zipformat.zipfile_names`` / ``read_entry_as_zipfile``) only where zipfile would read the very same bytes; every
other archive goes to ``nuspec.read_identity`` (zipfile). Both readings must give the same id and version, or the
same refusal, on every vector and on archives built to tell them apart."""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.conftest import VECTORS

from nuseal.errors import NusealError
from nuseal.package import nuspec, zipformat
from nuseal.verify import engine

NUSPEC = (b'<?xml version="1.0" encoding="utf-8"?><package xmlns="http://schemas.microsoft.com/packaging/2013/05/'
          b'nuspec.xsd"><metadata><id>Fast.Path</id><version>1.2.3</version><authors>a</authors>'
          b'<description>d</description></metadata></package>')


def _by_zipfile(path: Path) -> tuple[str | None, str | None]:
    try:
        identity = nuspec.read_identity(path)
    except NusealError:
        return None, None
    return identity.id, identity.version


def _by_engine(path: Path) -> tuple[str | None, str | None]:
    with path.open("rb") as f:
        return engine._identity(f, zipformat.read_layout(f), path)


def _fast(path: Path) -> tuple[bytes, str] | None:
    with path.open("rb") as f:
        return engine._root_nuspec(f, zipformat.read_layout(f), path)


def _archive(entries: list[tuple[str, bytes]], method: int = zipfile.ZIP_DEFLATED, comment: bytes = b"") -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", method) as archive:
        for name, data in entries:
            archive.writestr(name, data)
        archive.comment = comment
    return out.getvalue()


def _plain() -> bytes:
    return _archive([("lib/a.dll", b"x" * 100), ("Fast.Path.nuspec", NUSPEC), ("readme.txt", b"hello")])


def _patch_cd(data: bytes, name: bytes, offset: int, value: bytes) -> bytes:
    """Overwrite bytes at ``offset`` inside the CD header of entry ``name``."""
    position = data.index(b"PK\x01\x02")
    while data[position + 46: position + 46 + len(name)] != name:
        position = data.index(b"PK\x01\x02", position + 4)
    return data[:position + offset] + value + data[position + offset + len(value):]


def _patch_local(data: bytes, name: bytes, offset: int, value: bytes) -> bytes:
    position = data.index(b"PK\x03\x04")
    while data[position + 30: position + 30 + len(name)] != name:
        position = data.index(b"PK\x03\x04", position + 4)
    return data[:position + offset] + value + data[position + offset + len(value):]


def _corrupt_nuspec_data(data: bytes) -> bytes:
    position = data.index(b"PK\x03\x04")
    while data[position + 30: position + 30 + 16] != b"Fast.Path.nuspec":
        position = data.index(b"PK\x03\x04", position + 4)
    start = position + 30 + 16 + struct.unpack_from("<H", data, position + 28)[0]
    return data[:start + 5] + bytes([data[start + 5] ^ 0xFF]) + data[start + 6:]


#: Archives zipfile reads differently from the layout, or refuses, or that nuspec refuses: the fast path must
#: step aside (or agree), never answer differently.
CASES: dict[str, Callable[[], bytes]] = {
    "plain": _plain,
    "stored": lambda: _archive([("Fast.Path.nuspec", NUSPEC)], zipfile.ZIP_STORED),
    "comment": lambda: _archive([("Fast.Path.nuspec", NUSPEC)], comment=b"a comment"),
    "prefixed": lambda: b"junk before the archive" + _plain(),
    "two nuspecs": lambda: _archive([("a.nuspec", NUSPEC), ("B.NUSPEC", NUSPEC)]),
    "nested nuspec only": lambda: _archive([("sub/a.nuspec", NUSPEC), ("x\\b.nuspec", NUSPEC)]),
    "upper-case suffix": lambda: _archive([("Fast.Path.NuSpec", NUSPEC)]),
    "bad crc": lambda: _patch_cd(_plain(), b"Fast.Path.nuspec", 16, b"\x00\x00\x00\x00"),
    "corrupt deflate": lambda: _corrupt_nuspec_data(_plain()),
    "size lies (larger)": lambda: _patch_cd(_plain(), b"Fast.Path.nuspec", 24, struct.pack("<I", len(NUSPEC) + 7)),
    "size lies (smaller)": lambda: _patch_cd(_plain(), b"Fast.Path.nuspec", 24, struct.pack("<I", 10)),
    "encrypted flag": lambda: _patch_cd(_plain(), b"Fast.Path.nuspec", 8, b"\x01\x00"),
    "unknown method": lambda: _patch_cd(_plain(), b"Fast.Path.nuspec", 10, b"\x0e\x00"),
    "local name differs": lambda: _patch_local(_plain(), b"Fast.Path.nuspec", 30, b"G"),
    "version needed 6.4": lambda: _patch_cd(_plain(), b"readme.txt", 6, b"\x40\x00"),
    "utf-8 flag on a non-utf-8 name": lambda: _patch_cd(_patch_cd(
        _archive([("cafe.txt", b"1"), ("Fast.Path.nuspec", NUSPEC)]), b"cafe.txt", 8, b"\x00\x08"),
        b"cafe.txt", 46 + 3, b"\xe9"),
    "nul in a name": lambda: _archive([("Fast.Path.nuspec\x00.txt", NUSPEC)]),
    "bad extra field": lambda: _patch_cd(_plain(), b"readme.txt", 30, b"\x08\x00"),
    "not a nuspec": lambda: _archive([("Fast.Path.nuspec", b"<not xml")]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_both_readings_agree_on_built_archives(case: str, tmp_path: Path) -> None:
    path = tmp_path / "p.nupkg"
    path.write_bytes(CASES[case]())
    try:
        expected = _by_zipfile(path)
    except (OSError, zipfile.BadZipFile):
        pytest.fail("nuspec.read_identity raises only NusealError for a readable file")
    try:
        got = _by_engine(path)
    except NusealError:  # read_layout refuses the archive: the verifier never asks for the identity then
        return
    assert got == expected


def test_the_layout_is_taken_for_a_plain_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "p.nupkg"
    path.write_bytes(_plain())

    def no_zipfile(_: Path) -> nuspec.PackageIdentity:
        raise AssertionError("zipfile was asked although the layout could answer")

    monkeypatch.setattr(nuspec, "read_identity", no_zipfile)
    assert _by_engine(path) == ("Fast.Path", "1.2.3")
    assert _fast(path) == (NUSPEC, f"{path}!Fast.Path.nuspec")


@pytest.mark.parametrize("case", ["comment", "bad crc", "corrupt deflate", "size lies (larger)",
                                  "encrypted flag", "unknown method", "local name differs", "version needed 6.4",
                                  "bad extra field", "two nuspecs", "utf-8 flag on a non-utf-8 name"])
def test_the_layout_steps_aside_where_zipfile_may_differ(case: str, tmp_path: Path) -> None:
    path = tmp_path / "p.nupkg"
    path.write_bytes(CASES[case]())
    assert _fast(path) is None


def test_every_vector_reads_the_same_both_ways() -> None:
    paths = sorted(VECTORS.rglob("*.nupkg"))
    assert len(paths) > 20
    fast = 0
    for path in paths:
        try:
            got = _by_engine(path)
        except NusealError:
            continue  # not a zip the verifier reads: no identity is asked for
        assert got == _by_zipfile(path), path
        fast += _fast(path) is not None
    assert fast > len(paths) // 2  # the real packages do take the layout
