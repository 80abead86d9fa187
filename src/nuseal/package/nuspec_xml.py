"""The hardened parse of nuspec bytes that the identity reader (:mod:`nuseal.package.nuspec`) and the full-manifest
reader (:mod:`nuseal.package.manifest`) share: size bound, no DTD, no entities, no network, the ``<metadata>``
element, the id and version. The rules are described in :mod:`nuseal.package.nuspec`.

Two readers, one set of rules. The full manifest and every error are lxml's (:func:`parse_metadata`). The identity
that every verification shows is first read with the standard library's expat (:func:`_expat_identity`, a real XML
parser in C that is loaded with Python anyway), which saves importing lxml on the verify path (~50 M instructions,
issue 12). The expat reader answers only for documents it reads exactly as the lxml reader does: it hands anything
else back (a DTD, an encoding other than UTF-8/UTF-16/ASCII, a non-1.0 XML declaration, deep nesting, long names,
an id or version holding markup other than comments, a namespace or well-formedness error, a missing or empty id
or version, a version that does not parse), and then the lxml reader decides and words the error, so errors and
codes are unchanged. ``tests/unit/package/test_nuspec_readers.py`` runs both readers over tricky documents.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING
from xml.parsers import expat

from nuseal.errors import PackageFormatError
from nuseal.package.xmlsafe import declares_dtd, hardened_parser, prolog_declares_dtd
from nuseal.record import Struct
from nuseal.versioning import NuGetVersion

if TYPE_CHECKING:
    from lxml import etree

# A nuspec is a few KiB; refuse anything absurd before parsing it (zip bombs, hostile packages).
MAX_NUSPEC_BYTES = 4 * 1024 * 1024


@functools.cache
def _parser() -> etree.XMLParser:
    return hardened_parser()


class PackageIdentity(Struct, frozen=True):
    """A package id as written in the nuspec and its version normalized like NuGet."""

    id: str
    version: str


# --- parsing ----------------------------------------------------------------------------------------------------


def local_name(element: etree._Element) -> str:
    from lxml import etree

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
    from lxml import etree

    try:
        root = etree.fromstring(nuspec, _parser())
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
    if len(nuspec) <= MAX_NUSPEC_BYTES and not prolog_declares_dtd(_prolog_text(nuspec)):
        found = _expat_identity(nuspec)
        if found is not None:
            return found
    return parse_identity_lxml(nuspec, where)


def parse_identity_lxml(nuspec: bytes, where: str = "nuspec") -> PackageIdentity:
    """:func:`parse_identity` with lxml alone: the reference reader, which words every error."""
    package_id, _, version = id_and_version(parse_metadata(nuspec, where), where)
    return PackageIdentity(id=package_id, version=version.normalized)


# --- the expat reader of the identity ---------------------------------------------------------------------------

#: Encodings both parsers decode the same way (expat natively); anything else is left to lxml.
_EXPAT_ENCODINGS = frozenset({"utf-8", "utf8", "utf-16", "utf16", "us-ascii", "ascii"})
#: Well below libxml2's limits without ``huge_tree`` (depth 256, names of 50,000 characters): deeper or longer is
#: left to lxml, which refuses what exceeds its own limits.
_EXPAT_MAX_DEPTH = 128
_EXPAT_MAX_NAME = 1000
#: Namespace names the expat reader takes: libxml2 refuses a namespace name that is not a valid URI (a space, a
#: non-ASCII letter, a stray ``%`` or ``#``...) and expat does not check, so only the plain forms nuspecs use
#: (``http(s)://host/path``, ``urn:...``, none) are read here; any other is left to lxml.
_PLAIN_NAMESPACE = re.compile(r"(?:https?://[A-Za-z0-9.-]+(?:/[A-Za-z0-9._~/-]*)?|urn:[A-Za-z0-9._~:-]+)?")


class _HandBack(Exception):
    """The expat reader cannot vouch for reading the document as lxml does: lxml decides."""


class _IdentityScan:
    """Expat callbacks that find ``package/metadata/{id,version}`` as :func:`parse_metadata` and :func:`child_text`
    do: matched by local name in any namespace, the first ``metadata`` child of the root, the first ``id`` and the
    first ``version`` child of that, and each one's text up to its first child element (comments and processing
    instructions are dropped by lxml's parser, so the text around them is one text)."""

    def __init__(self) -> None:
        self.depth = 0
        self.root_ok = False
        self.metadata_seen = False
        self.in_metadata = False
        self.values: dict[str, str] = {}
        self.capturing: str | None = None  # "id" or "version" while inside the first such element, before a child
        self.parts: list[str] = []

    def start(self, name: str, attributes: dict[str, str]) -> None:
        local = name.rpartition(" ")[2]  # expat names are "uri local" (namespace_separator " ") or "local"
        if len(name) > _EXPAT_MAX_NAME or any(len(key) > _EXPAT_MAX_NAME for key in attributes):
            raise _HandBack
        self.depth += 1
        if self.depth > _EXPAT_MAX_DEPTH:
            raise _HandBack
        if self.capturing is not None:  # a child element inside <id>/<version>: lxml's .text stops here
            raise _HandBack
        if self.depth == 1:
            self.root_ok = local == "package"
        elif self.depth == 2 and self.root_ok and local == "metadata" and not self.metadata_seen:
            self.metadata_seen = self.in_metadata = True
        elif self.depth == 3 and self.in_metadata and local in ("id", "version") and local not in self.values:
            self.capturing = local
            self.parts = []

    def end(self, name: str) -> None:
        if self.capturing is not None and self.depth == 3:
            self.values[self.capturing] = "".join(self.parts).strip()
            self.capturing = None
        elif self.depth == 2 and self.in_metadata:
            self.in_metadata = False
        self.depth -= 1

    def text(self, data: str) -> None:
        if self.capturing is not None:
            self.parts.append(data)

    @staticmethod
    def declaration(version: str | None, encoding: str | None, standalone: int) -> None:
        if version != "1.0" or (encoding is not None and encoding.lower() not in _EXPAT_ENCODINGS):
            raise _HandBack

    @staticmethod
    def namespace(prefix: str | None, uri: str | None) -> None:
        if uri is not None and _PLAIN_NAMESPACE.fullmatch(uri) is None:
            raise _HandBack

    @staticmethod
    def refuse(*_: object) -> None:
        raise _HandBack

    @staticmethod
    def refuse_external(*_: object) -> int:
        raise _HandBack


