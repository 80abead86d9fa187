"""What the feed serves to NuGet clients: service index, flat container, registrations, search and autocomplete.

Every document is built with the ``nuseal.protocol`` models and rendered once per feed state: a
:class:`FeedReader` keeps rendered bytes (and their ETag) in a per-process cache keyed by the feed-state serial
(:mod:`.feed_state`), which it reads once per request, so a change committed by any process is seen at once by
all of them and the read path is one primary-key query plus a dictionary lookup. Only ``available`` versions
exist here; unlisted ones stay in the flat container and registrations (``listed: false``, published
1900-01-01, nuget.org's signal) and leave search and autocomplete.

Registration hives, as on nuget.org (server.md §E.4, SERVER_DESIGN.md):

======================================  ===========================  =======  ==============================
``@type``                               path                         gzip     versions
======================================  ===========================  =======  ==============================
RegistrationsBaseUrl, /3.0.0-rc, -beta  ``/v3/registration/``        no       SemVer 1 only
RegistrationsBaseUrl/3.4.0              ``/v3/registration-gz/``     yes      SemVer 1 only
RegistrationsBaseUrl/3.6.0              ``/v3/registration-gz-semver2/``  yes  all
======================================  ===========================  =======  ==============================

A version is SemVer 2 when its version is, or a dependency bound is (nuget.org's ``SemVerLevelKey``). Pages
hold at most 64 leaves and are inlined in the index while a package has at most 127 versions in the hive
(nuget.org's ``MaxLeavesPerPage`` and ``MaxInlinedLeafItems``); beyond that each page is its own document.

Search is database-backed (no external engine): the snapshot of every listed, available version is loaded once
per feed state and queried in memory. Ranking: exact id, then id prefix, id word, id substring, title, tags,
owners and authors, description and summary; ties by id. ``field:value`` narrows a term to ``id``,
``packageid`` (exact), ``title``, ``tags``, ``author``, ``owner``, ``description`` or ``summary``; every term
must match. ``owners`` are the feed's account names; ``verified`` is always false and downloads are 0.
"""

from __future__ import annotations

import base64
import enum
import gzip
import hashlib
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from nuseal.protocol.package_content import PackageVersionsIndex
from nuseal.protocol.registration import (
    CatalogEntry,
    Dependency,
    DependencyGroup,
    RegistrationIndex,
    RegistrationLeaf,
    RegistrationLeafItem,
    RegistrationPage,
    RegistrationPageDocument,
)
from nuseal.protocol.search import (
    AutocompleteIds,
    AutocompleteVersions,
    PackageType,
    SearchResponse,
    SearchResult,
    SearchResultVersion,
)
from nuseal.protocol.service_index import ResourceKind, ServiceIndex, ServiceIndexResource
from nuseal.server.db.models import Account, PackageOwner, PackageRegistration, PackageVersion, VersionStatus
from nuseal.server.db.session import Database
from nuseal.server.services import feed_state
from nuseal.versioning import NuGetVersion, VersionRange

#: nuget.org's registration numbers (Catalog2Registration: MaxLeavesPerPage, MaxInlinedLeafItems).
MAX_LEAVES_PER_PAGE: Final = 64
MAX_INLINED_LEAVES: Final = 127
#: nuget.org writes this ``published`` date for unlisted versions.
UNLISTED_PUBLISHED: Final = datetime(1900, 1, 1, tzinfo=UTC)
#: Search and autocomplete paging bounds (nuget.org's: skip up to 3000, take up to 1000).
MAX_SKIP: Final = 3000
MAX_TAKE: Final = 1000
DEFAULT_PACKAGE_TYPE: Final = "Dependency"
_CACHE_ENTRIES: Final = 4096

T = TypeVar("T")


