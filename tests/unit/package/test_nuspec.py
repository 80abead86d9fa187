"""nuspec: package identity and NuGet version normalization."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from tests.unit.package.helpers import ManifestRow, manifest

from nuseal.errors import PackageFormatError
from nuseal.package import nuspec
from nuseal.package.nuspec import PackageIdentity, read_identity
from nuseal.versioning import normalize_version

READABLE = [r for r in manifest() if r.kind != "corrupt"]
NUSPEC = (
    b'<?xml version="1.0"?><package xmlns="http://schemas.microsoft.com/packaging/2013/05/nuspec.xsd">'
    b"<metadata><id>My.Pkg</id><version>%s</version></metadata></package>"
)


def _package(tmp_path: Path, files: dict[str, bytes]) -> Path:
    path = tmp_path / "p.nupkg"
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return path


@pytest.mark.parametrize("row", READABLE, ids=[r.path.name for r in READABLE])
def test_identity_of_every_real_vector(row: ManifestRow) -> None:
    identity = read_identity(row.path)
    assert identity.id == row.package_id
    assert identity.version == normalize_version(row.package_version)


def test_read_identity_normalizes(tmp_path: Path) -> None:
    path = _package(tmp_path, {"My.Pkg.nuspec": NUSPEC % b"1.0", "lib/a.dll": b"x"})
    assert read_identity(path) == PackageIdentity("My.Pkg", "1.0.0")


def test_nested_nuspec_is_ignored(tmp_path: Path) -> None:
    path = _package(tmp_path, {"content/Other.nuspec": NUSPEC % b"1.0"})
    with pytest.raises(PackageFormatError, match=r"no \.nuspec"):
        read_identity(path)


def test_multiple_nuspecs(tmp_path: Path) -> None:
    path = _package(tmp_path, {"a.nuspec": NUSPEC % b"1.0", "b.NUSPEC": NUSPEC % b"1.0"})
    with pytest.raises(PackageFormatError, match="multiple"):
        read_identity(path)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"<package><metadata><id>x</id>", "not well-formed"),
        (b"<nope/>", "root element"),
        (b"<package/>", "no <metadata>"),
        (b"<package><metadata><version>1.0</version></metadata></package>", "no package id"),
        (b"<package><metadata><id>x</id></metadata></package>", "no package version"),
        (b"<package><metadata><id>x</id><version>banana</version></metadata></package>", "banana"),
    ],
)
def test_malformed_nuspec(tmp_path: Path, content: bytes, match: str) -> None:
    path = _package(tmp_path, {"x.nuspec": content})
    with pytest.raises(PackageFormatError, match=match):
        read_identity(path)


@pytest.mark.parametrize("doctype", [
    b'<!DOCTYPE package [<!ENTITY e SYSTEM "file:///etc/passwd">]>',
    b"<!-- a comment first --><!DOCTYPE package>",
    b'<!DOCTYPE package SYSTEM "http://127.0.0.1:9/x.dtd">',
])
def test_dtds_are_refused_and_entities_never_expanded(tmp_path: Path, doctype: bytes) -> None:
    content = doctype + b"<package><metadata><id>&e;</id><version>1.0</version></metadata></package>"
    path = _package(tmp_path, {"x.nuspec": content})
    with pytest.raises(PackageFormatError, match=r"x\.nuspec: the nuspec declares a DTD"):
        read_identity(path)


def test_huge_nuspec_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nuspec, "MAX_NUSPEC_BYTES", 100)
    path = _package(tmp_path, {"x.nuspec": NUSPEC % (b"1.0" + b" " * 200)})
    with pytest.raises(PackageFormatError, match="more than the 100"):
        read_identity(path)


def test_size_lie_in_header_is_still_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nuspec, "MAX_NUSPEC_BYTES", 100)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("x.nuspec", b"a" * 500)
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as archive:
        info = archive.getinfo("x.nuspec")
        info.file_size = 50  # pretend to be small
        with pytest.raises((PackageFormatError, zipfile.BadZipFile)):
            nuspec._read_bounded(archive, info, Path("lie.nupkg"))


def test_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "junk.nupkg"
    path.write_bytes(b"\x00" * 100)
    with pytest.raises(PackageFormatError, match=r"junk\.nupkg"):
        read_identity(path)
