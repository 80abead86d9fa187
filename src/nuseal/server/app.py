"""The FastAPI application and the uvicorn process around it.

:func:`create_app` wires the routers to a :class:`ServiceContext`, installs the one exception handler that turns
domain errors into 4xx problem documents (plain text with the message as the reason phrase for NuGet clients),
405 answers listing every method of the path, and the access-log middleware (one JSON line per request).
:func:`run` binds the socket itself (so ``--port 0`` works and the real port is known before the first request),
then hands it to uvicorn (its httptools protocol, able to write reason phrases) with TLS when a certificate is
configured.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Final

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nuseal.errors import NusealError
from nuseal.server.api import (
    certificates,
    flatcontainer,
    health,
    legacy_feed,
    publish,
    registration,
    repository_signatures,
    search,
    service_index,
    signers,
    status,
)
from nuseal.server.api.fast_reads import FastReads
from nuseal.server.api.problems import SCHEMA_REF, problem
from nuseal.server.api.responses import ReasonPhraseText
from nuseal.server.db.session import DatabaseBusyError
from nuseal.server.reason_phrase import ReasonPhraseProtocol
from nuseal.server.services.context import ServiceContext
from nuseal.server.services.errors import (
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
)
from nuseal.server.services.feed_documents import FeedReader
from nuseal.server.services.legacy_feed import LegacyFeed
from nuseal.server.services.permissions import AccessDenied
from nuseal.server.services.push import PushStorageFailed
from nuseal.server.services.push_checks import PushRejected
from nuseal.server.settings import ServerSettings
from nuseal.server.storage import BlobTooLargeError, RangeNotSatisfiableError

_access = logging.getLogger("nuseal.access")
_log = logging.getLogger("nuseal.server")

#: Domain error → HTTP status (the first matching class wins); anything else that is a NusealError is a 400.
STATUS_OF: Final[tuple[tuple[type[NusealError], int], ...]] = (
    (AuthenticationError, 401),
    (AccessDenied, 403),
    (NotFoundError, 404),
    (ConflictError, 409),
    (BlobTooLargeError, 413),
    (RangeNotSatisfiableError, 416),
    (InvalidInputError, 400),
    (PushStorageFailed, 503),
    (DatabaseBusyError, 503),
)
#: Paths NuGet clients push to: their errors are plain text, as nuget.org answers them.
TEXT_ERROR_PREFIXES: Final = ("/api/v2/",)


def _nuseal_version() -> str:
    try:
        return version("nuseal")
    except PackageNotFoundError:  # running from a source tree without installation
        return "0+unknown"


def status_of(error: NusealError) -> int:
    return next((status for kind, status in STATUS_OF if isinstance(error, kind)), 400)


async def _problem(request: Request, error: Exception) -> Response:
    assert isinstance(error, NusealError)  # registered for NusealError only
    status = status_of(error)
    findings = error.findings if isinstance(error, PushRejected) else ()
    if request.url.path.startswith(TEXT_ERROR_PREFIXES):
        # nuget.org: the message is the body and, on one line, the reason phrase NuGet clients print.
        reason = error.reason if isinstance(error, PushRejected) else error.message
        return ReasonPhraseText(error.message, status_code=status, reason=reason)
    return problem(status, type(error).__name__, error.message, code=error.code.value if error.code else None,
                   findings=findings)


async def _invalid_request(request: Request, error: Exception) -> JSONResponse:
    """FastAPI's request validation errors as problem documents too (status 422, the first error in the detail)."""
    assert isinstance(error, RequestValidationError)
    first = error.errors()[0] if error.errors() else {}
    where = ".".join(str(part) for part in first.get("loc", ()))
    detail = f"{where}: {first.get('msg', 'invalid request')}" if where else str(first.get("msg", "invalid request"))
    return problem(422, "InvalidRequest", detail)


_HTTP_METHODS: Final = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


async def _http_error(request: Request, error: Exception) -> Response:
    """Starlette's own answers (404 for no route, 405): problem documents; a 405 lists in ``Allow`` every method
    the path answers. Starlette names only those of the first route matching the path (FastAPI makes one route per
    method, and nests included routers), so each method is tried against the whole router instead."""
    assert isinstance(error, HTTPException)
    headers = dict(error.headers or {})
    if error.status_code == 405:
        routes = request.app.router.routes
        allowed = [
            method
            for method in _HTTP_METHODS
            if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)
        ]
        headers["Allow"] = ", ".join(allowed)
    return problem(error.status_code, "HTTPError", str(error.detail), headers=headers)


