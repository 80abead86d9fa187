"""``PackagePublish/2.0.0`` at ``/api/v2/package`` (server.md §E.3), with nuget.org's status codes and texts:

- ``PUT /api/v2/package`` (and ``.../package/``: nuget.exe adds the slash): push. The API key is checked before
  the body is read; the body is streamed to a temporary file (413 past ``max_package_bytes``), then the push
  service runs and hands the version to the validation job. 201 at ``validating`` (nuget.org also answers
  201 Created while its asynchronous validation runs; NuGet clients take 201 and 202 alike): the package is served
  once the job made it ``available``, which ``GET /api/v1/packages/{id}/{version}`` tells. 400 refused package
  (one ``CODE: message`` line per problem in the body, nuget.org's text
  as the reason phrase); 401 missing or bad key, or a key (or account) that may not push this id (nuget.org
  answers 401 here, not 403); 409 existing version; 413 too large; 503 storage failure. Warnings ride in
  ``X-NuGet-Warning`` headers of the 201.
- ``DELETE /api/v2/package/{id}/{version}``: unlist (204); ``POST`` the same path: relist (200, also when it was
  listed). 401 bad key, 403 not allowed, 404 no such version.

Errors on these routes are ``text/plain`` with the message as the HTTP reason phrase too (what NuGet clients
show, as nuget.org does), see ``server.app`` and ``server.reason_phrase``.
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Depends, Path, Request, Response
from starlette.concurrency import run_in_threadpool

from nuseal.server.api.apikey_auth import NOT_AUTHORIZED, Caller
from nuseal.server.api.deps import service_context
from nuseal.server.api.uploads import receive_package
from nuseal.server.jobs.queue import JobQueue, open_huey
from nuseal.server.services import packages, push
from nuseal.server.services.context import ServiceContext
from nuseal.server.services.errors import AuthenticationError, NotFoundError
from nuseal.server.services.permissions import AccessDenied, Denial, Principal, Scope
from nuseal.server.services.push_checks import finding_text

router = APIRouter(prefix="/api/v2/package", tags=["NuGet V2 publish"])

NOT_FOUND: Final = "A package with ID '{0}' and version '{1}' does not exist."
PUSH_SCOPES: Final = frozenset({Scope.PUSH, Scope.PUSH_VERSION})

Id = Annotated[str, Path(max_length=128)]
Version = Annotated[str, Path(max_length=256)]


def _warning(text: str) -> str:
    """A header-safe single line (latin-1, no control characters)."""
    line = " ".join(text.split())
    return line.encode("latin-1", errors="replace").decode("latin-1")


def may_push(caller: Principal) -> Principal:
    """Refuse a key without a push scope before reading a body it may not push (401, as nuget.org)."""
    assert caller.key is not None
    if not caller.key.scopes & PUSH_SCOPES:
        raise AuthenticationError(f"{NOT_AUTHORIZED} (the API key's scopes do not allow pushing)")
    return caller


def job_queue(request: Request, ctx: ServiceContext) -> JobQueue:
    """The app's job queue (opened on first use: enqueuing needs no worker in this process)."""
    queue = getattr(request.app.state, "jobs", None)
    if queue is None:
        queue = JobQueue(open_huey(ctx.settings))
        request.app.state.jobs = queue
    return queue


async def put_package(request: Request, caller: Caller, ctx: Annotated[ServiceContext, Depends(service_context)]
                      ) -> Response:
    """Push a package: ``multipart/form-data`` whose first part is the ``.nupkg``."""
    principal = may_push(caller)
    path = await receive_package(request, ctx.settings.data_dir / "tmp", ctx.settings.max_package_bytes)
    try:
        outcome = await run_in_threadpool(push.push_package, ctx, principal, path,
                                          enqueue=job_queue(request, ctx).enqueue_validation)
    except AccessDenied as exc:
        raise AuthenticationError(f"{NOT_AUTHORIZED} ({exc.message})") from None
    finally:
        path.unlink(missing_ok=True)
    response = Response(status_code=201)
    for warning in outcome.warnings:  # nuget.org's texts; the library's findings with their NU code
        response.headers.append("X-NuGet-Warning", _warning(finding_text(warning)))
    return response


def _set_listed(ctx: ServiceContext, principal: Principal, package_id: str, version: str, *, listed: bool) -> None:
    assert principal.key is not None
    if Scope.UNLIST not in principal.key.scopes:
        raise AccessDenied(f"{NOT_AUTHORIZED} (the API key's scopes do not allow to unlist or relist)", Denial.SCOPE)
    try:
        packages.set_listed(ctx, principal, package_id, version, listed=listed)
    except NotFoundError:
        raise NotFoundError(NOT_FOUND.format(package_id, version)) from None
    except AccessDenied as exc:
        raise AccessDenied(f"{NOT_AUTHORIZED} ({exc.message})", exc.reason) from None


def delete_package(id: Id, version: Version, caller: Caller,
                   ctx: Annotated[ServiceContext, Depends(service_context)]) -> Response:
    """Unlist a version (NuGet's ``delete``): it stays installable by exact version but leaves search."""
    _set_listed(ctx, caller, id, version, listed=False)
    return Response(status_code=204)


def post_package(id: Id, version: Version, caller: Caller,
                 ctx: Annotated[ServiceContext, Depends(service_context)]) -> Response:
    """Relist a version."""
    _set_listed(ctx, caller, id, version, listed=True)
    return Response(status_code=200)


_PUSH_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "properties": {"package": {"type": "string", "format": "binary"}}}}}}}
_TEXT = {"content": {"text/plain": {"schema": {"type": "string"}}}}

for _path in ("", "/"):
    router.add_api_route(_path, put_package, methods=["PUT"], status_code=201, include_in_schema=_path == "",
                         openapi_extra=_PUSH_BODY, responses={
                             201: {"description": "Pushed"}, 400: {"description": "Refused package", **_TEXT},
                             401: {"description": "Missing or bad API key, or not allowed", **_TEXT},
                             409: {"description": "The version exists", **_TEXT},
                             413: {"description": "Too large", **_TEXT}})  # fmt: skip
router.add_api_route("/{id}/{version}", delete_package, methods=["DELETE"], status_code=204,
                     responses={401: {"description": "Missing or bad API key", **_TEXT},
                                403: {"description": "Not allowed", **_TEXT},
                                404: {"description": "No such version", **_TEXT}})  # fmt: skip
router.add_api_route("/{id}/{version}", post_package, methods=["POST"], status_code=200,
                     responses={401: {"description": "Missing or bad API key", **_TEXT},
                                403: {"description": "Not allowed", **_TEXT},
                                404: {"description": "No such version", **_TEXT}})  # fmt: skip
