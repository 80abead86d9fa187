"""``PackageBaseAddress/3.0.0`` at ``/v3/flatcontainer/``: the versions of an id, and each version's exact stored
``.nupkg`` and ``.nuspec`` (GET and HEAD, ETag, Range). Ids and versions are matched case-insensitively and
versions in any equivalent spelling (``1.0`` is ``1.0.0``); only ``available`` versions exist here."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response

from nuseal.protocol.package_content import PackageVersionsIndex
from nuseal.server.api.deps import feed_reader, service_context
from nuseal.server.api.responses import blob_response, document_response
from nuseal.server.api.routing import NOT_FOUND, get_and_head
from nuseal.server.services.context import ServiceContext
from nuseal.server.services.errors import NotFoundError
from nuseal.server.services.feed_documents import FeedReader
from nuseal.versioning import NuGetVersion

router = APIRouter(prefix="/v3/flatcontainer", tags=["NuGet V3"])

Id = Annotated[str, Path(description="Package id (any case)", max_length=128, examples=["contoso.lib"])]
Version = Annotated[str, Path(description="Package version (normalized, any case)", max_length=256,
                              examples=["1.0.0"])]

FileName = Annotated[str, Path(description="{id}.{version}.nupkg or {id}.nuspec", max_length=512,
                               examples=["contoso.lib.1.0.0.nupkg"])]


def _lower_version(version: str) -> str:
    parsed = NuGetVersion.try_parse(version)
    if parsed is None:
        raise NotFoundError(f"'{version}' is not a package version")
    return parsed.lower


def get_versions(request: Request, id: Id, feed: Annotated[FeedReader, Depends(feed_reader)]) -> Response:
    """Every available version of the id, lower-cased and normalized (unlisted ones included)."""
    rendered = feed.versions_index(id.lower())
    if rendered is None:
        raise NotFoundError(f"no package '{id}'")
    return document_response(request, rendered)


def get_file(request: Request, id: Id, version: Version, filename: FileName,
             ctx: Annotated[ServiceContext, Depends(service_context)],
             feed: Annotated[FeedReader, Depends(feed_reader)]) -> Response:
    """``{id}.{version}.nupkg`` (the stored bytes, exactly) or ``{id}.nuspec``."""
    lower_id, lower_version = id.lower(), _lower_version(version)
    name = filename.lower()
    if name == f"{lower_id}.{lower_version}.nupkg":
        nuspec, media_type = False, "application/octet-stream"
    elif name == f"{lower_id}.nuspec":
        nuspec, media_type = True, "application/xml"
    else:
        raise NotFoundError(f"no file '{filename}' for {id} {version}")
    ref = feed.blob(lower_id, lower_version, nuspec=nuspec)
    if ref is None:
        raise NotFoundError(f"no version '{version}' of package '{id}'")
    return blob_response(request, ctx.blobs, ref, media_type=media_type, filename=name)


get_and_head(router, "/{id}/index.json", get_versions, model=PackageVersionsIndex, responses=NOT_FOUND)
get_and_head(router, "/{id}/{version}/{filename}", get_file, media_type="application/octet-stream",
             responses=NOT_FOUND)