class AccessLog:
    """Pure ASGI middleware (streaming-safe): logs method, path, status, bytes and duration of each request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status, sent = 500, 0

        async def counting_send(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            client = scope.get("client")
            headers = dict(scope.get("headers") or [])
            _access.info("request", extra={"fields": {
                "method": scope.get("method"),
                "path": scope.get("path"),
                "query": scope.get("query_string", b"").decode("latin-1") or None,
                "status": status,
                "bytes": sent,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "client": client[0] if client else None,
                "user_agent": headers.get(b"user-agent", b"").decode("latin-1") or None,
            }})  # fmt: skip


def create_app(ctx: ServiceContext, *, public_url: str) -> FastAPI:
    """The feed application for one context; ``public_url`` is the externally visible base URL (no slash)."""
    # No OpenTelemetry: FastAPI's native telemetry otherwise asks the global providers on every request.
    app = FastAPI(title="nuseal feed", version=_nuseal_version(), docs_url="/api/docs",
                  openapi_url="/api/openapi.json", redoc_url=None,
                  telemetry={"tracing": False, "metrics": False, "logs": False})  # fmt: skip
    app.state.ctx = ctx
    app.state.public_url = public_url
    app.state.feed = FeedReader(ctx.db, public_url)
    app.state.legacy = LegacyFeed(app.state.feed)
    app.add_exception_handler(NusealError, _problem)
    app.add_exception_handler(RequestValidationError, _invalid_request)  # issue 10: problem JSON for bad bodies
    app.add_exception_handler(HTTPException, _http_error)
    app.add_middleware(FastReads, feed=app.state.feed, blobs=ctx.blobs)  # inside the access log: reads logged too
    if ctx.settings.access_log:
        app.add_middleware(AccessLog)
    app.include_router(health.router)
    app.include_router(signers.router)  # before any /api/v1/packages/{id}/{version} route
    app.include_router(certificates.router)
    app.include_router(service_index.router)
    app.include_router(flatcontainer.router)
    app.include_router(registration.router)
    app.include_router(search.router)
    app.include_router(publish.router)
    app.include_router(status.router)
    app.include_router(repository_signatures.router)
    app.include_router(legacy_feed.router)
    _document_invalid_requests_as_problems(app)
    return app


def _document_invalid_requests_as_problems(app: FastAPI) -> None:
    """FastAPI documents its 422 answers as ``application/json`` ``HTTPValidationError``; ``_invalid_request``
    answers them as problem documents, so the OpenAPI schema says that (schemathesis checks the two agree)."""
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = default_openapi()
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    answer = operation.get("responses", {}).get("422") if isinstance(operation, dict) else None
                    if answer is not None:
                        answer["content"] = {"application/problem+json": {"schema": SCHEMA_REF}}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]



def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (IPv4 or IPv6; port 0 = any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


class _ShutdownHooks:
    """Runs blocking ``hooks`` (in a thread) when uvicorn shuts the application down, before it exits: uvicorn
    re-raises SIGTERM/SIGINT after a graceful shutdown, so code after ``run`` would never see it."""

    def __init__(self, app: ASGIApp, hooks: Sequence[Callable[[], None]]) -> None:
        self.app = app
        self.hooks = hooks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan" or not self.hooks:
            await self.app(scope, receive, send)
            return

        async def receiving() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                for hook in self.hooks:
                    await asyncio.to_thread(hook)
            return message

        await self.app(scope, receiving, send)


def _config(app: Any, settings: ServerSettings, **extra: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        http=ReasonPhraseProtocol,  # nuget.org's messages as reason phrases
        ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
        ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
        log_config=None,  # logging is configured by the caller (JSON lines)
        access_log=False,  # replaced by AccessLog
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=10,
        **extra,
    )


@dataclass(frozen=True)
class WorkerAppFactory:
    """Builds the application inside each HTTP worker process (``--workers`` > 1). uvicorn pickles it into every
    process it spawns; each opens its own database and blob-store connections (the parent migrated the embedded
    database already, so a worker only checks the revision) and keeps its own document cache, kept fresh by the
    feed-state serial like any other process's."""

    settings: ServerSettings
    public_url: str

    def __call__(self) -> ASGIApp:
        from nuseal.server.bootstrap import open_context
        from nuseal.server.faults import arm_from_environ
        from nuseal.server.logs import configure_json_logging
        from nuseal.server.services.dev_signing import stop_local_tsas

        configure_json_logging()
        arm_from_environ(os.environ)
        ctx = open_context(self.settings, migrate_embedded=False)
        return _ShutdownHooks(create_app(ctx, public_url=self.public_url), [stop_local_tsas, ctx.db.dispose])


def run(ctx: ServiceContext, sock: socket.socket, *, public_url: str,
        on_shutdown: Sequence[Callable[[], None]] = ()) -> None:  # fmt: skip
    """Serve until SIGINT/SIGTERM on an already bound socket; TLS when the settings name a certificate.

    With ``http_workers`` > 1, uvicorn's supervisor spawns that many worker processes which accept on the same
    socket (the kernel spreads connections among them) and replaces one that dies; this process then serves no
    HTTP itself and keeps only what must run once (the job workers of ``on_shutdown``).
    ``on_shutdown`` runs after the last request, during the graceful shutdown (stopping the job workers).
    """
    settings = ctx.settings
    if settings.http_workers > 1:
        _run_workers(ctx, sock, public_url=public_url, on_shutdown=on_shutdown)
        return
    server = uvicorn.Server(_config(_ShutdownHooks(create_app(ctx, public_url=public_url), on_shutdown), settings))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        ctx.db.dispose()


def _run_workers(ctx: ServiceContext, sock: socket.socket, *, public_url: str,
                 on_shutdown: Sequence[Callable[[], None]]) -> None:  # fmt: skip
    from uvicorn.supervisors import Multiprocess

    settings = ctx.settings
    # A worker busy serving answers the supervisor's health check from a thread: give it time on a loaded machine.
    config = _config(WorkerAppFactory(settings, public_url), settings, factory=True, workers=settings.http_workers,
                     timeout_worker_healthcheck=30)  # fmt: skip
    try:
        Multiprocess(config, sockets=[sock]).run()  # returns once SIGINT/SIGTERM stopped every worker
    finally:
        sock.close()
        for hook in on_shutdown:
            hook()
        ctx.db.dispose()
