"""nuspec.read_identity on damaged archives: every failure of Python's zipfile is a ``PackageFormatError`` naming the
file (the verifier then simply has no identity to show; the damage itself is judged by the integrity check)."""

from __future__ import annotations

import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from nuseal.errors import PackageFormatError
from nuseal.package import nuspec

NUSPEC = (b'<?xml version="1.0"?><package><metadata><id>Damaged</id><version>1.0.0</version>'
          b"<description>" + b"a damaged package " * 20 + b"</description></metadata></package>")


def _package(path: Path) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("Damaged.nuspec", NUSPEC)
    return path


def _patch(path: Path, fix: Callable[[bytearray], None]) -> Path:
    data = bytearray(path.read_bytes())
    fix(data)
    path.write_bytes(bytes(data))
    return path


def _central(data: bytearray) -> int:
    return data.index(b"PK\x01\x02")


def _corrupt_deflate(data: bytearray) -> None:
    data[30 + len("Damaged.nuspec")] ^= 0xFF  # the first byte of the deflate stream: an invalid block type


def _method_99(data: bytearray) -> None:
    struct.pack_into("<H", data, 8, 99)
    struct.pack_into("<H", data, _central(data) + 10, 99)


def _version_8_7(data: bytearray) -> None:
    struct.pack_into("<H", data, _central(data) + 6, 87)  # "version needed to extract"


def _encrypted(data: bytearray) -> None:
    struct.pack_into("<H", data, 6, 1)
    struct.pack_into("<H", data, _central(data) + 8, 1)


def _invalid_utf8_name(data: bytearray) -> None:
    central = _central(data)
    struct.pack_into("<H", data, central + 8, 0x0800)  # the name is flagged UTF-8...
    data[central + 46] = 0xFF  # ...and is not


# damage -> what zipfile raised before it was converted (the causes of issue 8's defect 5)
DAMAGES: dict[str, tuple[Callable[[bytearray], None], type[Exception]]] = {
    "corrupt-deflate": (_corrupt_deflate, zlib.error),
    "method-99": (_method_99, NotImplementedError),
    "version-8.7": (_version_8_7, NotImplementedError),
    "encrypted": (_encrypted, RuntimeError),
    "invalid-utf8-name": (_invalid_utf8_name, UnicodeDecodeError),
}


def test_undamaged_package_has_an_identity(tmp_path: Path) -> None:
    assert nuspec.read_identity(_package(tmp_path / "p.nupkg")).id == "Damaged"


@pytest.mark.parametrize(("damage", "cause"), DAMAGES.values(), ids=DAMAGES.keys())
def test_damage_is_a_package_format_error(tmp_path: Path, damage: Callable[[bytearray], None],
                                          cause: type[Exception]) -> None:
    path = _patch(_package(tmp_path / "p.nupkg"), damage)
    with pytest.raises(PackageFormatError, match=r"p\.nupkg: cannot read the package as a zip archive") as caught:
        nuspec.read_identity(path)
    assert isinstance(caught.value.__cause__, cause)
