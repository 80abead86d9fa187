"""Accounts: users, organizations and their memberships (admin or collaborator), as on nuget.org (§A.1, §A.7).

Users and organizations share one name space, compared case-insensitively. An organization always keeps at
least one admin. Removing a member revokes the API keys that member holds for the organization, so a later
re-invitation does not bring old keys back. In this issue these changes are made by the operator only.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nuseal.server.db.models import Account, AccountKind, ApiKey, Membership
from nuseal.server.services import audit
from nuseal.server.services.context import ServiceContext
from nuseal.server.services.errors import ConflictError, InvalidInputError, NotFoundError
from nuseal.server.services.permissions import Operator

_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,62}[A-Za-z0-9])?$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
#: Names the audit log uses for non-account actors.
RESERVED_NAMES: Final = frozenset({"admin-cli", "system"})


@dataclass(frozen=True)
class AccountInfo:
    id: int
    name: str
    kind: str
    email: str | None
    is_site_admin: bool
    created_at: datetime

    @classmethod
    def of(cls, row: Account) -> AccountInfo:
        return cls(row.id, row.name, row.kind, row.email, row.is_site_admin, row.created_at)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "email": self.email, "is_site_admin": self.is_site_admin,
                "created_at": self.created_at.isoformat()}


@dataclass(frozen=True)
class MemberInfo:
    name: str
    is_admin: bool

    @property
    def role(self) -> str:
        return "admin" if self.is_admin else "collaborator"


class MembershipChange(enum.Enum):
    ADDED = "added"
    ROLE_CHANGED = "role changed"
    UNCHANGED = "unchanged"


def check_name(name: str) -> str:
    """An account name: 1-64 letters, digits, ``_ . -``, starting and ending with a letter or digit."""
    if not _NAME.match(name):
        raise InvalidInputError(
            f"invalid account name {name!r}: use 1-64 letters, digits, '_', '.' or '-', "
            "starting and ending with a letter or digit"
        )
    if name.lower() in RESERVED_NAMES:
        raise InvalidInputError(f"the account name {name!r} is reserved")
    return name


def find_account(session: Session, name: str) -> Account:
    """The account named ``name`` (any case); :class:`NotFoundError` when there is none."""
    row = session.scalars(select(Account).where(Account.lower_name == name.lower())).one_or_none()
    if row is None:
        raise NotFoundError(f"no account named '{name}'")
    return row


def find_user(session: Session, name: str) -> Account:
    row = find_account(session, name)
    if row.is_organization:
        raise InvalidInputError(f"'{row.name}' is an organization, not a user")
    return row


def find_organization(session: Session, name: str) -> Account:
    row = find_account(session, name)
    if not row.is_organization:
        raise InvalidInputError(f"'{row.name}' is a user, not an organization")
    return row


def _create(
    session: Session, name: str, kind: AccountKind, email: str | None, site_admin: bool, at: datetime
) -> Account:
    check_name(name)
    if email is not None and not _EMAIL.match(email):
        raise InvalidInputError(f"invalid email address {email!r}")
    if session.scalars(select(Account.id).where(Account.lower_name == name.lower())).first() is not None:
        raise ConflictError(f"the name '{name}' is already taken")
    row = Account(name=name, lower_name=name.lower(), kind=kind.value, email=email, is_site_admin=site_admin,
                  created_at=at)
    session.add(row)
    try:
        session.flush()
    except IntegrityError:  # a concurrent creation of the same name
        raise ConflictError(f"the name '{name}' is already taken") from None
    return row


def add_user(
    ctx: ServiceContext, actor: Operator, name: str, *, email: str | None = None, site_admin: bool = False
) -> AccountInfo:
    """Create a user; :class:`ConflictError` when the name (any case) is taken by a user or an organization."""
    at = ctx.now()
    with ctx.db.transaction() as session:
        row = _create(session, name, AccountKind.USER, email, site_admin, at)
        info = AccountInfo.of(row)
        audit.record(session, actor, audit.USER_ADD, row.name, at=at, after=info.to_dict())
    return info


def add_organization(
    ctx: ServiceContext, actor: Operator, name: str, *, admin: str, email: str | None = None
) -> AccountInfo:
    """Create an organization with ``admin`` (an existing user) as its first admin."""
    at = ctx.now()
    with ctx.db.transaction() as session:
        first_admin = find_user(session, admin)
        row = _create(session, name, AccountKind.ORGANIZATION, email, False, at)
        session.add(Membership(organization_id=row.id, member_id=first_admin.id, is_admin=True))
        info = AccountInfo.of(row)
        audit.record(session, actor, audit.ORGANIZATION_ADD, row.name, at=at,
                     after=info.to_dict() | {"admins": [first_admin.name]})
    return info


def _admin_count(session: Session, organization: Account) -> int:
    return session.scalar(
        select(func.count()).select_from(Membership).where(
            Membership.organization_id == organization.id, Membership.is_admin.is_(True)
        )
    ) or 0


def set_member(ctx: ServiceContext, actor: Operator, organization: str, user: str, *, admin: bool) -> MembershipChange:
    """Add ``user`` to ``organization`` with the given role, or change the role of an existing member."""
    at = ctx.now()
    with ctx.db.transaction() as session:
        org, member = find_organization(session, organization), find_user(session, user)
        subject = f"{org.name}/{member.name}"
        existing = session.get(Membership, (org.id, member.id))
        role = "admin" if admin else "collaborator"
        if existing is None:
            session.add(Membership(organization_id=org.id, member_id=member.id, is_admin=admin))
            audit.record(session, actor, audit.MEMBER_ADD, subject, at=at, after={"role": role})
            return MembershipChange.ADDED
        if existing.is_admin == admin:
            return MembershipChange.UNCHANGED
        if existing.is_admin and _admin_count(session, org) <= 1:
            raise ConflictError(f"{member.name} is the last admin of {org.name}: make another member admin first")
        before = {"role": "admin" if existing.is_admin else "collaborator"}
        existing.is_admin = admin
        audit.record(session, actor, audit.MEMBER_UPDATE, subject, at=at, before=before, after={"role": role})
        return MembershipChange.ROLE_CHANGED


def remove_member(ctx: ServiceContext, actor: Operator, organization: str, user: str) -> int:
    """Remove ``user`` from ``organization``; returns how many of their keys for it were revoked."""
    at = ctx.now()
    with ctx.db.transaction() as session:
        org, member = find_organization(session, organization), find_user(session, user)
        existing = session.get(Membership, (org.id, member.id))
        if existing is None:
            raise NotFoundError(f"{member.name} is not a member of {org.name}")
        if existing.is_admin and _admin_count(session, org) <= 1:
            raise ConflictError(f"{member.name} is the last admin of {org.name}: make another member admin first")
        role = "admin" if existing.is_admin else "collaborator"
        session.delete(existing)
        keys = list(session.scalars(select(ApiKey).where(
            ApiKey.owner_id == org.id, ApiKey.holder_id == member.id, ApiKey.revoked_at.is_(None)
        ).order_by(ApiKey.id)))  # fmt: skip
        for key in keys:
            key.revoked_at = at
        audit.record(session, actor, audit.MEMBER_REMOVE, f"{org.name}/{member.name}", at=at,
                     before={"role": role}, after={"revoked_api_keys": [key.key_id for key in keys]})
    return len(keys)


def list_members(ctx: ServiceContext, organization: str) -> list[MemberInfo]:
    with ctx.db.reading() as session:
        org = find_organization(session, organization)
        rows = session.execute(
            select(Account.name, Membership.is_admin)
            .join(Membership, Membership.member_id == Account.id)
            .where(Membership.organization_id == org.id)
            .order_by(Account.lower_name)
        )
        return [MemberInfo(name, is_admin) for name, is_admin in rows]


def get_account(ctx: ServiceContext, name: str) -> AccountInfo:
    with ctx.db.reading() as session:
        return AccountInfo.of(find_account(session, name))
