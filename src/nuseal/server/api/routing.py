"""Route registration helpers: NuGet clients use ``GET`` and ``HEAD`` on every read resource."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such package, version or document"}}
#: The V2 feed's OData options nuseal does not implement (a ``$filter`` other than the latest-version ones).
UNSUPPORTED_QUERY: dict[int | str, dict[str, Any]] = {400: {"description": "A query option this feed does not support"}}


def get_and_head(router: APIRouter, path: str, endpoint: Callable[..., Any], *, model: type[Any] | None = None,
                 media_type: str = "application/json", responses: dict[int | str, dict[str, Any]] | None = None,
                 ) -> None:
    """Register ``endpoint`` for GET (documented in the OpenAPI schema, with ``model`` as its 200 body) and for
    HEAD (same handler, left out of the schema so operation ids stay unique)."""
    ok: dict[str, Any] = {"description": "OK", "content": {media_type: {}}}
    if model is not None:
        ok["model"] = model
    router.add_api_route(path, endpoint, methods=["GET"], response_class=Response,
                         responses={200: ok, 304: {"description": "Not modified (If-None-Match)"},
                                    **(responses or {})})  # fmt: skip
    router.add_api_route(path, endpoint, methods=["HEAD"], include_in_schema=False)
