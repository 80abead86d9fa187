"""``GET /v3/index.json``: the service index (every ``@type`` of server.md §E.1's recommended advertisement), plus
``RepositorySignatures`` 5.0.0/4.9.0/4.7.0 when the public URL is https or the development flag allows http
(:func:`~nuseal.server.services.repository_signatures.repository_signature_resources`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from nuseal.protocol.service_index import ServiceIndex
from nuseal.server.api.deps import feed_reader, service_context
from nuseal.server.api.responses import document_response
from nuseal.server.api.routing import get_and_head
from nuseal.server.services.context import ServiceContext
from nuseal.server.services.feed_documents import FeedReader
from nuseal.server.services.repository_signatures import repository_signature_resources

router = APIRouter(tags=["NuGet V3"])


def get_service_index(request: Request, feed: Annotated[FeedReader, Depends(feed_reader)],
                      ctx: Annotated[ServiceContext, Depends(service_context)]) -> Response:  # fmt: skip
    """The NuGet V3 service index."""
    extra = repository_signature_resources(ctx.settings, str(request.app.state.public_url))
    return document_response(request, feed.service_index(extra), cache_control="public, max-age=300")


get_and_head(router, "/v3/index.json", get_service_index, model=ServiceIndex)
