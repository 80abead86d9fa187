"""``RepositorySignatures`` routes (server.md §C): the 4.7.0 / 4.9.0 / 5.0.0 documents and the certificates they
list, GET and HEAD only (any other method is 405 with ``Allow``). Served only when the feed's public URL is https
or the development flag allows http (the service index advertises them under the same rule); 404 otherwise."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from nuseal.server.api.deps import service_context
from nuseal.server.services import repository_signatures as resource
from nuseal.server.services.context import ServiceContext
from nuseal.server.services.errors import NotFoundError

router = APIRouter(tags=["repository signatures"])
_METHODS = ["GET", "HEAD"]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such document or certificate, or the feed's public URL is http"}
}


def _base_url(request: Request, ctx: ServiceContext) -> str:
    base = str(request.app.state.public_url)
    if not resource.enabled(ctx.settings, base):
        raise NotFoundError("this feed publishes RepositorySignatures only over https (its public URL is http)")
    return base


@router.api_route(f"{resource.PATH}/{{version}}/index.json", methods=_METHODS, responses=_NOT_FOUND)
def get_document(version: str, request: Request,
                 ctx: Annotated[ServiceContext, Depends(service_context)]) -> Response:  # fmt: skip
    """A RepositorySignatures document; ``allRepositorySigned`` is computed under 5.0.0 and false under 4.x."""
    body = resource.document(ctx, version, _base_url(request, ctx)).to_json()
    # Revalidated on every use: a revocation must reach clients at once. The ETag makes that cheap.
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag, "Cache-Control": "no-cache"})
    return Response(body, media_type="application/json",
                    headers={"ETag": etag, "Cache-Control": "no-cache"})  # fmt: skip


@router.api_route(f"{resource.PATH}/certificates/{{name}}", methods=_METHODS, responses=_NOT_FOUND)
def get_certificate(name: str, request: Request,
                    ctx: Annotated[ServiceContext, Depends(service_context)]) -> Response:  # fmt: skip
    """The DER certificate at a document's ``contentUrl`` (``{sha256}.crt``): content-addressed, so immutable."""
    _base_url(request, ctx)
    if not name.endswith(".crt"):
        raise NotFoundError(f"no certificate '{name}': expected SHA256.crt")
    der = resource.certificate_der(ctx, name.removesuffix(".crt"))
    return Response(der, media_type=resource.CERTIFICATE_MEDIA_TYPE,
                    headers={"Cache-Control": "public, max-age=31536000, immutable"})  # fmt: skip
