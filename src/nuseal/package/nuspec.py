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
"""

from __future__ import annotations

import lzma
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from nuseal.errors import PackageFormatError
from nuseal.package.xmlsafe import declares_dtd, hardened_parser, prolog_declares_dtd
from nuseal.versioning import NuGetVersion, VersionRange

# A nuspec is a few KiB; refuse anything absurd before parsing it (zip bombs, hostile packages).
MAX_NUSPEC_BYTES = 4 * 1024 * 1024

_PARSER = hardened_parser()

#: Metadata elements that hold one value: giving one twice is an error in NuGet's strict reading.
_SINGLE_VALUED = (
    "id", "version", "title", "authors", "owners", "description", "summary", "releaseNotes", "copyright",
    "language", "tags", "projectUrl", "licenseUrl", "iconUrl", "icon", "readme", "license", "repository",
    "requireLicenseAcceptance", "developmentDependency", "serviceable", "packageTypes", "dependencies",
)
_SPLIT_TAGS = re.compile(r"[\s,;]+")


@dataclass(frozen=True, slots=True)
class PackageIdentity:
    """A package id as written in the nuspec and its version normalized like NuGet."""

    id: str
    version: str


@dataclass(frozen=True, slots=True)
class ManifestDependency:
    """``<dependency id version include exclude>``; ``range`` is ``VersionRange.ALL`` when no version is given."""

    id: str
    range: VersionRange
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ManifestDependencyGroup:
    """The dependencies for one target framework (``None``: every framework, or the pre-2.0 flat list)."""

    target_framework: str | None
    dependencies: tuple[ManifestDependency, ...]


@dataclass(frozen=True, slots=True)
class ManifestLicense:
    """``<license type="expression|file" version>``: the type as written (lower-cased), the text, the version."""

    type: str
    value: str
    version: str | None = None


@dataclass(frozen=True, slots=True)
class ManifestRepository:
    """``<repository type url branch commit>`` (absent attributes are empty strings, as in NuGet)."""

    type: str = ""
    url: str = ""
    branch: str = ""
    commit: str = ""


@dataclass(frozen=True, slots=True)
class ManifestPackageType:
    """``<packageType name version>``."""

    name: str
    version: str | None = None


@dataclass(frozen=True, slots=True)
class Manifest:
    """Everything a nuspec's ``<metadata>`` says. Text fields are stripped; absent ones are ``None``."""

    id: str
    version: NuGetVersion  # as written, parsed (build metadata kept: ``version.full``)
    original_version: str
    title: str | None = None
    description: str | None = None
    summary: str | None = None
    authors: str | None = None  # NuGet keeps the comma-separated text
    owners: str | None = None
    tags: tuple[str, ...] = ()
    project_url: str | None = None
    license_url: str | None = None
    license: ManifestLicense | None = None
    icon_url: str | None = None
    icon: str | None = None
    readme: str | None = None
    require_license_acceptance: bool = False
    development_dependency: bool = False
    serviceable: bool = False
    min_client_version: str | None = None
    dependency_groups: tuple[ManifestDependencyGroup, ...] = ()
    package_types: tuple[ManifestPackageType, ...] = ()
    release_notes: str | None = None
    language: str | None = None
    copyright: str | None = None
    repository: ManifestRepository | None = None

    @property
    def identity(self) -> PackageIdentity:
        return PackageIdentity(self.id, self.version.normalized)

    @property
    def author_list(self) -> tuple[str, ...]:
        """``authors`` split on commas, as nuget.org lists them."""
        return tuple(a.strip() for a in (self.authors or "").split(",") if a.strip())


# --- parsing ----------------------------------------------------------------------------------------------------


def _local_name(element: etree._Element) -> str:
    return etree.QName(element).localname if isinstance(element.tag, str) else ""


def _children(parent: etree._Element, name: str) -> list[etree._Element]:
    return [child for child in parent if _local_name(child) == name]


def _child_text(parent: etree._Element, name: str) -> str | None:
    for child in parent:
        if _local_name(child) == name:
            return (child.text or "").strip()
    return None


