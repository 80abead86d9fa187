"""The package manifest (the ``.nuspec`` at the root of a package): identity, and the full metadata a feed needs.

One reader for everything that looks at a nuspec: ``nuseal verify`` (identity), ``nuseal install`` (dependencies)
and the feed server (every field it stores, serves and checks). Two entry points share the same hardened parse:

- :func:`parse_identity` reads only ``id`` and ``version`` (what verification shows), and tolerates whatever
  else the manifest holds;
- :func:`parse_manifest` reads every field NuGet's ``NuspecReader`` exposes and refuses what NuGet's strict
  reading refuses (nuget.org's ``PackageMetadata.FromNuspecReader(strict: true)``): a metadata element given
  twice, a boolean that is not ``true``/``false``, a dependency version range that does not parse. Every error
  names the element or attribute and where the nuspec came from.

Policy (which ids, URLs or license types a feed accepts) is not here: the feed's push checks judge the
:class:`Manifest` this returns. Input is bounded (``MAX_NUSPEC_BYTES``, checked before parsing and while
decompressing) and parsed without DTDs: .NET's ``XmlReader`` prohibits them, so NuGet rejects a nuspec with a
``<!DOCTYPE``, and so do we; entities are never resolved and the network is never touched.

NuGet quirks kept: elements are matched by local name in any namespace (the nuspec schema namespace changed
over the years); ``minClientVersion`` is an attribute of ``<metadata>``; ``<dependencies>`` holds either
``<group targetFramework>`` elements or, the pre-2.0 form, bare ``<dependency>`` elements, and the bare ones are
ignored once any group exists; a dependency without a ``version`` means any version.

Where it lives: the shared hardened parse and :func:`parse_identity` in :mod:`nuseal.package.nuspec_xml`, the full
manifest in :mod:`nuseal.package.manifest` (loaded on first use, see ``_MANIFEST_NAMES``), finding the nuspec in a
zip here; every name is importable from this module.
"""

from __future__ import annotations

import struct
import zlib
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from nuseal.errors import PackageFormatError
from nuseal.package.nuspec_xml import MAX_NUSPEC_BYTES as MAX_NUSPEC_BYTES
from nuseal.package.nuspec_xml import PackageIdentity as PackageIdentity
from nuseal.package.nuspec_xml import parse_identity as parse_identity
from nuseal.record import Struct

if TYPE_CHECKING:
    import zipfile

    from nuseal.package.manifest import Manifest as Manifest
    from nuseal.package.manifest import ManifestDependency as ManifestDependency
    from nuseal.package.manifest import ManifestDependencyGroup as ManifestDependencyGroup
    from nuseal.package.manifest import ManifestLicense as ManifestLicense
    from nuseal.package.manifest import ManifestPackageType as ManifestPackageType
    from nuseal.package.manifest import ManifestRepository as ManifestRepository
    from nuseal.package.manifest import parse_manifest as parse_manifest

# --- finding the nuspec in a package ----------------------------------------------------------------------------


def is_root_nuspec_name(name: str) -> bool:
    """Whether a zip entry name is a candidate manifest: a ``*.nuspec`` (any case) at the root. The one rule for
    every reader of the identity (``_nuspec_entry`` here, the verifier's reading from its walked layout)."""
    return "/" not in name and "\\" not in name and name.lower().endswith(".nuspec")


def _nuspec_entry(archive: zipfile.ZipFile, path: Path | str) -> zipfile.ZipInfo:
    candidates = [info for info in archive.infolist() if is_root_nuspec_name(info.filename)]
    if not candidates:
        raise PackageFormatError(f"{path}: the package has no .nuspec file at its root.")
    if len(candidates) > 1:
        names = ", ".join(info.filename for info in candidates)
        raise PackageFormatError(
            f"{path}: the package contains multiple .nuspec files at its root ({names})."
        )
    return candidates[0]


def _read_bounded(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path | str) -> bytes:
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


class NuspecFile(Struct, frozen=True):
    """The root nuspec of a package: its entry name and its bytes (bounded by ``MAX_NUSPEC_BYTES``)."""

    entry_name: str
    data: bytes

    def where(self, path: Path | str) -> str:
        return f"{path}!{self.entry_name}"


def nuspec_in_archive(archive: zipfile.ZipFile, path: Path | str) -> NuspecFile:
    """The one root ``.nuspec`` of an open archive; :class:`PackageFormatError` if absent, duplicated or too large.
    Zip errors while decompressing it propagate (callers turn them into their own message)."""
    info = _nuspec_entry(archive, path)
    return NuspecFile(info.filename, _read_bounded(archive, info, path))


def read_nuspec_file(path: Path) -> NuspecFile:
    """The root nuspec of the package at ``path``; :class:`PackageFormatError` naming the file otherwise."""
    path = Path(path)
    try:
        import zipfile  # imported here: a verification reads the nuspec from its own walk of the zip (issue 12)

        with zipfile.ZipFile(path) as archive:
            return nuspec_in_archive(archive, path)
    except _zip_errors() as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise PackageFormatError(f"{path}: cannot read the package as a zip archive: {exc}") from exc


def read_identity(path: Path) -> PackageIdentity:
    """The identity of the package at ``path`` from its root ``.nuspec``; ``PackageFormatError`` if absent,
    duplicated, oversized or malformed."""
    found = read_nuspec_file(path)
    return parse_identity(found.data, found.where(path))


def read_manifest(path: Path) -> Manifest:
    """The full :class:`Manifest` of the package at ``path`` (see :func:`parse_manifest`)."""
    from nuseal.package.manifest import parse_manifest  # see _MANIFEST_NAMES

    found = read_nuspec_file(path)
    return parse_manifest(found.data, found.where(path))


if TYPE_CHECKING:
    #: What ``zipfile`` lets through on a damaged archive (made on first use, see ``__getattr__``).
    ZIP_ERRORS: tuple[type[Exception], ...]


@cache
def _zip_errors() -> tuple[type[Exception], ...]:
    """``ZIP_ERRORS``, made on first use: ``zipfile`` and ``lzma`` (with ``shutil``, ``bz2``, ...) cost start-up
    time that a verification, which reads the nuspec from its own walk of the zip, does not need (issue 12)."""
    import lzma
    import zipfile

    return (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, zlib.error, lzma.LZMAError,
            NotImplementedError, RuntimeError, ValueError, struct.error)


#: The full manifest's names, defined in :mod:`nuseal.package.manifest` and loaded on first use: verification
#: reads only the identity, and the manifest's records cost start-up time (issue 12).
_MANIFEST_NAMES = frozenset({
    "Manifest", "ManifestDependency", "ManifestDependencyGroup", "ManifestLicense", "ManifestPackageType",
    "ManifestRepository", "parse_manifest",
})  # fmt: skip


def __getattr__(name: str) -> object:
    if name == "ZIP_ERRORS":
        # What ``zipfile`` lets through on a damaged archive besides ``BadZipFile``: corrupt deflate data
        # (``zlib.error``), unsupported methods, versions or flags (``NotImplementedError``), encrypted entries
        # (``RuntimeError``), names that are not valid UTF-8 (``UnicodeDecodeError``), truncated records
        # (``EOFError``, ``struct.error``).
        return _zip_errors()
    if name in _MANIFEST_NAMES:
        from nuseal.package import manifest

        return getattr(manifest, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
