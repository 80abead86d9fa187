"""THE API-key authentication of every route that takes one (push, unlist/relist, the JSON API): the
``X-NuGet-ApiKey`` header, checked by :func:`nuseal.server.services.apikeys.authenticate`, with nuget.org's texts.

:data:`Caller` is the FastAPI dependency (it documents the ``APIKeyHeader`` security scheme in the OpenAPI
schema); it runs before the route reads a body, so a request without a valid key is refused before its upload
is received. A missing or bad key is :class:`AuthenticationError` (401); what the key may do is each service's
:func:`~nuseal.server.services.permissions.authorize`.
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import Depends
from fastapi.security import APIKeyHeader

from nuseal.server.api.deps import service_context
from nuseal.server.services import apikeys
from nuseal.server.services.context import ServiceContext
from nuseal.server.services.errors import AuthenticationError
from nuseal.server.services.permissions import Principal

HEADER: Final = "X-NuGet-ApiKey"
#: nuget.org's texts.
API_KEY_REQUIRED: Final = f"An API key must be provided in the '{HEADER}' header to use this service"
NOT_AUTHORIZED: Final = ("The specified API key is invalid, has expired, or does not have permission to access the "
                         "specified package.")

#: The header as an OpenAPI security scheme (``APIKeyHeader``).
API_KEY: Final = APIKeyHeader(name=HEADER, auto_error=False,
                              description="A nuseal API key (nsk_...) with the scope the operation names.")


def authenticate(ctx: ServiceContext, token: str | None) -> Principal:
    """The principal of an ``X-NuGet-ApiKey`` value; :class:`AuthenticationError` (401) when absent or bad."""
    if token is None or not token.strip():
        raise AuthenticationError(API_KEY_REQUIRED)
    try:
        return apikeys.authenticate(ctx, token)
    except AuthenticationError as exc:
        raise AuthenticationError(f"{NOT_AUTHORIZED} ({exc.message})") from None


def principal(ctx: Annotated[ServiceContext, Depends(service_context)],
              token: Annotated[str | None, Depends(API_KEY)]) -> Principal:
    """The dependency: the principal the request's API key stands for."""
    return authenticate(ctx, token)


#: A route parameter ``caller: Caller`` authenticates the request.
Caller = Annotated[Principal, Depends(principal)]
