"""nuseal's JSON API for packages (in the OpenAPI schema): the status of a pushed version, and owner changes.

- ``GET /api/v1/packages/{id}/{version}``: ``{"id", "version", "status", "listed", "owners", "findings",
  "pushed_at", "pushed_by"}`` for any pushed version (``validating``, ``available`` or ``failed``); 404 when it
  was never pushed. Public, like the feed; never cached.
- ``PUT``/``DELETE /api/v1/packages/{id}/owners/{account}``: add or remove an owner, for a signed-in owner or site
  admin. API keys never manage owners (nuget.org has no such scope), so through ``X-NuGet-ApiKey`` these answer
  403 whoever holds the key; they exist for the permission matrix and the coming web sessions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Response
from pydantic import BaseModel, Field

from nuseal.server.api.apikey_auth import Caller
from nuseal.server.api.deps import service_context
from nuseal.server.api.problems import problem_responses
from nuseal.server.api.responses import NO_STORE
from nuseal.server.services import packages
from nuseal.server.services.context import ServiceContext
from nuseal.server.services.status import package_status

router = APIRouter(prefix="/api/v1/packages", tags=["nuseal packages"])

class StatusFindingModel(BaseModel):
    code: str = Field(description="NU code, or nuget.org's validation issue name")
    severity: Literal["error", "warning", "info"]
    message: str


class PackageStatusModel(BaseModel):
    """Where a pushed version is: ``validating`` (not served yet), ``available`` (served) or ``failed``."""

    id: str = Field(description="Package id as first pushed")
    version: str = Field(description="Normalized version, with build metadata as pushed")
    status: Literal["validating", "available", "failed"]
    listed: bool
    owners: list[str] = Field(description="Account names owning the package")
    findings: list[StatusFindingModel]
    pushed_at: datetime
    pushed_by: str | None = Field(description="The user who held the API key")


class OwnersModel(BaseModel):
    id: str
    owners: list[str]


Id = Annotated[str, Path(max_length=128, description="Package id (any case)", examples=["Contoso.Lib"])]
Version = Annotated[str, Path(max_length=256, description="Package version (any equivalent spelling)",
                              examples=["1.0.0"])]


@router.get("/{id}/{version}", response_model=PackageStatusModel,
            responses=problem_responses(404, descriptions={404: "Never pushed"}))
def get_package_status(id: Id, version: Version, response: Response,
                       ctx: Annotated[ServiceContext, Depends(service_context)]) -> PackageStatusModel:
    """The status of one pushed version."""
    status = package_status(ctx, id, version)
    response.headers["Cache-Control"] = NO_STORE
    return PackageStatusModel.model_validate(status.to_dict())


_OWNER_RESPONSES = problem_responses(401, 403, 404, 409, descriptions={
    401: "Missing or bad API key", 403: "Not allowed", 404: "No such package or account", 409: "Last owner"})


@router.put("/{id}/owners/{account}", response_model=OwnersModel, responses=_OWNER_RESPONSES)
def put_owner(id: Id, account: Annotated[str, Path(max_length=64)], caller: Caller,
              ctx: Annotated[ServiceContext, Depends(service_context)]) -> OwnersModel:
    """Add an owner."""
    packages.add_owner(ctx, caller, id, account)
    return OwnersModel(id=id, owners=packages.list_owners(ctx, id))


@router.delete("/{id}/owners/{account}", response_model=OwnersModel, responses=_OWNER_RESPONSES)
def delete_owner(id: Id, account: Annotated[str, Path(max_length=64)], caller: Caller,
                 ctx: Annotated[ServiceContext, Depends(service_context)]) -> OwnersModel:
    """Remove an owner (never the last one)."""
    packages.remove_owner(ctx, caller, id, account)
    return OwnersModel(id=id, owners=packages.list_owners(ctx, id))