def _prolog_text(data: bytes) -> str:
    """The document as text for the prolog scan (markup before the root is ASCII in every encoding NuGet reads)."""
    head = data
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return head.decode("utf-16", errors="replace")
    return head.decode("utf-8", errors="replace").removeprefix("\ufeff")


def _parse_metadata(nuspec: bytes, where: str) -> etree._Element:
    """The ``<metadata>`` element of hardened-parsed nuspec bytes (no DTD, no entities, no network)."""
    if len(nuspec) > MAX_NUSPEC_BYTES:
        raise PackageFormatError(f"{where}: the nuspec is larger than the {MAX_NUSPEC_BYTES} bytes allowed.")
    dtd = PackageFormatError(f"{where}: the nuspec declares a DTD (<!DOCTYPE>), which NuGet does not allow.")
    if prolog_declares_dtd(_prolog_text(nuspec)):
        raise dtd
    try:
        root = etree.fromstring(nuspec, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise PackageFormatError(f"{where}: the nuspec is not well-formed XML: {exc}") from exc
    if declares_dtd(root):
        raise dtd
    if _local_name(root) != "package":
        raise PackageFormatError(f"{where}: the nuspec root element is <{_local_name(root)}>, not <package>.")
    metadata = next((child for child in root if _local_name(child) == "metadata"), None)
    if metadata is None:
        raise PackageFormatError(f"{where}: the nuspec has no <metadata> element.")
    return metadata


def _id_and_version(metadata: etree._Element, where: str) -> tuple[str, str, NuGetVersion]:
    package_id = _child_text(metadata, "id")
    version = _child_text(metadata, "version")
    if not package_id:
        raise PackageFormatError(f"{where}: the nuspec has no package id (<metadata><id>).")
    if not version:
        raise PackageFormatError(f"{where}: the nuspec has no package version (<metadata><version>).")
    try:
        parsed = NuGetVersion.parse(version)
    except ValueError as exc:
        raise PackageFormatError(f"{where}: <metadata><version>: {exc}.") from exc
    return package_id, version, parsed


def parse_identity(nuspec: bytes, where: str = "nuspec") -> PackageIdentity:
    """Read ``package/metadata/id`` and ``.../version`` (any namespace) from nuspec bytes."""
    package_id, _, version = _id_and_version(_parse_metadata(nuspec, where), where)
    return PackageIdentity(id=package_id, version=version.normalized)


def _boolean(metadata: etree._Element, name: str, where: str) -> bool:
    text = _child_text(metadata, name)
    if text is None or text == "":
        return False
    # .NET's bool.TryParse: "true"/"false" in any case, surrounding white space ignored.
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    raise PackageFormatError(f"{where}: <metadata><{name}> is '{text}', expected true or false.")


def _flags(value: str | None) -> tuple[str, ...]:
    return tuple(flag.strip() for flag in (value or "").split(",") if flag.strip())


def _dependency(element: etree._Element, where: str, group: str) -> ManifestDependency:
    dep_id = (element.get("id") or "").strip()
    if not dep_id:
        raise PackageFormatError(f"{where}: a <dependency> in {group} has no id.")
    text = (element.get("version") or "").strip()
    try:
        version_range = VersionRange.parse(text) if text else VersionRange.ALL
    except ValueError as exc:
        raise PackageFormatError(f"{where}: <dependency id=\"{dep_id}\"> in {group}: {exc}.") from exc
    return ManifestDependency(dep_id, version_range, _flags(element.get("include")), _flags(element.get("exclude")))


def _dependency_groups(metadata: etree._Element, where: str) -> tuple[ManifestDependencyGroup, ...]:
    containers = _children(metadata, "dependencies")
    if not containers:
        return ()
    groups = _children(containers[0], "group")
    if groups:
        found = []
        for group in groups:
            framework = (group.get("targetFramework") or "").strip() or None
            label = f"<group targetFramework=\"{framework}\">" if framework else "<group>"
            found.append(ManifestDependencyGroup(
                framework, tuple(_dependency(d, where, label) for d in _children(group, "dependency"))))
        return tuple(found)
    flat = tuple(_dependency(d, where, "<dependencies>") for d in _children(containers[0], "dependency"))
    return (ManifestDependencyGroup(None, flat),) if flat else ()


def _package_types(metadata: etree._Element, where: str) -> tuple[ManifestPackageType, ...]:
    found = []
    for container in _children(metadata, "packageTypes"):
        for element in _children(container, "packageType"):
            name = (element.get("name") or "").strip()
            if not name:
                raise PackageFormatError(f"{where}: a <packageType> has no name.")
            found.append(ManifestPackageType(name, (element.get("version") or "").strip() or None))
    return tuple(found)


def _license(metadata: etree._Element) -> ManifestLicense | None:
    elements = _children(metadata, "license")
    if not elements:
        return None
    element = elements[0]
    return ManifestLicense((element.get("type") or "").strip().lower(), (element.text or "").strip(),
                           (element.get("version") or "").strip() or None)


def _repository(metadata: etree._Element) -> ManifestRepository | None:
    elements = _children(metadata, "repository")
    if not elements:
        return None
    element = elements[0]
    return ManifestRepository(*((element.get(name) or "").strip() for name in ("type", "url", "branch", "commit")))


def parse_manifest(nuspec: bytes, where: str = "nuspec") -> Manifest:
    """Every metadata field of nuspec bytes; :class:`PackageFormatError` naming the field (and ``where``) when the
    nuspec is malformed, declares a DTD, lacks an id or version, or breaks NuGet's strict reading."""
    metadata = _parse_metadata(nuspec, where)
    names = [_local_name(child) for child in metadata]
    duplicated = sorted({name for name in names if name in _SINGLE_VALUED and names.count(name) > 1})
    if duplicated:
        raise PackageFormatError(f"{where}: the nuspec has duplicate metadata elements: "
                                 f"{', '.join(f'<{n}>' for n in duplicated)}.")
    package_id, original, version = _id_and_version(metadata, where)
    min_client = (metadata.get("minClientVersion") or "").strip() or None
    if min_client is not None and NuGetVersion.try_parse(min_client) is None:
        raise PackageFormatError(f"{where}: <metadata minClientVersion=\"{min_client}\"> is not a version.")

    def text(name: str) -> str | None:
        value = _child_text(metadata, name)
        return value or None

    return Manifest(
        id=package_id, version=version, original_version=original,
        title=text("title"), description=text("description"), summary=text("summary"), authors=text("authors"),
        owners=text("owners"), tags=tuple(t for t in _SPLIT_TAGS.split(text("tags") or "") if t),
        project_url=text("projectUrl"), license_url=text("licenseUrl"), license=_license(metadata),
        icon_url=text("iconUrl"), icon=text("icon"), readme=text("readme"),
        require_license_acceptance=_boolean(metadata, "requireLicenseAcceptance", where),
        development_dependency=_boolean(metadata, "developmentDependency", where),
        serviceable=_boolean(metadata, "serviceable", where), min_client_version=min_client,
        dependency_groups=_dependency_groups(metadata, where), package_types=_package_types(metadata, where),
        release_notes=text("releaseNotes"), language=text("language"), copyright=text("copyright"),
        repository=_repository(metadata),
    )  # fmt: skip


# --- finding the nuspec in a package ----------------------------------------------------------------------------


def _nuspec_entry(archive: zipfile.ZipFile, path: Path | str) -> zipfile.ZipInfo:
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


@dataclass(frozen=True, slots=True)
class NuspecFile:
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
        with zipfile.ZipFile(path) as archive:
            return nuspec_in_archive(archive, path)
    except _ZIP_ERRORS as exc:
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
    found = read_nuspec_file(path)
    return parse_manifest(found.data, found.where(path))


#: What ``zipfile`` lets through on a damaged archive besides ``BadZipFile``: corrupt deflate data (``zlib.error``),
#: unsupported methods, versions or flags (``NotImplementedError``), encrypted entries (``RuntimeError``), names
#: that are not valid UTF-8 (``UnicodeDecodeError``), truncated records (``EOFError``, ``struct.error``).
ZIP_ERRORS: tuple[type[Exception], ...] = (
    zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, zlib.error, lzma.LZMAError, NotImplementedError,
    RuntimeError, ValueError, struct.error,
)
_ZIP_ERRORS = ZIP_ERRORS
