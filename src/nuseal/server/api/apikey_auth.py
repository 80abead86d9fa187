"""What the nuseal JSON API routes share: API-key authentication, bounded request bodies, problem documents.

Merge note: the push routes (feedapi) authenticate ``X-NuGet-ApiKey`` too; one dependency should remain.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, Field
from starlette.datastructures import FormData, UploadFile
from starlette.types import Message

from nuseal.findings import Finding
from nuseal.server.api.deps import service_context
from nuseal.server.services import apikeys
from nuseal.server.services.context import ServiceContext
from nuseal.server.services.errors import AuthenticationError, InvalidInputError
from nuseal.server.services.permissions import Principal
from nuseal.server.storage import BlobTooLargeError

#: NuGet's API key header (``X-NuGet-ApiKey``), as a security scheme in the OpenAPI document.
API_KEY_HEADER = APIKeyHeader(name="X-NuGet-ApiKey", auto_error=False,
                              description="A nuseal API key (nsk_...) with the scope the operation names.")


def principal(
    ctx: Annotated[ServiceContext, Depends(service_context)],
    token: Annotated[str | None, Depends(API_KEY_HEADER)],
) -> Principal:
    """The principal an API key stands for (401 problem when it is missing or not valid)."""
    if not token:
        raise AuthenticationError("an API key is required: send it in the X-NuGet-ApiKey header")
    return apikeys.authenticate(ctx, token)


class ProblemModel(BaseModel):
    """An ``application/problem+json`` error document."""

    title: str
    status: int
    detail: str
    code: str | None = Field(default=None, description="An NU code, when NuGet has one for the error.")
    reason: str | None = Field(default=None, description="A short machine-readable reason tag.")
    findings: list[FindingModel] | None = None


class FindingModel(BaseModel):
    """One coded observation (NU code, or nuget.org's issue code name)."""

    code: str
    severity: str
    message: str
    target: str
    subject: str | None = None


ProblemModel.model_rebuild()


def finding_models(findings: Sequence[Finding]) -> list[FindingModel]:
    return [FindingModel(**finding.to_dict()) for finding in findings]


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"title": title, "status": status, "detail": detail} | {k: v for k, v in extra.items() if v is not None}
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for problem documents."""
    return {status: {"model": ProblemModel, "content": {"application/problem+json": {}}} for status in statuses}


class BodyTooLarge(BlobTooLargeError):
    """The request body is larger than the route accepts (HTTP 413)."""


#: A body announced as too large is read and dropped up to this size before the 413 answer, so that clients which
#: send the whole body before reading the answer (httpx, NuGet) see the 413 rather than a reset connection.
DRAIN_LIMIT = 64 * 1024 * 1024


async def capped(request: Request, limit: int, what: str) -> Request:
    """A view of ``request`` whose body may not exceed ``limit`` bytes: refused up front from Content-Length, or as
    soon as a chunked body passes the limit, before it is parsed or spooled any further. Nothing is kept."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        if int(declared) <= DRAIN_LIMIT:
            async for _chunk in request.stream():
                pass
        raise BodyTooLarge(f"{what}: the request body has {declared} bytes, more than the {limit} accepted")
    received = 0
    receive = request.receive

    async def bounded() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(f"{what}: the request body is larger than the {limit} bytes accepted")
        return message

    return Request(request.scope, receive=bounded)


async def single_file(request: Request, what: str) -> UploadFile | None:
    """The one file part of a multipart form (whatever its field name), or None when there is none."""
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise InvalidInputError(f"{what}: send the file as multipart/form-data (got '{content_type or 'no body'}')")
    form: FormData = await request.form(max_files=1, max_fields=16)
    files = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
    return files[0] if files else None


async def read_at_most(upload: UploadFile, limit: int) -> bytes:
    """Up to ``limit + 1`` bytes of an uploaded file (enough to tell that it is too large)."""
    return await upload.read(limit + 1)


__all__ = ["API_KEY_HEADER", "BodyTooLarge", "FindingModel", "ProblemModel", "capped", "finding_models",
           "principal", "problem", "problem_responses", "read_at_most", "single_file"]
