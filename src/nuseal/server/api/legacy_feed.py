"""``LegacyGallery``: the read-only V2 (OData) feed under ``/api/v2`` that ``nuget.exe list`` reads (the service
document, ``$metadata``, ``Search()``, ``Packages()`` and one package entry). The documents and what is accepted
are described in :mod:`nuseal.server.services.legacy_feed`."""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Depends, Query, Request, Response

from nuseal.server.api.deps import legacy_feed
from nuseal.server.api.responses import document_response
from nuseal.server.api.routing import NOT_FOUND, UNSUPPORTED_QUERY, get_and_head
from nuseal.server.services.errors import InvalidInputError, NotFoundError
from nuseal.server.services.feed_documents import semver2_level
from nuseal.server.services.legacy_feed import (
    ATOM_TYPE,
    ENTRY_TYPE,
    MAX_TOP,
    XML_TYPE,
    LegacyFeed,
    V2Query,
    odata_literal,
    parse_filter,
    parse_order_by,
)

router = APIRouter(prefix="/api/v2", tags=["NuGet V2 (read-only)"])

#: The query options the feed understands; any other OData system option (``$select``, ``$expand``, ...) is a 400.
KNOWN: Final = frozenset({"$filter", "$orderby", "$skip", "$top", "searchTerm", "targetFramework",
                          "includePrerelease", "semVerLevel", "id"})  # fmt: skip

Legacy = Annotated[LegacyFeed, Depends(legacy_feed)]
# The grammars below are documented as patterns (so clients and fuzzers know them) but not enforced by FastAPI:
# the services refuse anything else with a 400 naming the option and what the feed supports.
Filter = Annotated[str | None, Query(
    alias="$filter", max_length=256, description="IsLatestVersion or IsAbsoluteLatestVersion",
    json_schema_extra={"pattern": "^ *((IsLatestVersion|IsAbsoluteLatestVersion)( +eq +true)?)? *$"})]
OrderBy = Annotated[str | None, Query(alias="$orderby", max_length=64, description="Id (default: relevance)",
                                      json_schema_extra={"pattern": "^ *(Id( +asc)?)? *$"})]
#: An OData string literal ('...' with quotes doubled) or a bare word (one that does not start with a quote).
LITERAL_PATTERN: Final = r"^\s*([^'\s][\s\S]*)?$|^\s*'([^']|'')*'\s*$"
Skip = Annotated[int, Query(alias="$skip", ge=0, le=1_000_000, description="Entries to skip")]
Top = Annotated[int, Query(alias="$top", ge=0, le=1_000_000, description=f"Entries to return (at most {MAX_TOP})")]
SemVerLevel = Annotated[str | None, Query(alias="semVerLevel", max_length=64,
                                          description="2.0.0 includes SemVer 2.0.0 versions")]


def _check_options(request: Request) -> None:
    unknown = sorted({name for name in request.query_params if name.startswith("$") and name not in KNOWN})
    if unknown:
        raise InvalidInputError(f"query option {', '.join(unknown)} is not supported by this feed")


def get_service_document(request: Request, legacy: Legacy) -> Response:
    """The OData service document (one collection: Packages)."""
    return document_response(request, legacy.service_document(), media_type=XML_TYPE)


def get_metadata(request: Request, legacy: Legacy) -> Response:
    """The OData ``$metadata`` document: the package entity type and the Search function."""
    return document_response(request, legacy.metadata(), media_type=XML_TYPE)


def get_search(request: Request, legacy: Legacy,
               search_term: Annotated[str | None, Query(alias="searchTerm", max_length=1024,
                                                        json_schema_extra={"pattern": LITERAL_PATTERN},
                                                        description="OData string literal, e.g. 'contoso'")] = None,
               target_framework: Annotated[str | None, Query(alias="targetFramework", max_length=256,
                                                             json_schema_extra={"pattern": LITERAL_PATTERN},
                                                             description="Ignored (every framework)")] = None,
               include_prerelease: Annotated[bool, Query(alias="includePrerelease")] = False,
               filter: Filter = None, order_by: OrderBy = None, skip: Skip = 0, top: Top = MAX_TOP,
               sem_ver_level: SemVerLevel = None) -> Response:
    """Listed packages matching ``searchTerm`` (the V3 search's matching), as an Atom feed."""
    _check_options(request)
    query = V2Query("Search", search_term=odata_literal(search_term, "searchTerm"),
                    target_framework=odata_literal(target_framework, "targetFramework"),
                    prerelease=include_prerelease, latest=parse_filter(filter), order_by_id=parse_order_by(order_by),
                    skip=skip, top=min(top, MAX_TOP), semver2=semver2_level(sem_ver_level))  # fmt: skip
    return document_response(request, legacy.query(query), media_type=ATOM_TYPE)


def get_packages(request: Request, legacy: Legacy, filter: Filter = None, order_by: OrderBy = None, skip: Skip = 0,
                 top: Top = MAX_TOP, sem_ver_level: SemVerLevel = None) -> Response:
    """Every listed package version (or the latest ones with ``$filter``), as an Atom feed."""
    _check_options(request)
    latest = parse_filter(filter)
    query = V2Query("Packages", prerelease=True, latest=latest, order_by_id=parse_order_by(order_by), skip=skip,
                    top=min(top, MAX_TOP), semver2=semver2_level(sem_ver_level))  # fmt: skip
    return document_response(request, legacy.query(query), media_type=ATOM_TYPE)


def get_package(request: Request, legacy: Legacy, id: str, version: str) -> Response:
    """One listed package version, as an Atom entry."""
    rendered = legacy.entry(id, version)
    if rendered is None:
        raise NotFoundError(f"no listed version '{version}' of package '{id}'")
    return document_response(request, rendered, media_type=ENTRY_TYPE)


get_and_head(router, "", get_service_document, media_type=XML_TYPE)
get_and_head(router, "/", get_service_document, media_type=XML_TYPE)
get_and_head(router, "/$metadata", get_metadata, media_type=XML_TYPE)
for _path in ("/Search()", "/Search"):
    get_and_head(router, _path, get_search, media_type=ATOM_TYPE, responses=UNSUPPORTED_QUERY)
for _path in ("/Packages()", "/Packages"):
    get_and_head(router, _path, get_packages, media_type=ATOM_TYPE, responses=UNSUPPORTED_QUERY)
get_and_head(router, "/Packages(Id='{id}',Version='{version}')", get_package, media_type=ENTRY_TYPE,
             responses=NOT_FOUND)
