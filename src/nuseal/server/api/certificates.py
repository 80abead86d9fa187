"""``/api/v1/accounts/{account}/certificates``: the author-signing certificates of an account (spec §A.2-§A.4).

API key with the ``account:certificates`` scope, acting for ``{account}``: listing needs ViewAccount (owner, org
admin or collaborator, site admin), registering and removing ManageAccount (owner or org admin). Uploads are
``multipart/form-data`` with one file (nuget.org names the field ``uploadFile``; any name is accepted).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from nuseal.server.api.apikey_auth import Caller
from nuseal.server.api.deps import service_context
from nuseal.server.api.problems import problem, problem_responses
from nuseal.server.api.uploads import capped, read_at_most, single_file
from nuseal.server.services import certificates
from nuseal.server.services.certificates import MAX_CERTIFICATE_BYTES, CertificateInfo, CertificateRejected
from nuseal.server.services.context import ServiceContext
from nuseal.server.services.errors import InvalidInputError, NotFoundError

router = APIRouter(prefix="/api/v1/accounts", tags=["certificates"])

#: Room for the multipart framing around a 10,000-byte certificate.
_BODY_LIMIT = MAX_CERTIFICATE_BYTES + 16 * 1024

AccountName = Annotated[str, Path(description="A user or organization name.", max_length=64, examples=["contoso"])]
Fingerprint = Annotated[str, Path(
    description="SHA-256 fingerprint of the certificate's DER bytes (hex).", max_length=128,
    examples=["e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"])]


class CertificateModel(BaseModel):
    sha256: str = Field(description="SHA-256 of the DER bytes, lower-case hex: the certificate's identity.")
    sha1: str = Field(description="SHA-1 of the DER bytes (for comparing with tools that print it).")
    subject: str
    issuer: str
    not_before: datetime
    not_after: datetime
    expired: bool
    self_issued: bool
    registered_at: datetime | None

    @classmethod
    def of(cls, info: CertificateInfo, now: datetime) -> CertificateModel:
        return cls.model_validate(info.to_dict(now))


class CertificateListModel(BaseModel):
    account: str
    certificates: list[CertificateModel]


class CertificateRegistrationModel(BaseModel):
    account: str
    added: bool = Field(description="False when the account already had the certificate (nothing changed).")
    certificate: CertificateModel


Ctx = Annotated[ServiceContext, Depends(service_context)]


@router.get("/{account}/certificates", response_model=CertificateListModel,
            responses=problem_responses(401, 403, 404))
def list_certificates(account: AccountName, ctx: Ctx, caller: Caller) -> CertificateListModel:
    """The certificates registered to the account, with their details."""
    found = certificates.list_for_account(ctx, caller, account)
    now = ctx.now()
    return CertificateListModel(account=account, certificates=[CertificateModel.of(c, now) for c in found])


@router.get("/{account}/certificates/{sha256}", response_model=CertificateModel,
            responses=problem_responses(401, 403, 404))
def get_certificate(account: AccountName, sha256: Fingerprint, ctx: Ctx, caller: Caller) -> CertificateModel:
    """One certificate registered to the account (404 also for a string that is no SHA-256 fingerprint: no
    certificate has it, and the detail says why)."""
    try:
        wanted = certificates.parse_fingerprint(sha256)
    except InvalidInputError as exc:
        raise NotFoundError(exc.message) from None
    for info in certificates.list_for_account(ctx, caller, account):
        if info.sha256 == wanted:
            return CertificateModel.of(info, ctx.now())
    raise NotFoundError(f"the certificate {wanted} is not registered to {account}")


@router.post(
    "/{account}/certificates", status_code=201, response_model=CertificateRegistrationModel,
    responses={200: {"model": CertificateRegistrationModel, "description": "Already registered (no change)."},
               **problem_responses(400, 401, 403, 404, 413, descriptions={
                   400: "Refused upload: `reason` tags why, `findings` carry the certificate rules' NU codes."})},
    openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["uploadFile"],
        "properties": {"uploadFile": {"type": "string", "format": "binary",
                                      "description": "The certificate, DER (.cer), at most 10,000 bytes."}}}}}}},
)  # fmt: skip
async def register_certificate(account: AccountName, request: Request, ctx: Ctx, caller: Caller) -> Response:
    """Register a DER ``.cer`` certificate to the account (registering it again changes nothing)."""
    bounded = await capped(request, _BODY_LIMIT, certificates.FILE_TOO_LARGE.format(MAX_CERTIFICATE_BYTES))
    try:
        upload = await single_file(bounded, "a certificate upload")
        data = None if upload is None else await read_at_most(upload, MAX_CERTIFICATE_BYTES)
        filename = None if upload is None else (upload.filename or None)
    finally:
        await bounded.close()  # the parsed form's spooled files
    try:
        registration = await run_in_threadpool(certificates.register, ctx, caller, account, data, filename)
    except CertificateRejected as exc:
        return problem(400, "CertificateRejected", exc.message, reason=exc.reason, findings=exc.findings)
    model = CertificateRegistrationModel(account=account, added=registration.added,
                                         certificate=CertificateModel.of(registration.certificate, ctx.now()))
    location = f"/api/v1/accounts/{account}/certificates/{registration.certificate.sha256}"
    return JSONResponse(model.model_dump(mode="json"), status_code=201 if registration.added else 200,
                        headers={"Location": location})  # fmt: skip


@router.delete("/{account}/certificates/{sha256}", status_code=204,
               responses=problem_responses(400, 401, 403, 404))
def unregister_certificate(account: AccountName, sha256: Fingerprint, ctx: Ctx, caller: Caller) -> Response:
    """Unregister a certificate from the account (the certificate itself stays for other accounts)."""
    certificates.unregister(ctx, caller, account, sha256)
    return Response(status_code=204)
