"""The read-only V2 feed (OData v2, Atom XML) the service index advertises as ``LegacyGallery``: what
``nuget.exe list`` reads (NuGet 5+ uses it for nothing else).

What nuget.exe 5.8 sends (NuGet.Protocol's ``V3FeedListResourceProvider``, ``V2FeedListResource``,
``V2FeedQueryBuilder``, ``LegacyFeedCapabilityResourceV2Feed``, checked in NuGet/NuGet.Client):

- ``GET {LegacyGallery}`` (the service document; only the final URL after redirects matters to it);
- ``GET {base}/$metadata``: the feed's capabilities: ``Search`` among the ``FunctionImport`` names of the
  container holding the ``Packages`` entity set, ``IsAbsoluteLatestVersion`` among the package type's properties;
- ``GET {base}/Search()?$filter=IsLatestVersion&$orderby=Id&searchTerm='T'&targetFramework=''&includePrerelease=false
  &$skip=0&$top=30&semVerLevel=2.0.0``: ``-Prerelease`` sends ``IsAbsoluteLatestVersion`` and ``true``,
  ``-AllVersions`` no ``$filter``; a full page (30) makes it ask for the next one with ``$skip``. String values are
  OData literals (quoted, ``'`` doubled). It reads each entry's ``m:properties/d:Id``, ``d:Version``, ``d:Published``
  (a year before 1902 means unlisted), ``content/@src``, and prints ``Id Version``.

Served here, over the same snapshot and ranking as the V3 search (:mod:`.feed_documents`), cached per feed state:
the service document, ``$metadata``, ``Search()`` and ``Packages()`` (the same filters without a search term), and
one entry at ``Packages(Id='..',Version='..')``. Only listed, available versions appear (as in nuget.org's
``Search()``). Any other OData query option, or a ``$filter`` other than ``IsLatestVersion`` /
``IsAbsoluteLatestVersion``, is refused (400) rather than ignored. Download links point at the flat container.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Final
from urllib.parse import quote

from lxml import etree

from nuseal.server.services.errors import InvalidInputError
from nuseal.server.services.feed_documents import (
    UNLISTED_PUBLISHED,
    FeedReader,
    PackageEntry,
    Rendered,
    SearchQuery,
    VersionRow,
)
from nuseal.versioning import NuGetVersion

ATOM: Final = "http://www.w3.org/2005/Atom"
APP: Final = "http://www.w3.org/2007/app"
DATA: Final = "http://schemas.microsoft.com/ado/2007/08/dataservices"
META: Final = "http://schemas.microsoft.com/ado/2007/08/dataservices/metadata"
EDMX: Final = "http://schemas.microsoft.com/ado/2007/06/edmx"
EDM: Final = "http://schemas.microsoft.com/ado/2006/04/edm"
XML_NS: Final = "http://www.w3.org/XML/1998/namespace"
ENTITY_TYPE: Final = "NuGetGallery.OData.V2FeedPackage"
#: Entries per page at most (nuget.org's V2 feed pages by 100 too); more is answered with a ``next`` link.
MAX_TOP: Final = 100
ATOM_TYPE: Final = "application/atom+xml;type=feed;charset=utf-8"
ENTRY_TYPE: Final = "application/atom+xml;type=entry;charset=utf-8"
XML_TYPE: Final = "application/xml;charset=utf-8"
#: XML 1.0 forbids most control characters even as references: they are dropped from metadata texts.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")

#: The package properties declared in ``$metadata`` (name, EDM type, nullable) and written in every entry.
PROPERTIES: Final[tuple[tuple[str, str, bool], ...]] = (
    ("Id", "Edm.String", False),
    ("Version", "Edm.String", False),
    ("NormalizedVersion", "Edm.String", True),
    ("Authors", "Edm.String", True),
    ("Created", "Edm.DateTime", False),
    ("Dependencies", "Edm.String", True),
    ("Description", "Edm.String", True),
    ("DownloadCount", "Edm.Int32", False),
    ("IconUrl", "Edm.String", True),
    ("IsLatestVersion", "Edm.Boolean", False),
    ("IsAbsoluteLatestVersion", "Edm.Boolean", False),
    ("IsPrerelease", "Edm.Boolean", False),
    ("Language", "Edm.String", True),
    ("LastUpdated", "Edm.DateTime", False),
    ("Published", "Edm.DateTime", False),
    ("PackageHash", "Edm.String", True),
    ("PackageHashAlgorithm", "Edm.String", True),
    ("PackageSize", "Edm.Int64", False),
    ("ProjectUrl", "Edm.String", True),
    ("ReleaseNotes", "Edm.String", True),
    ("RequireLicenseAcceptance", "Edm.Boolean", False),
    ("Summary", "Edm.String", True),
    ("Tags", "Edm.String", True),
    ("Title", "Edm.String", True),
    ("VersionDownloadCount", "Edm.Int32", False),
    ("MinClientVersion", "Edm.String", True),
    ("LicenseUrl", "Edm.String", True),
    ("LicenseNames", "Edm.String", True),
    ("Listed", "Edm.Boolean", False),
)


class LatestFilter(enum.Enum):
    """The ``$filter`` values NuGet clients send: none (every version), the latest stable, the latest of all."""

    NONE = ""
    LATEST = "IsLatestVersion"
    ABSOLUTE_LATEST = "IsAbsoluteLatestVersion"


@dataclass(frozen=True)
class V2Query:
    """A ``Search()`` or ``Packages()`` request, parsed (``search_term`` None for ``Packages()``)."""

    function: str  # "Search" or "Packages"
    search_term: str | None = None
    target_framework: str = ""
    prerelease: bool = False
    latest: LatestFilter = LatestFilter.NONE
    order_by_id: bool = False
    skip: int = 0
    top: int = MAX_TOP
    semver2: bool = False


def odata_literal(text: str | None, name: str) -> str:
    """The value of an OData string literal (``'it''s'`` → ``it's``); a bare word is taken as it is."""
    if text is None:
        return ""
    value = text.strip()
    if value.startswith("'"):
        if len(value) < 2 or not value.endswith("'") or "'" in value[1:-1].replace("''", ""):
            raise InvalidInputError(f"{name}: {text!r} is not an OData string literal ('...', quotes doubled)")
        return value[1:-1].replace("''", "'")
    return value


def parse_filter(text: str | None) -> LatestFilter:
    """``IsLatestVersion`` or ``IsAbsoluteLatestVersion`` (also ``... eq true``); anything else is refused."""
    if text is None or not text.strip():
        return LatestFilter.NONE
    normalized = " ".join(text.split())
    for option in (LatestFilter.LATEST, LatestFilter.ABSOLUTE_LATEST):
        if normalized in (option.value, f"{option.value} eq true"):
            return option
    raise InvalidInputError(f"$filter {text!r} is not supported by this feed: use IsLatestVersion or "
                            "IsAbsoluteLatestVersion (or the V3 search)")


def parse_order_by(text: str | None) -> bool:
    """True for ``Id`` (also ``Id asc``); None means relevance; anything else is refused."""
    if text is None or not text.strip():
        return False
    if " ".join(text.split()) in ("Id", "Id asc"):
        return True
    raise InvalidInputError(f"$orderby {text!r} is not supported by this feed: use Id")


def _xml_text(value: object) -> str:
    return _NOT_XML.sub("", str(value))


def _edm_datetime(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _serialize(root: etree._Element) -> Rendered:
    return Rendered.of(etree.tostring(root, xml_declaration=True, encoding="utf-8", standalone=True))


@dataclass(frozen=True)
class _Hit:
    package: PackageEntry
    row: VersionRow
    latest: bool  # the highest listed stable version (within the query's SemVer level)
    absolute_latest: bool  # the highest listed version


class LegacyFeed:
    """The V2 documents for one :class:`FeedReader` (same snapshot, same cache, same public URL)."""

    def __init__(self, reader: FeedReader) -> None:
        self.reader = reader
        self.base = reader.urls.legacy_gallery
        self._service = self._build_service_document()
        self._metadata = self._build_metadata()

    # fixed documents --------------------------------------------------------------------------------------------

    def service_document(self) -> Rendered:
        return self._service

    def metadata(self) -> Rendered:
        return self._metadata

    def _build_service_document(self) -> Rendered:
        root = etree.Element(f"{{{APP}}}service", nsmap={None: APP, "atom": ATOM})
        root.set(f"{{{XML_NS}}}base", self.base + "/")
        workspace = etree.SubElement(root, f"{{{APP}}}workspace")
        etree.SubElement(workspace, f"{{{ATOM}}}title").text = "Default"
        collection = etree.SubElement(workspace, f"{{{APP}}}collection", href="Packages")
        etree.SubElement(collection, f"{{{ATOM}}}title").text = "Packages"
        return _serialize(root)

    def _build_metadata(self) -> Rendered:
        root = etree.Element(f"{{{EDMX}}}Edmx", nsmap={"edmx": EDMX}, Version="1.0")
        services = etree.SubElement(root, f"{{{EDMX}}}DataServices", nsmap={"m": META})
        services.set(f"{{{META}}}DataServiceVersion", "2.0")
        types = etree.SubElement(services, f"{{{EDM}}}Schema", nsmap={None: EDM}, Namespace="NuGetGallery.OData")
        entity = etree.SubElement(types, f"{{{EDM}}}EntityType", Name="V2FeedPackage")
        entity.set(f"{{{META}}}HasStream", "true")
        key = etree.SubElement(entity, f"{{{EDM}}}Key")
        for name in ("Id", "Version"):
            etree.SubElement(key, f"{{{EDM}}}PropertyRef", Name=name)
        for name, edm_type, nullable in PROPERTIES:
            etree.SubElement(entity, f"{{{EDM}}}Property", Name=name, Type=edm_type,
                             Nullable="true" if nullable else "false")  # fmt: skip
        schema = etree.SubElement(services, f"{{{EDM}}}Schema", nsmap={None: EDM}, Namespace="NuGetGallery")
        container = etree.SubElement(schema, f"{{{EDM}}}EntityContainer", Name="V2FeedContext")
        container.set(f"{{{META}}}IsDefaultEntityContainer", "true")
        etree.SubElement(container, f"{{{EDM}}}EntitySet", Name="Packages", EntityType=ENTITY_TYPE)
        search = etree.SubElement(container, f"{{{EDM}}}FunctionImport", Name="Search",
                                  ReturnType=f"Collection({ENTITY_TYPE})", EntitySet="Packages")  # fmt: skip
        search.set(f"{{{META}}}HttpMethod", "GET")
        for name, edm_type in (("searchTerm", "Edm.String"), ("targetFramework", "Edm.String"),
                               ("includePrerelease", "Edm.Boolean")):  # fmt: skip
            etree.SubElement(search, f"{{{EDM}}}Parameter", Name=name, Type=edm_type)
        return _serialize(root)

    # queries ----------------------------------------------------------------------------------------------------

    def query(self, query: V2Query) -> Rendered:
        """The Atom feed answering a ``Search()`` or ``Packages()`` request (cached per feed state)."""
        return self.reader.cached(("v2-feed", query), lambda: self._render_feed(query))

    def entry(self, package_id: str, version: str) -> Rendered | None:
        """The Atom entry of one listed version, or None."""
        parsed = NuGetVersion.try_parse(version)
        if parsed is None:
            return None

        def build() -> Rendered | None:
            hits = self._hits(V2Query("Packages", prerelease=True, semver2=True))
            found = next((h for h in hits if h.package.lower_id == package_id.lower() and h.row.version == parsed),
                         None)  # fmt: skip
            if found is None:
                return None
            root = self._entry(found, nsmap={None: ATOM, "d": DATA, "m": META})
            root.set(f"{{{XML_NS}}}base", self.base + "/")
            return _serialize(root)

        return self.reader.cached(("v2-entry", package_id.lower(), parsed.lower), build)

    def _hits(self, query: V2Query) -> list[_Hit]:
        search = SearchQuery(q=query.search_term or "", prerelease=query.prerelease, semver2=query.semver2)
        hits: list[_Hit] = []
        for _score, package, eligible in self.reader.search_hits(search):
            in_level = package.eligible(True, query.semver2)
            stable = [r for r in in_level if not r.prerelease]
            latest = stable[-1] if stable else None
            absolute = in_level[-1] if in_level else None
            if query.latest is LatestFilter.LATEST:
                chosen = [latest] if latest is not None else []
            elif query.latest is LatestFilter.ABSOLUTE_LATEST:
                chosen = [absolute] if absolute is not None and (query.prerelease or not absolute.prerelease) else []
            else:
                chosen = list(eligible)
            hits += [_Hit(package, row, row is latest, row is absolute) for row in chosen]
        if query.order_by_id:
            hits.sort(key=lambda h: (h.package.lower_id, h.row.version))
        return hits

    def _render_feed(self, query: V2Query) -> Rendered:
        hits = self._hits(query)
        page = hits[query.skip:query.skip + query.top]
        root = etree.Element(f"{{{ATOM}}}feed", nsmap={None: ATOM, "d": DATA, "m": META})
        root.set(f"{{{XML_NS}}}base", self.base + "/")
        etree.SubElement(root, f"{{{ATOM}}}id").text = f"{self.base}/{query.function}"
        etree.SubElement(root, f"{{{ATOM}}}title", type="text").text = query.function
        etree.SubElement(root, f"{{{ATOM}}}updated").text = _edm_datetime(self._updated(hits))
        etree.SubElement(root, f"{{{ATOM}}}link", rel="self", title=query.function, href=query.function)
        for hit in page:
            root.append(self._entry(hit))
        if query.skip + query.top < len(hits):
            etree.SubElement(root, f"{{{ATOM}}}link", rel="next",
                             href=self.next_url(replace(query, skip=query.skip + query.top)))  # fmt: skip
        return _serialize(root)

    @staticmethod
    def _updated(hits: Sequence[_Hit]) -> datetime:
        moments = [h.row.published or h.row.pushed for h in hits]
        return max((m for m in moments if m is not None), default=UNLISTED_PUBLISHED)

    def next_url(self, query: V2Query) -> str:
        """The absolute URL of ``query`` (the ``next`` link), spelled as NuGet spells its own requests."""
        params: list[tuple[str, str]] = []
        if query.latest is not LatestFilter.NONE:
            params.append(("$filter", query.latest.value))
        if query.order_by_id:
            params.append(("$orderby", "Id"))
        if query.function == "Search":
            params += [("searchTerm", _literal(query.search_term or "")),
                       ("targetFramework", _literal(query.target_framework)),
                       ("includePrerelease", "true" if query.prerelease else "false")]  # fmt: skip
        params += [("$skip", str(query.skip)), ("$top", str(query.top))]
        if query.semver2:
            params.append(("semVerLevel", "2.0.0"))
        encoded = "&".join(f"{name}={quote(value, safe=chr(39) + '$')}" for name, value in params)
        return f"{self.base}/{query.function}()?{encoded}"

    # one entry --------------------------------------------------------------------------------------------------

    def _entry(self, hit: _Hit, nsmap: dict[str | None, str] | None = None) -> etree._Element:
        package, row = hit.package, hit.row
        m = row.metadata
        key = f"Packages(Id={_literal(row.package_id)},Version={_literal(row.version.normalized)})"
        urls = self.reader.urls
        entry = etree.Element(f"{{{ATOM}}}entry", nsmap=nsmap)
        etree.SubElement(entry, f"{{{ATOM}}}id").text = f"{self.base}/{key}"
        etree.SubElement(entry, f"{{{ATOM}}}category", term=ENTITY_TYPE,
                         scheme="http://schemas.microsoft.com/ado/2007/08/dataservices/scheme")  # fmt: skip
        etree.SubElement(entry, f"{{{ATOM}}}link", rel="edit", title="V2FeedPackage", href=key)
        etree.SubElement(entry, f"{{{ATOM}}}title", type="text").text = row.package_id
        etree.SubElement(entry, f"{{{ATOM}}}summary", type="text").text = _xml_text(m.get("summary") or "")
        published = row.published if row.listed and row.published is not None else UNLISTED_PUBLISHED
        updated = row.published or row.pushed or UNLISTED_PUBLISHED
        etree.SubElement(entry, f"{{{ATOM}}}updated").text = _edm_datetime(updated)
        author = etree.SubElement(entry, f"{{{ATOM}}}author")
        etree.SubElement(author, f"{{{ATOM}}}name").text = _xml_text(m.get("authors") or "")
        content_url = urls.package_content(package.lower_id, row.version)
        etree.SubElement(entry, f"{{{ATOM}}}link", rel="edit-media", title="V2FeedPackage", href=f"{key}/$value")
        etree.SubElement(entry, f"{{{ATOM}}}content", type="application/zip", src=content_url)
        properties = etree.SubElement(entry, f"{{{META}}}properties")
        values: dict[str, object | None] = {
            "Id": row.package_id,
            "Version": row.version.full,
            "NormalizedVersion": row.version.normalized,
            "Authors": m.get("authors") or "",
            "Created": row.pushed or updated,
            "Dependencies": _dependencies(m.get("dependency_groups") or []),
            "Description": m.get("description") or "",
            "DownloadCount": 0,
            "IconUrl": m.get("icon_url"),
            "IsLatestVersion": hit.latest,
            "IsAbsoluteLatestVersion": hit.absolute_latest,
            "IsPrerelease": row.prerelease,
            "Language": m.get("language"),
            "LastUpdated": updated,
            "Published": published,
            "PackageHash": row.package_sha512,
            "PackageHashAlgorithm": "SHA512" if row.package_sha512 else None,
            "PackageSize": row.package_size or 0,
            "ProjectUrl": m.get("project_url"),
            "ReleaseNotes": m.get("release_notes"),
            "RequireLicenseAcceptance": bool(m.get("require_license_acceptance")),
            "Summary": m.get("summary"),
            "Tags": " ".join(m.get("tags") or []) or None,
            "Title": m.get("title"),
            "VersionDownloadCount": 0,
            "MinClientVersion": m.get("min_client_version"),
            "LicenseUrl": m.get("license_url"),
            "LicenseNames": m.get("license_expression"),
            "Listed": row.listed,
        }
        for name, edm_type, _nullable in PROPERTIES:
            element = etree.SubElement(properties, f"{{{DATA}}}{name}")
            value = values[name]
            if edm_type != "Edm.String":
                element.set(f"{{{META}}}type", edm_type)
            if value is None:
                element.set(f"{{{META}}}null", "true")
            elif isinstance(value, bool):
                element.text = "true" if value else "false"
            elif isinstance(value, datetime):
                element.text = _edm_datetime(value)
            else:
                element.text = _xml_text(value)
        return entry


def _dependencies(groups: list[dict[str, object]]) -> str:
    """NuGet's V2 dependency string: ``id:range:framework`` joined by ``|``; a framework without dependencies is
    ``::framework``."""
    parts: list[str] = []
    for group in groups:
        framework = str(group.get("target_framework") or "")
        dependencies = group.get("dependencies") or []
        assert isinstance(dependencies, list)
        if not dependencies:
            parts.append(f"::{framework}")
        for dependency in dependencies:
            parts.append(f"{dependency['id']}:{dependency.get('range') or ''}:{framework}")
    return "|".join(parts)
