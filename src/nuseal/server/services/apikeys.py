"""API keys as nuget.org has them (§A.7): scopes, package-id globs, an owner account, expiry, a description.

A key is ``nsk_<key_id>_<secret>``: ``key_id`` is public (listing, revoking, logs), ``secret`` is 256 random bits
shown once at creation. Only ``sha256(salt + secret)`` is stored; with 256-bit secrets a fast salted hash is enough
(no password stretching needed) and it is compared in constant time. The key acts for its *owner* (a user, or an
organization) and is *held* by a user: the owner itself, or a member of the owning organization. Whether the
holder may still act for the owner is checked at every use by the permission matrix, not only at creation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nuseal.server.db.models import Account, ApiKey, Membership
from nuseal.server.services import audit
from nuseal.server.services.accounts import find_account, find_user
from nuseal.server.services.context import ServiceContext
from nuseal.server.services.errors import AuthenticationError, ConflictError, InvalidInputError, NotFoundError
from nuseal.server.services.permissions import KeyGrant, Operator, Principal, Scope, check_glob

PREFIX: Final = "nsk_"
DEFAULT_SCOPES: Final = (Scope.PUSH,)
DEFAULT_GLOBS: Final = ("*",)
DEFAULT_EXPIRY_DAYS: Final = 365
MAX_EXPIRY_DAYS: Final = 3650
MAX_DESCRIPTION: Final = 256
_TOKEN = re.compile(r"^nsk_(?P<key_id>[0-9a-f]{12})_(?P<secret>[a-z2-7]{52})$")


@dataclass(frozen=True)
class ApiKeyInfo:
    """A key as listed (never its secret)."""

    key_id: str
    owner: str
    holder: str
    scopes: tuple[str, ...]
    globs: tuple[str, ...]
    description: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    def state(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if now >= self.expires_at else "active"

    def to_dict(self, now: datetime) -> dict[str, Any]:
        def iso(moment: datetime | None) -> str | None:
            return None if moment is None else moment.isoformat()

        return {
            "key_id": self.key_id, "owner": self.owner, "holder": self.holder, "scopes": list(self.scopes),
            "globs": list(self.globs), "description": self.description, "state": self.state(now),
            "created_at": iso(self.created_at), "expires_at": iso(self.expires_at),
            "revoked_at": iso(self.revoked_at), "last_used_at": iso(self.last_used_at),
        }


@dataclass(frozen=True)
class NewApiKey:
    info: ApiKeyInfo
    token: str  # the plaintext key: shown once, never stored


def _info(row: ApiKey) -> ApiKeyInfo:
    return ApiKeyInfo(
        key_id=row.key_id, owner=row.owner.name, holder=row.holder.name, scopes=tuple(row.scopes),
        globs=tuple(row.globs), description=row.description, created_at=row.created_at, expires_at=row.expires_at,
        revoked_at=row.revoked_at, last_used_at=row.last_used_at,
    )


def _hash(salt: str, secret: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode("ascii")).hexdigest()


def parse_scopes(values: Iterable[str]) -> tuple[Scope, ...]:
    """Scope names to :class:`Scope` (duplicates dropped, order kept); :class:`InvalidInputError` for unknown ones."""
    scopes: list[Scope] = []
    for value in values:
        try:
            scope = Scope(value.strip().lower())
        except ValueError:
            known = ", ".join(s.value for s in Scope)
            raise InvalidInputError(f"unknown scope {value!r}: use {known}") from None
        if scope not in scopes:
            scopes.append(scope)
    return tuple(scopes)


def _globs(values: Sequence[str]) -> tuple[str, ...]:
    globs: list[str] = []
    for value in values:
        try:
            glob = check_glob(value.strip())
        except ValueError as exc:
            raise InvalidInputError(str(exc)) from None
        if glob not in globs:
            globs.append(glob)
    return tuple(globs) or DEFAULT_GLOBS


def _holder(session: Session, owner: Account, holder_name: str | None) -> Account:
    if not owner.is_organization:
        if holder_name is not None and holder_name.lower() != owner.lower_name:
            raise InvalidInputError(f"a key acting for the user {owner.name} is held by {owner.name} only")
        return owner
    if holder_name is None:
        raise InvalidInputError(f"a key acting for the organization {owner.name} needs the member who holds it")
    holder = find_user(session, holder_name)
    if session.get(Membership, (owner.id, holder.id)) is None:
        raise InvalidInputError(f"{holder.name} is not a member of {owner.name}")
    return holder


def create(
    ctx: ServiceContext,
    actor: Operator,
    owner_name: str,
    *,
    holder_name: str | None = None,
    scopes: Sequence[str] = (),
    globs: Sequence[str] = (),
    expires_in_days: int = DEFAULT_EXPIRY_DAYS,
    description: str = "",
) -> NewApiKey:
    """Create a key acting for ``owner_name``; the returned token is the only copy of the secret."""
    chosen_scopes = parse_scopes(scopes) or DEFAULT_SCOPES
    chosen_globs = _globs(globs)
    if not 1 <= expires_in_days <= MAX_EXPIRY_DAYS:
        raise InvalidInputError(f"expiry must be 1 to {MAX_EXPIRY_DAYS} days, got {expires_in_days}")
    if len(description) > MAX_DESCRIPTION:
        raise InvalidInputError(f"the description is longer than {MAX_DESCRIPTION} characters")
    at = ctx.now()
    secret = base64.b32encode(secrets.token_bytes(32)).decode("ascii").rstrip("=").lower()
    salt = secrets.token_hex(16)
    with ctx.db.transaction() as session:
        owner = find_account(session, owner_name)
        holder = _holder(session, owner, holder_name)
        row = ApiKey(
            key_id=secrets.token_hex(6), owner_id=owner.id, holder_id=holder.id, salt=salt,
            secret_hash=_hash(salt, secret), scopes=[s.value for s in chosen_scopes], globs=list(chosen_globs),
            description=description, created_at=at, expires_at=at + timedelta(days=expires_in_days),
            revoked_at=None, last_used_at=None,
        )
        session.add(row)
        try:
            session.flush()
        except IntegrityError:  # 48-bit key ids: a collision is rare enough to just ask again
            raise ConflictError("key id collision, please retry") from None
        session.refresh(row, ["owner", "holder"])
        info = _info(row)
        audit.record(session, actor, audit.APIKEY_CREATE, f"{owner.name}/{row.key_id}", at=at,
                     after=info.to_dict(at))
    return NewApiKey(info=info, token=f"{PREFIX}{info.key_id}_{secret}")


def list_keys(ctx: ServiceContext, owner_name: str) -> list[ApiKeyInfo]:
    """Keys acting for ``owner_name``, oldest first (revoked and expired ones included)."""
    with ctx.db.reading() as session:
        owner = find_account(session, owner_name)
        rows = session.scalars(select(ApiKey).where(ApiKey.owner_id == owner.id).order_by(ApiKey.id))
        return [_info(row) for row in rows]


def revoke(ctx: ServiceContext, actor: Operator, owner_name: str, key_id: str) -> tuple[ApiKeyInfo, bool]:
    """Revoke a key of ``owner_name``; returns it and whether it changed (``False``: it was already revoked)."""
    at = ctx.now()
    with ctx.db.transaction() as session:
        owner = find_account(session, owner_name)
        row = session.scalars(
            select(ApiKey).where(ApiKey.owner_id == owner.id, ApiKey.key_id == key_id.strip().lower())
        ).one_or_none()
        if row is None:
            raise NotFoundError(f"no API key '{key_id}' acting for {owner.name}")
        if row.revoked_at is not None:
            return _info(row), False
        before = _info(row).to_dict(at)
        row.revoked_at = at
        info = _info(row)
        audit.record(session, actor, audit.APIKEY_REVOKE, f"{owner.name}/{row.key_id}", at=at, before=before,
                     after=info.to_dict(at))
    return info, True


def authenticate(ctx: ServiceContext, token: str) -> Principal:
    """The principal a plaintext key stands for; :class:`AuthenticationError` if malformed, unknown, wrong,
    revoked or expired. Records the time of use."""
    match = _TOKEN.match(token.strip())
    if match is None:
        raise AuthenticationError("the API key is malformed")
    at = ctx.now()
    with ctx.db.transaction() as session:
        row = session.scalars(select(ApiKey).where(ApiKey.key_id == match["key_id"])).one_or_none()
        if row is None or not hmac.compare_digest(row.secret_hash, _hash(row.salt, match["secret"])):
            raise AuthenticationError("the API key is not valid")
        if row.revoked_at is not None:
            raise AuthenticationError(f"the API key {row.key_id} was revoked")
        if at >= row.expires_at:
            raise AuthenticationError(f"the API key {row.key_id} has expired")
        row.last_used_at = at
        holder, owner = row.holder.name, row.owner.name
        label = holder if holder == owner else f"{holder} for {owner}"
        known = {scope.value for scope in Scope}
        grant = KeyGrant(
            key_id=row.key_id,
            scopes=frozenset(Scope(s) for s in row.scopes if s in known),
            globs=tuple(row.globs),
        )
        return Principal(user_id=row.holder_id, account_id=row.owner_id, label=f"{label} (key {row.key_id})",
                         key=grant)
