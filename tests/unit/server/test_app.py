"""The application's one error mapping: domain errors become 4xx problem documents, never tracebacks.

(The HTTP tests of the real server are in tests/integration/server/test_serve.py; this checks the mapping table
in-process, on a throwaway route, because no route of this issue raises every kind yet.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from tests.support.server_fixtures import FakeClock, make_context

from nuseal.codes import NuCode
from nuseal.errors import NusealError, PackageFormatError
from nuseal.server.app import create_app, status_of
from nuseal.server.db.session import Database
from nuseal.server.services.context import ServiceContext
from nuseal.server.services.errors import AuthenticationError, ConflictError, InvalidInputError, NotFoundError
from nuseal.server.services.permissions import AccessDenied, Denial
from nuseal.server.storage import BlobTooLargeError, RangeNotSatisfiableError

CASES: list[tuple[NusealError, int]] = [
    (AuthenticationError("the API key is not valid"), 401),
    (AccessDenied("bob may not push", Denial.PACKAGE), 403),
    (NotFoundError("no package 'X'"), 404),
    (ConflictError("already exists"), 409),
    (BlobTooLargeError("too large"), 413),
    (RangeNotSatisfiableError("bad range"), 416),
    (InvalidInputError("bad id"), 400),
    (PackageFormatError("not a zip", NuCode.NU3005), 400),
]


def _name(value: object) -> str:
    return type(value).__name__ if isinstance(value, Exception) else str(value)


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[ServiceContext]:
    db = Database(f"sqlite:///{tmp_path / 'app.db'}")
    yield make_context(db, tmp_path, FakeClock())
    db.dispose()


@pytest.mark.parametrize(("error", "status"), CASES, ids=_name)
def test_domain_errors_map_to_problem_documents(ctx: ServiceContext, error: NusealError, status: int) -> None:
    assert status_of(error) == status
    app = create_app(ctx, public_url="http://127.0.0.1:1")

    def fail() -> None:
        raise error

    app.add_api_route("/fail", fail)

    async def get() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            return await client.get("/fail")

    response = anyio.run(get)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["detail"] == error.message and body["title"] == type(error).__name__
    assert body.get("code") == (error.code.value if error.code else None)
