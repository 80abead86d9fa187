"""The full package manifest: every field of a nuspec's ``<metadata>`` that the feed server and ``nuseal install``
read, with NuGet's strict reading (the rules are in :mod:`nuseal.package.nuspec`'s docstring; the hardened parse is
:mod:`nuseal.package.nuspec_xml`).

Kept apart from :mod:`nuseal.package.nuspec` so that verification, which reads only the identity, does not build
these records at start-up (issue 12); ``nuspec`` still exports every name here, loaded on first use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lxml import etree

from nuseal.errors import PackageFormatError
from nuseal.package.nuspec_xml import (
    PackageIdentity,
    child_text,
    children,
    id_and_version,
    local_name,
    parse_metadata,
)
from nuseal.versioning import NuGetVersion, VersionRange

#: Metadata elements that hold one value: giving one twice is an error in NuGet's strict reading.
_SINGLE_VALUED = (
    "id", "version", "title", "authors", "owners", "description", "summary", "releaseNotes", "copyright",
    "language", "tags", "projectUrl", "licenseUrl", "iconUrl", "icon", "readme", "license", "repository",
    "requireLicenseAcceptance", "developmentDependency", "serviceable", "packageTypes", "dependencies",
)
_SPLIT_TAGS = re.compile(r"[\s,;]+")


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

def _boolean(metadata: etree._Element, name: str, where: str) -> bool:
    text = child_text(metadata, name)
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
    containers = children(metadata, "dependencies")
    if not containers:
        return ()
    groups = children(containers[0], "group")
    if groups:
        found = []
        for group in groups:
            framework = (group.get("targetFramework") or "").strip() or None
            label = f"<group targetFramework=\"{framework}\">" if framework else "<group>"
            found.append(ManifestDependencyGroup(
                framework, tuple(_dependency(d, where, label) for d in children(group, "dependency"))))
        return tuple(found)
    flat = tuple(_dependency(d, where, "<dependencies>") for d in children(containers[0], "dependency"))
    return (ManifestDependencyGroup(None, flat),) if flat else ()


def _package_types(metadata: etree._Element, where: str) -> tuple[ManifestPackageType, ...]:
    found = []
    for container in children(metadata, "packageTypes"):
        for element in children(container, "packageType"):
            name = (element.get("name") or "").strip()
            if not name:
                raise PackageFormatError(f"{where}: a <packageType> has no name.")
            found.append(ManifestPackageType(name, (element.get("version") or "").strip() or None))
    return tuple(found)


def _license(metadata: etree._Element) -> ManifestLicense | None:
    elements = children(metadata, "license")
    if not elements:
        return None
    element = elements[0]
    return ManifestLicense((element.get("type") or "").strip().lower(), (element.text or "").strip(),
                           (element.get("version") or "").strip() or None)


def _repository(metadata: etree._Element) -> ManifestRepository | None:
    elements = children(metadata, "repository")
    if not elements:
        return None
    element = elements[0]
    return ManifestRepository(*((element.get(name) or "").strip() for name in ("type", "url", "branch", "commit")))


def parse_manifest(nuspec: bytes, where: str = "nuspec") -> Manifest:
    """Every metadata field of nuspec bytes; :class:`PackageFormatError` naming the field (and ``where``) when the
    nuspec is malformed, declares a DTD, lacks an id or version, or breaks NuGet's strict reading."""
    metadata = parse_metadata(nuspec, where)
    names = [local_name(child) for child in metadata]
    duplicated = sorted({name for name in names if name in _SINGLE_VALUED and names.count(name) > 1})
    if duplicated:
        raise PackageFormatError(f"{where}: the nuspec has duplicate metadata elements: "
                                 f"{', '.join(f'<{n}>' for n in duplicated)}.")
    package_id, original, version = id_and_version(metadata, where)
    min_client = (metadata.get("minClientVersion") or "").strip() or None
    if min_client is not None and NuGetVersion.try_parse(min_client) is None:
        raise PackageFormatError(f"{where}: <metadata minClientVersion=\"{min_client}\"> is not a version.")

    def text(name: str) -> str | None:
        value = child_text(metadata, name)
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