class Hive(enum.Enum):
    """A registration hive: its path under ``/v3/``, whether it is gzipped and whether it has SemVer 2."""

    SEMVER1 = ("registration", False, False)
    SEMVER1_GZ = ("registration-gz", True, False)
    SEMVER2_GZ = ("registration-gz-semver2", True, True)

    def __init__(self, path: str, gzipped: bool, semver2: bool) -> None:
        self.path = path
        self.gzipped = gzipped
        self.semver2 = semver2

    @classmethod
    def for_search(cls, semver2: bool) -> Hive:
        """Where search results point (nuget.org: the SemVer 2 hive for ``semVerLevel=2.0.0``)."""
        return cls.SEMVER2_GZ if semver2 else cls.SEMVER1


#: Which ``@type`` strings point at which hive (the service index lists each with its hive).
HIVE_TYPES: Final[dict[str, Hive]] = {
    "RegistrationsBaseUrl": Hive.SEMVER1,
    "RegistrationsBaseUrl/3.0.0-rc": Hive.SEMVER1,
    "RegistrationsBaseUrl/3.0.0-beta": Hive.SEMVER1,
    "RegistrationsBaseUrl/3.4.0": Hive.SEMVER1_GZ,
    "RegistrationsBaseUrl/3.6.0": Hive.SEMVER2_GZ,
}


@dataclass(frozen=True)
class FeedUrls:
    """Every URL the feed hands out, from its public base URL (no trailing slash)."""

    base: str

    @property
    def service_index(self) -> str:
        return f"{self.base}/v3/index.json"

    @property
    def flat_container(self) -> str:
        return f"{self.base}/v3/flatcontainer/"

    @property
    def publish(self) -> str:
        return f"{self.base}/api/v2/package"

    @property
    def search(self) -> str:
        return f"{self.base}/v3/search"

    @property
    def legacy_gallery(self) -> str:
        """The V2 (OData) feed's root, without a trailing slash (NuGet trims it and appends ``/Search()``)."""
        return f"{self.base}/api/v2"

    @property
    def autocomplete(self) -> str:
        return f"{self.base}/v3/autocomplete"

    def hive(self, hive: Hive) -> str:
        return f"{self.base}/v3/{hive.path}/"

    def registration_index(self, hive: Hive, lower_id: str) -> str:
        return f"{self.hive(hive)}{lower_id}/index.json"

    def registration_leaf(self, hive: Hive, lower_id: str, version: NuGetVersion) -> str:
        return f"{self.hive(hive)}{lower_id}/{version.lower}.json"

    def registration_page(self, hive: Hive, lower_id: str, lower: NuGetVersion, upper: NuGetVersion) -> str:
        return f"{self.hive(hive)}{lower_id}/page/{lower.lower}/{upper.lower}.json"

    def package_content(self, lower_id: str, version: NuGetVersion) -> str:
        return f"{self.flat_container}{lower_id}/{version.lower}/{lower_id}.{version.lower}.nupkg"


