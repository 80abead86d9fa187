"""THE problem document of the JSON API (``application/problem+json``, RFC 9457 in nuseal's shape) and its OpenAPI
description: every JSON route's error, the exception handler's answers and the 422 answers use this one model.

``{"title", "status", "detail", "code"?, "reason"?, "findings"?}``: ``code`` an NU code when NuGet has one,
``reason`` a short machine-readable tag (certificate uploads), ``findings`` the coded observations of a refusal.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from nuseal.findings import Finding

MEDIA_TYPE: Final = "application/problem+json"


class FindingModel(BaseModel):
    """One coded observation (NU code, or nuget.org's issue code name)."""

    code: str
    severity: str
    message: str
    target: str
    subject: str | None = None


class ProblemModel(BaseModel):
    """An ``application/problem+json`` error document."""

    title: str
    status: int
    detail: str
    code: str | None = Field(default=None, description="An NU code, when NuGet has one for the error.")
    reason: str | None = Field(default=None, description="A short machine-readable reason tag.")
    findings: list[FindingModel] | None = Field(default=None, description="The coded findings of a refusal.")


def finding_models(findings: Sequence[Finding]) -> list[FindingModel]:
    return [FindingModel(**finding.to_dict()) for finding in findings]


def problem(status: int, title: str, detail: str, *, code: str | None = None, reason: str | None = None,
            findings: Sequence[Finding] = (), headers: dict[str, str] | None = None) -> JSONResponse:
    """A problem document answer; empty optional members are left out."""
    body: dict[str, Any] = {"title": title, "status": status, "detail": detail}
    if code is not None:
        body["code"] = code
    if reason is not None:
        body["reason"] = reason
    if findings:
        body["findings"] = [f.to_dict() for f in findings]
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def problem_responses(*statuses: int, descriptions: dict[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries saying these statuses answer a problem document."""
    return {status: {"model": ProblemModel, "content": {MEDIA_TYPE: {}},
                     **({"description": descriptions[status]} if descriptions and status in descriptions else {})}
            for status in statuses}  # fmt: skip


#: The document's schema as an OpenAPI reference (for answers FastAPI documents itself, such as 422).
SCHEMA_REF: Final = {"$ref": "#/components/schemas/ProblemModel"}
