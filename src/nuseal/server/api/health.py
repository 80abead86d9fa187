"""``GET /health``: 200 with ``{"status": "ok", ...}`` when database and storage answer, 503 otherwise."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from nuseal.server.api.deps import service_context
from nuseal.server.services import health
from nuseal.server.services.context import ServiceContext

router = APIRouter()


@router.get("/health", tags=["operations"])
def get_health(ctx: Annotated[ServiceContext, Depends(service_context)]) -> JSONResponse:
    report = health.check(ctx)
    return JSONResponse(report.to_dict(), status_code=200 if report.ok else 503, headers={"Cache-Control": "no-store"})
