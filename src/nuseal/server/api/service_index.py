"""``GET /v3/index.json``: the service index (every ``@type`` of server.md §E.1's recommended advertisement)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from nuseal.protocol.service_index import ServiceIndex
from nuseal.server.api.deps import feed_reader
from nuseal.server.api.responses import document_response
from nuseal.server.api.routing import get_and_head
from nuseal.server.services.feed_documents import FeedReader

router = APIRouter(tags=["NuGet V3"])


def get_service_index(request: Request, feed: Annotated[FeedReader, Depends(feed_reader)]) -> Response:
    """The NuGet V3 service index."""
    return document_response(request, feed.service_index(), cache_control="public, max-age=300")


get_and_head(router, "/v3/index.json", get_service_index, model=ServiceIndex)
