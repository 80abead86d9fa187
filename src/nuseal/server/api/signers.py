"""``/api/v1/packages/{id}/required-signer`` (spec §A.5) and the push dry run ``POST /api/v1/packages/check``.

The required signer: API key with the ``package:signer`` scope; reading it is open to the owners' members and site
admins, changing it to owners and organization admins (not collaborators). The dry run takes the same key a push
takes (``package:push`` / ``package:pushversion``) and answers what a push of the file would get, storing nothing.

Route order note: register this router before any ``/api/v1/packages/{id}/{version}`` route, so that
``required-signer`` and ``check`` are not taken for a version.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path as FilePath
from pathlib import PurePath
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Path, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from nuseal.server.api.apikey_auth import (
    FindingModel,
    capped,
    finding_models,
    principal,
    problem_responses,
    single_file,
)
from nuseal.server.api.deps import service_context
from nuseal.server.services import package_check, signing_rules
from nuseal.server.services.context import ServiceContext
from nuseal.server.services.errors import InvalidInputError
from nuseal.server.services.permissions import Principal
from nuseal.server.services.signing_rules import SignerState

router = APIRouter(prefix="/api/v1/packages", tags=["signing"])

Ctx = Annotated[ServiceContext, Depends(service_context)]
Caller = Annotated[Principal, Depends(principal)]
PackageId = Annotated[str, Path(description="Package id (any case).", max_length=100)]
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
    accepted: bool = Field(description="Whether a push of this file would be accepted now (both stages).")
    status: int = Field(description="What the push would answer: 201, 400 or 409.")
    stage: Literal["conflict", "fast", "full"] | None = Field(
        description="Where a push would be refused: 'fast' (before anything is stored), 'full' (verification "
                    "and signer rules), 'conflict' (the version exists); null when accepted.")
    message: str | None = Field(description="The text a refused push answers with.")
    findings: list[FindingModel]
    warnings: list[FindingModel] = Field(description="What the push would send in X-NuGet-Warning and the log.")
    verified: bool = Field(description="Whether the signature was verified (signed files that passed the fast stage).")
    signing: CheckSigningModel


@router.post(
    "/check", response_model=CheckReportModel, responses=problem_responses(400, 401, 403, 413),
    openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["package"],
        "properties": {"package": {"type": "string", "format": "binary", "description": "The .nupkg."}}}}}}},
)  # fmt: skip
async def check_package(request: Request, ctx: Ctx, caller: Caller) -> CheckReportModel:
    """What would happen if this file were pushed now, with this key: every finding of both stages and the
    warnings. Nothing is stored."""
    limit = ctx.settings.max_package_bytes
    bounded = await capped(request, limit + 64 * 1024, f"the package exceeds the size limit of {limit} bytes")
    try:
        upload = await single_file(bounded, "a package check")
        if upload is None:
            raise InvalidInputError("a package check needs the .nupkg file in the multipart body")
        name = PurePath(upload.filename or "package.nupkg").name or "package.nupkg"
        with tempfile.TemporaryDirectory(prefix="nuseal-check-") as folder:  # staged outside the feed's storage
            staged = FilePath(folder) / "package.nupkg"
            with staged.open("wb") as out:
                await run_in_threadpool(shutil.copyfileobj, upload.file, out, 1024 * 1024)
            report = await run_in_threadpool(package_check.check_package, ctx, caller, staged, shown_as=name)
    finally:
        await bounded.close()  # the parsed form's spooled files
    data = report.to_dict()
    data["findings"] = finding_models(report.findings)
    data["warnings"] = finding_models(report.warnings)
    return CheckReportModel.model_validate(data)
