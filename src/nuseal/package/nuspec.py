"""Package identity (id and normalized version) from the ``.nuspec`` at the root of a package."""

from __future__ import annotations

import lzma
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from nuseal.errors import PackageFormatError
from nuseal.versioning import normalize_version

# A nuspec is a few KiB; refuse anything absurd before parsing it (zip bombs, hostile packages).
MAX_NUSPEC_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class PackageIdentity:
    """A package id as written in the nuspec and its version normalized like NuGet."""

    id: str
    version: str


def _nuspec_entry(archive: zipfile.ZipFile, path: Path) -> zipfile.ZipInfo:
    candidates = [
        info
        for info in archive.infolist()
        if "/" not in info.filename
        and "\\" not in info.filename
        and info.filename.lower().endswith(".nuspec")
    ]
    if not candidates:
        raise PackageFormatError(f"{path}: the package has no .nuspec file at its root.")
    if len(candidates) > 1:
        names = ", ".join(info.filename for info in candidates)
        raise PackageFormatError(
            f"{path}: the package contains multiple .nuspec files at its root ({names})."
        )
    return candidates[0]


def _read_bounded(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> bytes:
    if info.file_size > MAX_NUSPEC_BYTES:
        raise PackageFormatError(
            f"{path}: {info.filename} is {info.file_size} bytes, more than the {MAX_NUSPEC_BYTES} allowed."
        )
    with archive.open(info) as stream:
        # The declared size may lie; never read more than the limit.
        data = stream.read(MAX_NUSPEC_BYTES + 1)
    if len(data) > MAX_NUSPEC_BYTES:
        raise PackageFormatError(
            f"{path}: {info.filename} is larger than the {MAX_NUSPEC_BYTES} bytes allowed."
        )
    return data


def _local_name(element: etree._Element) -> str:
    return etree.QName(element).localname if isinstance(element.tag, str) else ""


def _child_text(parent: etree._Element, name: str) -> str | None:
    for child in parent:
        if _local_name(child) == name:
            return (child.text or "").strip()
    return None


def parse_identity(nuspec: bytes, where: str = "nuspec") -> PackageIdentity:
    """Read ``package/metadata/id`` and ``.../version`` (any namespace) from nuspec bytes."""
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_comments=True
    )
    try:
        root = etree.fromstring(nuspec, parser)
    except etree.XMLSyntaxError as exc:
        raise PackageFormatError(f"{where}: the nuspec is not well-formed XML: {exc}") from exc
    if _local_name(root) != "package":
        raise PackageFormatError(f"{where}: the nuspec root element is <{_local_name(root)}>, not <package>.")
    metadata = next((child for child in root if _local_name(child) == "metadata"), None)
    if metadata is None:
        raise PackageFormatError(f"{where}: the nuspec has no <metadata> element.")
    package_id = _child_text(metadata, "id")
    version = _child_text(metadata, "version")
    if not package_id:
        raise PackageFormatError(f"{where}: the nuspec has no package id (<metadata><id>).")
    if not version:
        raise PackageFormatError(f"{where}: the nuspec has no package version (<metadata><version>).")
    try:
        normalized = normalize_version(version)
    except ValueError as exc:
        raise PackageFormatError(f"{where}: {exc}.") from exc
    return PackageIdentity(id=package_id, version=normalized)


def read_identity(path: Path) -> PackageIdentity:
    """The identity of the package at ``path`` from its root ``.nuspec``; ``PackageFormatError`` if absent,
    duplicated, oversized or malformed."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            info = _nuspec_entry(archive, path)
            data = _read_bounded(archive, info, path)
    except _ZIP_ERRORS as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise PackageFormatError(f"{path}: cannot read the package as a zip archive: {exc}") from exc
    return parse_identity(data, f"{path}!{info.filename}")


#: What ``zipfile`` lets through on a damaged archive besides ``BadZipFile``: corrupt deflate data (``zlib.error``),
#: unsupported methods, versions or flags (``NotImplementedError``), encrypted entries (``RuntimeError``), names
#: that are not valid UTF-8 (``UnicodeDecodeError``), truncated records (``EOFError``, ``struct.error``).
_ZIP_ERRORS: tuple[type[Exception], ...] = (
    zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, zlib.error, lzma.LZMAError, NotImplementedError,
    RuntimeError, ValueError, struct.error,
)