def _expat_identity(nuspec: bytes) -> PackageIdentity | None:
    """The identity read with expat, or ``None`` when lxml must decide (see the module docstring). The caller has
    checked the size and the prolog (no DTD) already."""
    # expat guesses an encoding from the first bytes the same way libxml2 does for UTF-8/UTF-16 (with or without a
    # byte order mark); documents in other encodings name them in their declaration, which is checked above.
    scan = _IdentityScan()
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.buffer_text = True
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartElementHandler = scan.start
    parser.EndElementHandler = scan.end
    parser.CharacterDataHandler = scan.text
    parser.XmlDeclHandler = scan.declaration
    parser.StartNamespaceDeclHandler = scan.namespace
    # No DTD and no entity declarations: lxml refuses these documents and words why.
    parser.StartDoctypeDeclHandler = scan.refuse
    parser.EntityDeclHandler = scan.refuse
    parser.ExternalEntityRefHandler = scan.refuse_external
    parser.SkippedEntityHandler = scan.refuse
    try:
        parser.Parse(nuspec, True)
    except (_HandBack, expat.ExpatError, ValueError, UnicodeError):
        return None
    package_id, version = scan.values.get("id"), scan.values.get("version")
    if not (scan.root_ok and scan.metadata_seen and package_id and version):
        return None
    try:
        parsed = NuGetVersion.parse(version)
    except ValueError:
        return None
    return PackageIdentity(id=package_id, version=parsed.normalized)
