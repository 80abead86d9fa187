"""``nuseal serve --demo``: a feed that is ready to use at once, through the same services as any push.

Seeds a user (:data:`DEMO_USER`), a new API key for it on every start (a key is shown only once, so a restart
prints a fresh one; earlier demo keys keep working until they expire), and a small unsigned package
(:data:`DEMO_PACKAGE_ID` :data:`DEMO_VERSION`) pushed with that key by :func:`push.push_package`, the code path of
``PUT /api/v2/package``. Safe to run again on the same data: the user and the package are created once.
"""

from __future__ import annotations

import contextlib
import io
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from nuseal.server.services import accounts, apikeys, push
from nuseal.server.services.context import ServiceContext
from nuseal.server.services.errors import ConflictError, NotFoundError
from nuseal.server.services.permissions import Operator
from nuseal.server.services.status import package_status

DEMO_USER: Final = "demo"
DEMO_PACKAGE_ID: Final = "Nuseal.Demo"
DEMO_VERSION: Final = "1.0.0"
_OPERATOR: Final = Operator("demo")
_NUSPEC: Final = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<package xmlns="http://schemas.microsoft.com/packaging/2013/05/nuspec.xsd"><metadata>'
    f"<id>{DEMO_PACKAGE_ID}</id><version>{DEMO_VERSION}</version><authors>nuseal</authors>"
    "<description>The package nuseal serve --demo pushes to its feed.</description>"
    "<tags>nuseal demo</tags></metadata></package>"
)


@dataclass(frozen=True)
class DemoFeed:
    user: str
    api_key: str  # plaintext, shown once
    package_id: str
    version: str
    status: str  # of the demo version: 'available', or 'validating' while a job finishes it


def demo_package() -> bytes:
    """The demo ``.nupkg``: a nuspec and one text file."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{DEMO_PACKAGE_ID}.nuspec", _NUSPEC)
        archive.writestr("content/readme.txt", "Pushed by nuseal serve --demo.\n")
    return buffer.getvalue()


def _status(ctx: ServiceContext) -> str | None:
    try:
        return package_status(ctx, DEMO_PACKAGE_ID, DEMO_VERSION).status
    except NotFoundError:
        return None


def seed(ctx: ServiceContext, scratch: Path) -> DemoFeed:
    """The demo user (created once), a new push/unlist key for it, and the demo package (pushed once)."""
    with contextlib.suppress(ConflictError):  # seeded by an earlier start
        accounts.add_user(ctx, _OPERATOR, DEMO_USER)
    created = apikeys.create(ctx, _OPERATOR, DEMO_USER, description="nuseal serve --demo", expires_in_days=365)
    status = _status(ctx)
    if status is None or status == "failed":
        scratch.mkdir(parents=True, exist_ok=True)
        upload = scratch / "demo-upload.nupkg"
        upload.write_bytes(demo_package())
        try:
            status = push.push_package(ctx, apikeys.authenticate(ctx, created.token), upload).status
        finally:
            upload.unlink(missing_ok=True)
    return DemoFeed(DEMO_USER, created.token, DEMO_PACKAGE_ID, DEMO_VERSION, status)


def wait_available(ctx: ServiceContext, seeded: DemoFeed, *, timeout: float = 60.0) -> DemoFeed:
    """``seeded`` once its package is ``available`` (a job worker finishes a ``validating`` push), or as it is
    after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    status = seeded.status
    while status == "validating" and time.monotonic() < deadline:
        time.sleep(0.2)
        status = _status(ctx) or status
    return DemoFeed(seeded.user, seeded.api_key, seeded.package_id, seeded.version, status)
