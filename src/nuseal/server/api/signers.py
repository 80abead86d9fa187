"""``/api/v1/packages/{id}/required-signer`` (spec §A.5) and the push dry run ``POST /api/v1/packages/check``.

The required signer: API key with the ``package:signer`` scope; reading it is open to the owners' members and site
admins, changing it to owners and organization admins (not collaborators). The dry run takes the same key a push
takes (``package:push`` / ``package:pushversion``) and answers what a push of the file would get, storing nothing.

Route order note: register this router before any ``/api/v1/packages/{id}/{version}`` route, so that
``required-signer`` and ``check`` are not taken for a version.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Path, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from nuseal.server.api.apikey_auth import Caller
from nuseal.server.api.deps import service_context
from nuseal.server.api.problems import FindingModel, finding_models, problem_responses
from nuseal.server.api.uploads import receive_package
from nuseal.server.services import package_check, signing_rules
from nuseal.server.services.context import ServiceContext
from nuseal.server.services.signing_rules import SignerState

router = APIRouter(prefix="/api/v1/packages", tags=["signing"])

Ctx = Annotated[ServiceContext, Depends(service_context)]
PackageId = Annotated[str, Path(description="Package id (any case).", max_length=100,
                                examples=["Contoso.Lib"])]  # fmt: skip
Signing = Literal["required", "allowed", "not allowed"]


class SignerOwnerModel(BaseModel):
    name: str
    certificates: int = Field(description="How many certificates the owner has registered.")


class RequiredSignerModel(BaseModel):
    package: str
    required_signer: str = Field(description="An owner's name, or 'Any'.")
    signing: Signing = Field(description="What the next push must be: signed, either, or unsigned.")
    message: str = Field(description="nuget.org's sentence for this state.")
    owners: list[SignerOwnerModel]

    @classmethod
    def of(cls, state: SignerState) -> RequiredSignerModel:
        return cls.model_validate(state.to_dict())


class RequiredSignerChange(BaseModel):
    signer: str | None = Field(description="The owner who must sign future pushes, or 'Any' (or null).")


@router.get("/{package_id}/required-signer", response_model=RequiredSignerModel,
            responses=problem_responses(401, 403, 404))
def get_required_signer(package_id: PackageId, ctx: Ctx, caller: Caller) -> RequiredSignerModel:
    """The package's required signer and what it means for the next push."""
    return RequiredSignerModel.of(signing_rules.show_signer(ctx, caller, package_id))


@router.put("/{package_id}/required-signer", response_model=RequiredSignerModel,
            responses=problem_responses(400, 401, 403, 404))
def put_required_signer(
    package_id: PackageId, change: Annotated[RequiredSignerChange, Body()], ctx: Ctx, caller: Caller
) -> RequiredSignerModel:
    """Set the required signer to one of the owners, or to 'Any'."""
    state, _changed = signing_rules.set_signer(ctx, caller, package_id, change.signer)
    return RequiredSignerModel.of(state)


# --- the push dry run -----------------------------------------------------------------------------------------


class CheckSigningModel(BaseModel):
    new_package: bool
    required_signer: str
    policy: Signing
    message: str


class CheckReportModel(BaseModel):
    id: str
    version: str
    accepted: bool = Field(description="Whether a push of this file would be accepted now (every check).")
    status: int = Field(description="What the push would answer: 201, 400 or 409.")
    stage: Literal["package", "conflict", "fast", "full"] | None = Field(
        description="Where a push would stop: 'package' (nuget.org's package checks), 'conflict' (the version "
                    "exists), 'fast' (the signing rules before verification: is a signature present), 'full' "
                    "(verification under the feed policy and the signing rules); null when accepted.")
    message: str | None = Field(description="The text a refused push answers with (NuGet clients show it).")
    findings: list[FindingModel]
    warnings: list[FindingModel] = Field(description="What the push would send in X-NuGet-Warning and keep.")
    verified: bool = Field(description="Whether the signature was verified (signed files that passed the fast stage).")
    signing: CheckSigningModel | None = Field(
        description="The package's signing requirements for this key's account (null when the package checks "
                    "refused the file).")


@router.post(
    "/check", response_model=CheckReportModel, responses=problem_responses(400, 401, 403, 413, descriptions={
        400: "Not a package (nothing to check): the findings say why."}),
    openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["package"],
        "properties": {"package": {"type": "string", "format": "binary", "description": "The .nupkg."}}}}}}},
)  # fmt: skip
async def check_package(request: Request, ctx: Ctx, caller: Caller) -> CheckReportModel:
    """What would happen if this file were pushed now, with this key: the push's own checks, in its order, with
    every finding and the warnings. The body is received as a push's is; nothing is stored."""
    path = await receive_package(request, ctx.settings.data_dir / "tmp", ctx.settings.max_package_bytes)
    try:
        report = await run_in_threadpool(package_check.check_package, ctx, caller, path)
    finally:
        path.unlink(missing_ok=True)
    data = report.to_dict()
    data["findings"] = finding_models(report.findings)
    data["warnings"] = finding_models(report.warnings)
    return CheckReportModel.model_validate(data)
