"""The package status API (a nuseal extension): where one pushed version is in its life, for the people who
pushed it and for scripts waiting on the validation pipeline.

``status`` is ``validating`` (pushed, not served yet), ``available`` (served) or ``failed`` (refused after the
push was accepted; it may be pushed again). Until repository signing exists a push is validated synchronously,
so a successful push is ``available`` at once; the field is there for the asynchronous pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nuseal.server.db.models import Account
from nuseal.server.services.context import ServiceContext
from nuseal.server.services.errors import NotFoundError
from nuseal.server.services.packages import find_version
from nuseal.versioning import NuGetVersion


@dataclass(frozen=True)
class StatusFinding:
    code: str
    severity: str
    message: str


@dataclass(frozen=True)
class PackageStatus:
    id: str
    version: str  # normalized, with build metadata as pushed
    status: str
    listed: bool
    owners: tuple[str, ...]
    findings: tuple[StatusFinding, ...]
    pushed_at: datetime
    pushed_by: str | None  # the user who held the key (None if the account was deleted since)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "version": self.version, "status": self.status, "listed": self.listed,
                "owners": list(self.owners),
                "findings": [{"code": f.code, "severity": f.severity, "message": f.message} for f in self.findings],
                "pushed_at": self.pushed_at.isoformat(), "pushed_by": self.pushed_by}


def package_status(ctx: ServiceContext, package_id: str, version: str) -> PackageStatus:
    """The status of ``package_id`` ``version`` (any case, any equivalent version spelling);
    :class:`~.errors.NotFoundError` when it was never pushed (a string that is no version never was)."""
    if NuGetVersion.try_parse(version) is None:
        raise NotFoundError(f"no version '{version}' of package '{package_id}'")
    with ctx.db.reading() as session:
        row = find_version(session, package_id, version)
        registration = row.registration
        pusher = session.get(Account, row.pushed_by_id) if row.pushed_by_id is not None else None
        findings = tuple(StatusFinding(str(f.get("code")), str(f.get("severity")), str(f.get("message")))
                         for f in row.findings or [] if isinstance(f, dict))
        return PackageStatus(
            id=registration.package_id, version=row.full_version, status=row.status, listed=row.listed,
            owners=tuple(o.name for o in registration.owners), findings=findings, pushed_at=row.pushed_at,
            pushed_by=pusher.name if pusher is not None else None,
        )
