"""The hardened parse of nuspec bytes that the identity reader (:mod:`nuseal.package.nuspec`) and the full-manifest
reader (:mod:`nuseal.package.manifest`) share: size bound, no DTD, no entities, no network, the ``<metadata>``
element, the id and version. The rules are described in :mod:`nuseal.package.nuspec`."""

from __future__ import annotations

from lxml import etree
from msgspec import Struct

from nuseal.errors import PackageFormatError
from nuseal.package.xmlsafe import declares_dtd, hardened_parser, prolog_declares_dtd
from nuseal.versioning import NuGetVersion

# A nuspec is a few KiB; refuse anything absurd before parsing it (zip bombs, hostile packages).
MAX_NUSPEC_BYTES = 4 * 1024 * 1024

_PARSER = hardened_parser()


class PackageIdentity(Struct, frozen=True):
    """A package id as written in the nuspec and its version normalized like NuGet."""

    id: str
    version: str


# --- parsing ----------------------------------------------------------------------------------------------------


def local_name(element: etree._Element) -> str:
    return etree.QName(element).localname if isinstance(element.tag, str) else ""


def children(parent: etree._Element, name: str) -> list[etree._Element]:
    return [child for child in parent if local_name(child) == name]


def child_text(parent: etree._Element, name: str) -> str | None:
    for child in parent:
        if local_name(child) == name:
            return (child.text or "").strip()
    return None


def _prolog_text(data: bytes) -> str:
    """The document as text for the prolog scan (markup before the root is ASCII in every encoding NuGet reads)."""
    head = data
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return head.decode("utf-16", errors="replace")
    return head.decode("utf-8", errors="replace").removeprefix("\ufeff")


def parse_metadata(nuspec: bytes, where: str) -> etree._Element:
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
    if local_name(root) != "package":
        raise PackageFormatError(f"{where}: the nuspec root element is <{local_name(root)}>, not <package>.")
    metadata = next((child for child in root if local_name(child) == "metadata"), None)
    if metadata is None:
        raise PackageFormatError(f"{where}: the nuspec has no <metadata> element.")
    return metadata


def id_and_version(metadata: etree._Element, where: str) -> tuple[str, str, NuGetVersion]:
    package_id = child_text(metadata, "id")
    version = child_text(metadata, "version")
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
    package_id, _, version = id_and_version(parse_metadata(nuspec, where), where)
    return PackageIdentity(id=package_id, version=version.normalized)