@dataclass(frozen=True)
class Rendered:
    """A rendered JSON document: its bytes, a strong ETag, and (lazily) its gzip encoding."""

    body: bytes
    etag: str
    _gzipped: list[bytes] = field(default_factory=list, repr=False, compare=False)

    @classmethod
    def of(cls, body: bytes) -> Rendered:
        return cls(body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')

    @property
    def gzip_body(self) -> bytes:
        if not self._gzipped:  # a benign race: two threads may both compress once
            self._gzipped.append(gzip.compress(self.body, compresslevel=6, mtime=0))
        return self._gzipped[0]

    @property
    def gzip_etag(self) -> str:
        return self.etag[:-1] + '-gz"'


@dataclass(frozen=True)
class BlobRef:
    """The stored bytes an ``available`` version serves, as the database points at them."""

    key: str
    size: int | None
    sha512: str | None

    @property
    def etag(self) -> str:
        """A strong ETag from the stored SHA-512 (128 bits are plenty); nuspecs use their content-addressed key."""
        digest = base64.b64decode(self.sha512).hex() if self.sha512 else hashlib.sha256(self.key.encode()).hexdigest()
        return f'"{digest[:32]}"'


class _SerialCache:
    """Values computed from the database, valid while the feed-state serial stays the same (thread-safe)."""

    def __init__(self, db: Database, max_entries: int = _CACHE_ENTRIES) -> None:
        self._db = db
        self._max = max_entries
        self._lock = threading.Lock()
        self._serial: int | None = None
        self._entries: dict[object, object] = {}

    def get(self, key: object, build: Callable[[], T]) -> T:
        serial = feed_state.current(self._db)  # read before building: a value is never older than its serial
        with self._lock:
            if serial != self._serial:
                self._entries.clear()
                self._serial = serial
            if key in self._entries:
                return self._entries[key]  # type: ignore[return-value]
        value = build()
        with self._lock:
            if self._serial == serial:
                if len(self._entries) >= self._max:
                    self._entries.pop(next(iter(self._entries)))
                self._entries[key] = value
        return value


# --- rows -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionRow:
    """One available version as the documents need it."""

    package_id: str
    version: NuGetVersion  # full (with metadata)
    listed: bool
    semver2: bool
    published: datetime | None
    metadata: dict[str, Any]
    pushed: datetime | None = None
    package_size: int | None = None
    package_sha512: str | None = None  # base64, of the served bytes

    @property
    def prerelease(self) -> bool:
        return self.version.is_prerelease


def _rows(session: Session, where: Sequence[Any]) -> list[tuple[str, VersionRow]]:
    query = (
        select(PackageRegistration.lower_id, PackageRegistration.package_id, PackageVersion.full_version,
               PackageVersion.listed, PackageVersion.is_semver2, PackageVersion.published_at,
               PackageVersion.package_metadata, PackageVersion.pushed_at, PackageVersion.package_size,
               PackageVersion.package_sha512)
        .join(PackageVersion, PackageVersion.registration_id == PackageRegistration.id)
        .where(PackageVersion.status == VersionStatus.AVAILABLE.value, *where)
    )  # fmt: skip
    return [(lower_id, VersionRow(package_id, NuGetVersion.parse(full), listed, semver2, published, metadata or {},
                                  pushed, size, sha512))
            for lower_id, package_id, full, listed, semver2, published, metadata, pushed, size, sha512
            in session.execute(query)]


# --- registration documents -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _RegistrationSet:
    index: Rendered
    pages: dict[tuple[str, str], Rendered]
    leaves: dict[str, Rendered]


def _dependency_groups(hive: Hive, urls: FeedUrls, metadata: dict[str, Any]) -> list[DependencyGroup] | None:
    groups = []
    for group in metadata.get("dependency_groups") or []:
        dependencies = [
            Dependency(type="PackageDependency", id=d["id"], range=VersionRange.parse(d["range"]),
                       registration=urls.registration_index(hive, d["id"].lower()))
            for d in group.get("dependencies") or []
        ]  # fmt: skip
        groups.append(DependencyGroup(type="PackageDependencyGroup", target_framework=group.get("target_framework"),
                                      dependencies=dependencies or None))
    return groups or None


def _catalog_entry(hive: Hive, urls: FeedUrls, lower_id: str, row: VersionRow) -> CatalogEntry:
    m = row.metadata
    leaf = urls.registration_leaf(hive, lower_id, row.version)
    return CatalogEntry(
        url=leaf, type="PackageDetails", authors=m.get("authors") or "",
        dependency_groups=_dependency_groups(hive, urls, m), description=m.get("description") or "",
        icon_url=m.get("icon_url"), id=row.package_id, language=m.get("language"),
        license_expression=m.get("license_expression"), license_url=m.get("license_url"), listed=row.listed,
        min_client_version=m.get("min_client_version"), package_content=urls.package_content(lower_id, row.version),
        project_url=m.get("project_url"), published=_published(row),
        require_license_acceptance=bool(m.get("require_license_acceptance")), summary=m.get("summary"),
        tags=list(m.get("tags") or []), title=m.get("title"), version=row.version,
    )  # fmt: skip


def _published(row: VersionRow) -> datetime:
    if not row.listed:
        return UNLISTED_PUBLISHED
    return row.published or UNLISTED_PUBLISHED


def _registration_set(hive: Hive, urls: FeedUrls, lower_id: str, rows: list[VersionRow]) -> _RegistrationSet | None:
    rows = sorted((r for r in rows if hive.semver2 or not r.semver2), key=lambda r: r.version)
    if not rows:
        return None
    index_url = urls.registration_index(hive, lower_id)
    items = [
        RegistrationLeafItem(url=urls.registration_leaf(hive, lower_id, r.version), type="Package",
                             catalog_entry=_catalog_entry(hive, urls, lower_id, r),
                             package_content=urls.package_content(lower_id, r.version), registration=index_url)
        for r in rows
    ]  # fmt: skip
    chunks = [items[i:i + MAX_LEAVES_PER_PAGE] for i in range(0, len(items), MAX_LEAVES_PER_PAGE)]
    inline = len(items) <= MAX_INLINED_LEAVES
    pages: list[RegistrationPage] = []
    page_docs: dict[tuple[str, str], Rendered] = {}
    for chunk in chunks:
        low, high = chunk[0].catalog_entry.version, chunk[-1].catalog_entry.version
        if inline:
            pages.append(RegistrationPage.inline(f"{index_url}#page/{low.lower}/{high.lower}", index_url, chunk))
        else:
            url = urls.registration_page(hive, lower_id, low, high)
            pages.append(RegistrationPage.linked(url, chunk))
            document = RegistrationPageDocument.of(url, index_url, chunk)
            page_docs[(low.lower, high.lower)] = Rendered.of(document.to_json())
    index = RegistrationIndex.of(index_url, pages).model_copy(
        update={"type": ["catalog:CatalogRoot", "PackageRegistration", "catalog:Permalink"]})
    leaves = {
        r.version.lower: Rendered.of(RegistrationLeaf(
            url=urls.registration_leaf(hive, lower_id, r.version),
            type=["Package", "http://schema.nuget.org/catalog#Permalink"], catalog_entry=None, listed=r.listed,
            package_content=urls.package_content(lower_id, r.version), published=_published(r),
            registration=index_url).to_json())
        for r in rows
    }  # fmt: skip
    return _RegistrationSet(Rendered.of(index.to_json()), page_docs, leaves)


# --- search -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchQuery:
    """Search parameters as NuGet clients send them (``semVerLevel`` already read as a flag)."""

    q: str = ""
    skip: int = 0
    take: int = 20
    prerelease: bool = False
    semver2: bool = False
    package_type: str | None = None


def semver2_level(sem_ver_level: str | None) -> bool:
    """nuget.org's ``SemVerLevelKey.ForSemVerLevel``: SemVer 2 results when the level parses as >= 2.0.0."""
    if not sem_ver_level:
        return False
    level = NuGetVersion.try_parse(sem_ver_level)
    return level is not None and level >= NuGetVersion(2, 0, 0)


@dataclass(frozen=True)
class PackageEntry:
    """One package id in the search snapshot: its owners and its listed, available versions."""

    lower_id: str
    package_id: str
    owners: tuple[str, ...]
    versions: tuple[VersionRow, ...]  # listed only, ascending

    def eligible(self, prerelease: bool, semver2: bool) -> list[VersionRow]:
        return [r for r in self.versions if (prerelease or not r.prerelease) and (semver2 or not r.semver2)]


_FIELD = re.compile(r"^(?P<field>[A-Za-z]+):(?P<value>.+)$")
_FIELDS: Final = {"id": "id", "packageid": "packageid", "title": "title", "tag": "tags", "tags": "tags",
                  "author": "authors", "authors": "authors", "owner": "owners", "owners": "owners",
                  "description": "description", "summary": "summary"}


def _terms(q: str) -> list[tuple[str | None, str]]:
    terms: list[tuple[str | None, str]] = []
    for word in q.split():
        match = _FIELD.match(word)
        if match and match["field"].lower() in _FIELDS:
            terms.append((_FIELDS[match["field"].lower()], match["value"].lower()))
        else:
            terms.append((None, word.lower()))
    return terms


def _texts(package: PackageEntry, latest: VersionRow) -> dict[str, list[str]]:
    m = latest.metadata
    return {
        "id": [package.lower_id], "title": [(m.get("title") or "").lower()],
        "tags": [t.lower() for t in m.get("tags") or []],
        "authors": [a.strip().lower() for a in (m.get("authors") or "").split(",") if a.strip()],
        "owners": [o.lower() for o in package.owners], "description": [(m.get("description") or "").lower()],
        "summary": [(m.get("summary") or "").lower()],
    }  # fmt: skip


def _term_score(field_name: str | None, value: str, lower_id: str, texts: dict[str, list[str]]) -> int:
    if field_name == "packageid":
        return 100 if lower_id == value else 0
    if field_name is not None and field_name != "id":
        return 10 if any(value in text for text in texts[field_name]) else 0
    score = 0
    if lower_id == value:
        score = 100
    elif lower_id.startswith(value):
        score = 40
    elif value in re.split(r"[._-]", lower_id):
        score = 30
    elif value in lower_id:
        score = 20
    if field_name == "id":
        return score
    if not score:
        if any(value in t for t in texts["title"]):
            score = 10
        elif value in texts["tags"]:
            score = 8
        elif any(value in t for t in texts["owners"] + texts["authors"]):
            score = 5
        elif any(value in t for t in texts["description"] + texts["summary"]):
            score = 2
    return score


def _score(package: PackageEntry, latest: VersionRow, terms: list[tuple[str | None, str]]) -> int | None:
    """The package's relevance for every term (``None`` when one term does not match)."""
    texts = _texts(package, latest)
    total = 0
    for field_name, value in terms:
        score = _term_score(field_name, value, package.lower_id, texts)
        if not score:
            return None
        total += score
    return total


def _package_types(row: VersionRow) -> list[str]:
    names = [t["name"] for t in row.metadata.get("package_types") or [] if t.get("name")]
    return names or [DEFAULT_PACKAGE_TYPE]


def _has_type(row: VersionRow, package_type: str | None) -> bool:
    return not package_type or package_type.lower() in (n.lower() for n in _package_types(row))


# --- the reader -------------------------------------------------------------------------------------------------


class FeedReader:
    """Builds and caches the feed's documents for one database and public URL (one per server process)."""

    def __init__(self, db: Database, public_url: str) -> None:
        self.db = db
        self.urls = FeedUrls(public_url.rstrip("/"))
        self._cache = _SerialCache(db)
        self._service_index = Rendered.of(self._build_service_index().to_json())

    # service index ---------------------------------------------------------------------------------------------

    def _build_service_index(self) -> ServiceIndex:
        urls = self.urls
        resources = [ServiceIndexResource(url=urls.flat_container, type=t,
                                          comment="Package versions, .nupkg and .nuspec files")
                     for t in ResourceKind.PACKAGE_BASE_ADDRESS.advertised]
        resources += [ServiceIndexResource(url=urls.publish, type=t,
                                           comment="Push (PUT), unlist (DELETE), relist (POST)")
                      for t in ResourceKind.PACKAGE_PUBLISH.advertised]
        for resource_type in ResourceKind.REGISTRATIONS_BASE_URL.advertised:
            hive = HIVE_TYPES[resource_type]
            semver = "SemVer 2.0.0 and 1.0.0" if hive.semver2 else "SemVer 1.0.0 only"
            gz = ", gzip" if hive.gzipped else ""
            resources.append(ServiceIndexResource(url=urls.hive(hive), type=resource_type,
                                                  comment=f"Package metadata ({semver}{gz})"))
        resources += [ServiceIndexResource(url=urls.search, type=t, comment="Search")
                      for t in ResourceKind.SEARCH_QUERY_SERVICE.advertised]
        resources += [ServiceIndexResource(url=urls.autocomplete, type=t, comment="Package id and version completion")
                      for t in ResourceKind.SEARCH_AUTOCOMPLETE_SERVICE.advertised]
        resources += [ServiceIndexResource(url=urls.legacy_gallery, type=t,
                                           comment="V2 (OData) feed, read-only: Search() for nuget.exe list")
                      for t in ResourceKind.LEGACY_GALLERY.advertised]
        return ServiceIndex(version="3.0.0", resources=resources)

    def service_index(self) -> Rendered:
        return self._service_index

    # flat container --------------------------------------------------------------------------------------------

    def versions_index(self, lower_id: str) -> Rendered | None:
        """``{"versions": [...]}`` (every available version, unlisted ones included), or None for an unknown id."""
        def build() -> Rendered | None:
            with self.db.reading() as session:
                versions = sorted(r.version for _, r in _rows(session, [PackageRegistration.lower_id == lower_id]))
            return Rendered.of(PackageVersionsIndex(versions=versions).to_json()) if versions else None

        return self._cache.get(("versions", lower_id), build)

    def blob(self, lower_id: str, lower_version: str, *, nuspec: bool = False) -> BlobRef | None:
        """Where the bytes of an available version (or its nuspec) are, or None."""
        def build() -> tuple[BlobRef, BlobRef] | None:
            with self.db.reading() as session:
                found = session.execute(
                    select(PackageVersion.package_blob, PackageVersion.package_size, PackageVersion.package_sha512,
                           PackageVersion.nuspec_blob)
                    .join(PackageRegistration, PackageVersion.registration_id == PackageRegistration.id)
                    .where(PackageRegistration.lower_id == lower_id, PackageVersion.lower_version == lower_version,
                           PackageVersion.status == VersionStatus.AVAILABLE.value)
                ).one_or_none()  # fmt: skip
            if found is None or found.package_blob is None or found.nuspec_blob is None:
                return None
            return (BlobRef(found.package_blob, found.package_size, found.package_sha512),
                    BlobRef(found.nuspec_blob, None, None))

        refs = self._cache.get(("blob", lower_id, lower_version), build)
        if refs is None:
            return None
        return refs[1] if nuspec else refs[0]

    # registrations ---------------------------------------------------------------------------------------------

    def _registration(self, hive: Hive, lower_id: str) -> _RegistrationSet | None:
        def build() -> _RegistrationSet | None:
            with self.db.reading() as session:
                rows = [r for _, r in _rows(session, [PackageRegistration.lower_id == lower_id])]
            return _registration_set(hive, self.urls, lower_id, rows)

        return self._cache.get(("registration", hive, lower_id), build)

    def registration_index(self, hive: Hive, lower_id: str) -> Rendered | None:
        found = self._registration(hive, lower_id)
        return found.index if found is not None else None

    def registration_page(self, hive: Hive, lower_id: str, lower: str, upper: str) -> Rendered | None:
        found = self._registration(hive, lower_id)
        return found.pages.get((lower, upper)) if found is not None else None

    def registration_leaf(self, hive: Hive, lower_id: str, lower_version: str) -> Rendered | None:
        found = self._registration(hive, lower_id)
        return found.leaves.get(lower_version) if found is not None else None

    # search and autocomplete -----------------------------------------------------------------------------------

    def _snapshot(self) -> tuple[PackageEntry, ...]:
        def build() -> tuple[PackageEntry, ...]:
            with self.db.reading() as session:
                rows = _rows(session, [PackageVersion.listed.is_(True)])
                owners: dict[str, list[str]] = {}
                for lower_id, name in session.execute(
                    select(PackageRegistration.lower_id, Account.name)
                    .join(PackageOwner, PackageOwner.registration_id == PackageRegistration.id)
                    .join(Account, Account.id == PackageOwner.account_id).order_by(Account.lower_name)
                ):  # fmt: skip
                    owners.setdefault(lower_id, []).append(name)
            grouped: dict[str, list[VersionRow]] = {}
            for lower_id, row in rows:
                grouped.setdefault(lower_id, []).append(row)
            return tuple(
                PackageEntry(lower_id, versions[0].package_id, tuple(owners.get(lower_id, ())),
                         tuple(sorted(versions, key=lambda r: r.version)))
                for lower_id, versions in sorted(grouped.items())
            )  # fmt: skip

        return self._cache.get(("snapshot",), build)

    def cached(self, key: object, build: Callable[[], T]) -> T:
        """``build()``, cached with this reader's documents until the feed state changes (for other renderers of
        the same data, e.g. the V2 feed); ``key`` must not collide with this module's keys (use a tuple starting
        with the caller's name)."""
        return self._cache.get(key, build)

    def search_hits(self, query: SearchQuery) -> list[tuple[int, PackageEntry, list[VersionRow]]]:
        """Every package matching ``query.q`` (paging ignored), most relevant first: ``(score, package, eligible
        versions ascending)``; the V3 search and the V2 ``Search()`` share it."""
        return self._snapshot_matches(query)

    def _snapshot_matches(self, query: SearchQuery) -> list[tuple[int, PackageEntry, list[VersionRow]]]:
        terms = _terms(query.q)
        found = []
        for package in self._snapshot():
            eligible = package.eligible(query.prerelease, query.semver2)
            if not eligible or not _has_type(eligible[-1], query.package_type):
                continue
            score = _score(package, eligible[-1], terms)
            if score is not None:
                found.append((score, package, eligible))
        found.sort(key=lambda hit: (-hit[0], hit[1].lower_id))
        return found

    def search(self, query: SearchQuery) -> Rendered:
        def build() -> Rendered:
            hits = self._snapshot_matches(query)
            hive = Hive.for_search(query.semver2)
            data = [self._result(hive, package, eligible)
                    for _, package, eligible in hits[query.skip:query.skip + query.take]]
            return Rendered.of(SearchResponse(total_hits=len(hits), data=data).to_json())

        return self._cache.get(("search", query), build)

    def _result(self, hive: Hive, package: PackageEntry, eligible: list[VersionRow]) -> SearchResult:
        latest = eligible[-1]
        m = latest.metadata
        index = self.urls.registration_index(hive, package.lower_id)
        return SearchResult(
            url=index, type="Package", registration=index, id=latest.package_id, version=latest.version,
            description=m.get("description") or "", summary=m.get("summary") or "", title=m.get("title") or "",
            icon_url=m.get("icon_url"), license_url=m.get("license_url"), project_url=m.get("project_url"),
            tags=list(m.get("tags") or []),
            authors=[a.strip() for a in (m.get("authors") or "").split(",") if a.strip()],
            owners=list(package.owners), total_downloads=0, verified=False,
            package_types=[PackageType(name=n) for n in _package_types(latest)],
            versions=[SearchResultVersion(url=self.urls.registration_leaf(hive, package.lower_id, r.version),
                                          version=r.version, downloads=0) for r in eligible],
        )  # fmt: skip

    def autocomplete_ids(self, query: SearchQuery) -> Rendered:
        def build() -> Rendered:
            needle = query.q.strip().lower()
            hits = [p for p in self._snapshot()
                    if needle in p.lower_id and (eligible := p.eligible(query.prerelease, query.semver2))
                    and _has_type(eligible[-1], query.package_type)]
            hits.sort(key=lambda p: (not p.lower_id.startswith(needle), p.lower_id))
            ids = [p.package_id for p in hits[query.skip:query.skip + query.take]]
            return Rendered.of(AutocompleteIds(total_hits=len(hits), data=ids).to_json())

        return self._cache.get(("autocomplete", query), build)

    def autocomplete_versions(self, package_id: str, *, prerelease: bool, semver2: bool) -> Rendered:
        def build() -> Rendered:
            lower_id = package_id.strip().lower()
            package = next((p for p in self._snapshot() if p.lower_id == lower_id), None)
            versions = [r.version for r in package.eligible(prerelease, semver2)] if package is not None else []
            return Rendered.of(AutocompleteVersions(data=versions).to_json())

        return self._cache.get(("autocomplete-versions", package_id.lower(), prerelease, semver2), build)
