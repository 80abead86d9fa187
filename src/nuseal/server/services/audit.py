"""The audit log: every change to accounts, keys, owners and packages writes one event in the same transaction.

An event says who (account name, or ``admin-cli`` / ``system``), when, what (a ``domain:subject:action`` tag,
warehouse style), to what (subject) and the state before and after as JSON (never secrets).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from nuseal.server.db.models import AuditEvent
from nuseal.server.services.context import ServiceContext
from nuseal.server.services.permissions import Actor

SCHEMA_MIGRATE: Final = "database:schema:migrate"
USER_ADD: Final = "account:user:add"
ORGANIZATION_ADD: Final = "account:organization:add"
MEMBER_ADD: Final = "account:member:add"
MEMBER_UPDATE: Final = "account:member:update"
MEMBER_REMOVE: Final = "account:member:remove"
APIKEY_CREATE: Final = "account:apikey:create"
APIKEY_REVOKE: Final = "account:apikey:revoke"
OWNER_ADD: Final = "package:owner:add"
OWNER_REMOVE: Final = "package:owner:remove"
VERSION_UNLIST: Final = "package:version:unlist"
VERSION_RELIST: Final = "package:version:relist"
VERSION_DELETE: Final = "package:version:delete"


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    subject: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "before": self.before,
            "after": self.after,
        }


def record(
    session: Session,
    actor: Actor,
    action: str,
    subject: str,
    *,
    at: datetime,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """Add one event to the session's transaction (it commits or rolls back with the change it describes)."""
    session.add(AuditEvent(at=at, actor=actor.label, action=action, subject=subject, before=before, after=after))


def list_events(ctx: ServiceContext, *, limit: int | None = None) -> list[AuditEntry]:
    """Events oldest first (the last ``limit`` ones when given)."""
    with ctx.db.reading() as session:
        query = select(AuditEvent).order_by(AuditEvent.id.desc())
        if limit is not None:
            query = query.limit(limit)
        entries = [
            AuditEntry(row.id, row.at, row.actor, row.action, row.subject, row.before, row.after)
            for row in session.scalars(query)
        ]
    return entries[::-1]
