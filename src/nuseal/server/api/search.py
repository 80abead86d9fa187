"""``SearchQueryService`` (``/v3/search``) and ``SearchAutocompleteService`` (``/v3/autocomplete``), as NuGet
clients call them (server.md §E.5): ``q``, ``skip``, ``take``, ``prerelease``, ``semVerLevel``,
``packageType``; autocomplete answers ids, or with ``id=`` the versions of one id."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from nuseal.protocol.search import AutocompleteIds, AutocompleteVersions, SearchResponse
from nuseal.server.api.deps import feed_reader
from nuseal.server.api.responses import document_response
from nuseal.server.api.routing import get_and_head
from nuseal.server.services.feed_documents import MAX_SKIP, MAX_TAKE, FeedReader, SearchQuery, semver2_level

router = APIRouter(prefix="/v3", tags=["NuGet V3"])

Q = Annotated[str, Query(description="Search terms; field:value narrows a term (id, packageid, title, tags, "
                                     "author, owner, description, summary)", max_length=1024,
                           examples=["contoso"])]
Skip = Annotated[int, Query(ge=0, le=MAX_SKIP, description="Results to skip")]
Take = Annotated[int, Query(ge=0, le=MAX_TAKE, description="Results to return")]
Prerelease = Annotated[bool, Query(description="Include prerelease versions")]
SemVerLevel = Annotated[str | None, Query(alias="semVerLevel", max_length=64,
                                          description="2.0.0 includes SemVer 2.0.0 versions")]
PackageTypeFilter = Annotated[str | None, Query(alias="packageType", max_length=256,
                                                description="Only packages of this package type")]


def get_search(request: Request, feed: Annotated[FeedReader, Depends(feed_reader)], q: Q = "", skip: Skip = 0,
               take: Take = 20, prerelease: Prerelease = False, sem_ver_level: SemVerLevel = None,
               package_type: PackageTypeFilter = None) -> Response:
    """Packages matching ``q``, most relevant first, with their listed versions."""
    query = SearchQuery(q=q, skip=skip, take=take, prerelease=prerelease, semver2=semver2_level(sem_ver_level),
                        package_type=package_type or None)
    return document_response(request, feed.search(query))


def get_autocomplete(request: Request, feed: Annotated[FeedReader, Depends(feed_reader)], q: Q = "",
                     id: Annotated[str | None, Query(max_length=128, description="List this id's versions")] = None,
                     skip: Skip = 0, take: Take = 20, prerelease: Prerelease = False,
                     sem_ver_level: SemVerLevel = None, package_type: PackageTypeFilter = None) -> Response:
    """Package ids starting with (then containing) ``q``, or, with ``id``, the versions of that id."""
    semver2 = semver2_level(sem_ver_level)
    if id is not None:
        return document_response(request, feed.autocomplete_versions(id, prerelease=prerelease, semver2=semver2))
    query = SearchQuery(q=q, skip=skip, take=take, prerelease=prerelease, semver2=semver2,
                        package_type=package_type or None)
    return document_response(request, feed.autocomplete_ids(query))


get_and_head(router, "/search", get_search, model=SearchResponse)
get_and_head(router, "/autocomplete", get_autocomplete, model=AutocompleteIds | AutocompleteVersions)  # type: ignore[arg-type]
