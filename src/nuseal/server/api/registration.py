"""``RegistrationsBaseUrl`` hives (server.md §E.4): ``/v3/registration/`` (SemVer 1), ``/v3/registration-gz/``
(3.4.0: gzip, SemVer 1) and ``/v3/registration-gz-semver2/`` (3.6.0: gzip, SemVer 2). Each has the index of an
id, linked page documents (more than 127 versions) and a leaf per version."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response

from nuseal.protocol.registration import RegistrationIndex, RegistrationLeaf, RegistrationPageDocument
from nuseal.server.api.deps import feed_reader
from nuseal.server.api.responses import document_response
from nuseal.server.api.routing import NOT_FOUND, get_and_head
from nuseal.server.services.errors import NotFoundError
from nuseal.server.services.feed_documents import FeedReader, Hive, Rendered
from nuseal.versioning import NuGetVersion

router = APIRouter(tags=["NuGet V3"])

Id = Annotated[str, Path(description="Package id (any case)", max_length=128, examples=["contoso.lib"])]
Version = Annotated[str, Path(description="Package version (normalized, any case)", max_length=256,
                              examples=["1.0.0"])]


def _answer(request: Request, hive: Hive, rendered: Rendered | None, what: str) -> Response:
    if rendered is None:
        raise NotFoundError(f"no {what} in {hive.path}")
    return document_response(request, rendered, gzip=hive.gzipped)


def _lower(version: str) -> str:
    parsed = NuGetVersion.try_parse(version)
    return parsed.lower if parsed is not None else version.lower()


def _routes(hive: Hive) -> None:
    base = f"/v3/{hive.path}/{{id}}"

    def index(request: Request, id: Id, feed: Annotated[FeedReader, Depends(feed_reader)]) -> Response:
        return _answer(request, hive, feed.registration_index(hive, id.lower()), f"package '{id}'")

    def page(request: Request, id: Id, lower: Version, upper: Version,
             feed: Annotated[FeedReader, Depends(feed_reader)]) -> Response:
        return _answer(request, hive, feed.registration_page(hive, id.lower(), _lower(lower), _lower(upper)),
                       f"page {lower}-{upper} of '{id}'")

    def leaf(request: Request, id: Id, version: Version, feed: Annotated[FeedReader, Depends(feed_reader)]) -> Response:
        return _answer(request, hive, feed.registration_leaf(hive, id.lower(), _lower(version)),
                       f"version '{version}' of '{id}'")

    named: list[tuple[str, Callable[..., Any], type[Any], str]] = [
        ("/index.json", index, RegistrationIndex, "registration index"),
        ("/page/{lower}/{upper}.json", page, RegistrationPageDocument, "registration page"),
        ("/{version}.json", leaf, RegistrationLeaf, "registration leaf"),
    ]
    for suffix, endpoint, model, title in named:
        endpoint.__name__ = f"{hive.name.lower()}_{endpoint.__name__}"
        endpoint.__doc__ = f"The {title} in the {hive.path} hive."
        get_and_head(router, base + suffix, endpoint, model=model, responses=NOT_FOUND)


for _hive in Hive:
    _routes(_hive)
