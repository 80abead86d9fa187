"""Request → service context (the one object the app factory stored on the application)."""

from __future__ import annotations

from fastapi import Request

from nuseal.server.services.context import ServiceContext


def service_context(request: Request) -> ServiceContext:
    ctx = request.app.state.ctx
    assert isinstance(ctx, ServiceContext)
    return ctx
