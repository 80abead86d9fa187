"""Package registrations, their owners and versions: queries, ownership, unlist/relist and operator deletion.

The first pusher of a new id becomes its owner (:func:`register`, called by the push path inside its own
transaction). Owners (users or organizations) add and remove co-owners; a package never loses its last owner.
A hard delete (operators only) removes the database row first and the blobs after the commit, so a crash in
between leaves an unreferenced blob (never served: the feed serves only what the database points at), not a
row pointing at nothing. Every change to what the feed serves (listing, owners, deletion) bumps the feed-state
serial in its transaction, so the read caches of every server process drop what they rendered before.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nuseal.server.db.models import Account, PackageOwner, PackageRegistration, PackageVersion
from nuseal.server.services import audit, feed_state, required_signers, row_locks
from nuseal.server.services.accounts import find_account
from nuseal.server.services.context import ServiceContext
from nuseal.server.services.errors import ConflictError, InvalidInputError, NotFoundError
from nuseal.server.services.permissions import Action, Actor, Operator, authorize
from nuseal.server.storage import StorageError
from nuseal.versioning import normalize_version

_log = logging.getLogger(__name__)

#: NuGet's PackageIdValidator: word characters separated by single dots or dashes, at most 100 characters.
_PACKAGE_ID = re.compile(r"^\w+(?:[.-]\w+)*$")
MAX_ID_LENGTH: Final = 100


@dataclass(frozen=True)
class VersionInfo:
    version: str
    full_version: str
    status: str
    listed: bool
    pushed_at: datetime
    package_size: int | None

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "full_version": self.full_version, "status": self.status,
                "listed": self.listed, "pushed_at": self.pushed_at.isoformat(), "size": self.package_size}


@dataclass(frozen=True)
class PackageInfo:
    id: str
    owners: tuple[str, ...]
    versions: tuple[VersionInfo, ...]
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "owners": list(self.owners), "created_at": self.created_at.isoformat(),
                "versions": [v.to_dict() for v in self.versions]}


def check_package_id(package_id: str) -> str:
    if len(package_id) > MAX_ID_LENGTH or not _PACKAGE_ID.match(package_id):
        raise InvalidInputError(
            f"invalid package id {package_id!r}: letters, digits and '_', separated by single '.' or '-', "
            f"at most {MAX_ID_LENGTH} characters"
        )
    return package_id


def lower_version(version: str) -> str:
    """The key a version is stored under: NuGet-normalized (``1.0`` = ``1.0.0``, no ``+metadata``), lower case."""
    try:
        return normalize_version(version).lower()
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None


def find_registration(session: Session, package_id: str) -> PackageRegistration:
    row = session.scalars(
        select(PackageRegistration).where(PackageRegistration.lower_id == package_id.lower())
    ).one_or_none()
    if row is None:
        raise NotFoundError(f"no package '{package_id}'")
    return row


def find_version(session: Session, package_id: str, version: str) -> PackageVersion:
    registration = find_registration(session, package_id)
    row = session.scalars(
        select(PackageVersion).where(
            PackageVersion.registration_id == registration.id, PackageVersion.lower_version == lower_version(version)
        )
    ).one_or_none()
    if row is None:
        raise NotFoundError(f"no version '{version}' of package '{registration.package_id}'")
    return row


def register(session: Session, package_id: str, owner: Account, *, at: datetime) -> PackageRegistration:
    """Create the registration of a new id with its first owner (in the caller's transaction).

    :class:`ConflictError` when the id (any case) exists, including when another push created it concurrently.
    """
    check_package_id(package_id)
    registration = PackageRegistration(package_id=package_id, lower_id=package_id.lower(), created_at=at)
    try:
        # Added inside the savepoint: begin_nested() flushes what is pending first, and a conflicting INSERT
        # flushed there would fail (and roll back) the caller's whole transaction instead of the savepoint.
        with session.begin_nested():
            session.add(registration)
            session.flush()
    except IntegrityError:
        raise ConflictError(f"the package id '{package_id}' is already registered") from None
    session.add(PackageOwner(registration_id=registration.id, account_id=owner.id))
    session.flush()
    return registration


def _versions(session: Session, registration: PackageRegistration) -> tuple[VersionInfo, ...]:
    rows = session.scalars(
        select(PackageVersion).where(PackageVersion.registration_id == registration.id).order_by(PackageVersion.id)
    )
    return tuple(
        VersionInfo(r.version, r.full_version, r.status, r.listed, r.pushed_at, r.package_size) for r in rows
    )


def list_packages(ctx: ServiceContext) -> list[PackageInfo]:
    """Every registration with its owners and versions, by id."""
    with ctx.db.reading() as session:
        registrations = session.scalars(select(PackageRegistration).order_by(PackageRegistration.lower_id))
        return [
            PackageInfo(r.package_id, tuple(o.name for o in r.owners), _versions(session, r), r.created_at)
            for r in registrations
        ]


def list_owners(ctx: ServiceContext, package_id: str) -> list[str]:
    with ctx.db.reading() as session:
        return [owner.name for owner in find_registration(session, package_id).owners]


def add_owner(ctx: ServiceContext, actor: Actor, package_id: str, account_name: str) -> bool:
    """Make ``account_name`` an owner; ``False`` when it already was one."""
    at = ctx.now()
    with ctx.db.transaction() as session:
        registration = find_registration(session, package_id)
        row_locks.lock_registration(session, registration)  # pushes judged on the current owners finish first
        authorize(session, actor, Action.MANAGE_OWNERS, package_id=registration.package_id)
        account = find_account(session, account_name)
        before = [o.name for o in registration.owners]
        if session.get(PackageOwner, (registration.id, account.id)) is not None:
            return False
        session.add(PackageOwner(registration_id=registration.id, account_id=account.id))
        session.flush()
        session.expire(registration, ["owners"])
        feed_state.bump(session)  # search results list the owners
        audit.record(session, actor, audit.OWNER_ADD, registration.package_id, at=at,
                     before={"owners": before}, after={"owners": [o.name for o in registration.owners]})
    return True


def remove_owner(ctx: ServiceContext, actor: Actor, package_id: str, account_name: str) -> None:
    """Remove an owner; :class:`ConflictError` for the last one, :class:`NotFoundError` for a non-owner."""
    at = ctx.now()
    with ctx.db.transaction() as session:
        registration = find_registration(session, package_id)
        row_locks.lock_registration(session, registration)  # pushes judged on the current owners finish first
        authorize(session, actor, Action.MANAGE_OWNERS, package_id=registration.package_id)
        account = find_account(session, account_name)
        link = session.get(PackageOwner, (registration.id, account.id))
        if link is None:
            raise NotFoundError(f"{account.name} is not an owner of '{registration.package_id}'")
        before = [o.name for o in registration.owners]
        if len(before) <= 1:
            raise ConflictError(f"{account.name} is the last owner of '{registration.package_id}': add another first")
        session.delete(link)
        session.flush()
        session.expire(registration, ["owners"])
        feed_state.bump(session)
        audit.record(session, actor, audit.OWNER_REMOVE, registration.package_id, at=at,
                     before={"owners": before}, after={"owners": [o.name for o in registration.owners]})
        required_signers.reset_if_signer(session, actor, registration, account, at=at)  # issue 10: no stale signer


def set_listed(ctx: ServiceContext, actor: Actor, package_id: str, version: str, *, listed: bool) -> bool:
    """Unlist (``listed=False``) or relist a version; ``False`` when it already was in that state."""
    at = ctx.now()
    with ctx.db.transaction() as session:
        row = find_version(session, package_id, version)
        authorize(session, actor, Action.UNLIST, package_id=row.registration.package_id)
        if row.listed == listed:
            return False
        row.listed = listed
        feed_state.bump(session)
        audit.record(session, actor, audit.VERSION_RELIST if listed else audit.VERSION_UNLIST,
                     f"{row.registration.package_id}/{row.version}", at=at,
                     before={"listed": not listed}, after={"listed": listed})
    return True


def delete_version(ctx: ServiceContext, actor: Operator, package_id: str, version: str) -> VersionInfo:
    """Hard-delete a version (operators only): its row, then its blobs. The registration and owners stay."""
    at = ctx.now()
    with ctx.db.transaction() as session:
        row = find_version(session, package_id, version)
        info = VersionInfo(row.version, row.full_version, row.status, row.listed, row.pushed_at, row.package_size)
        blobs = [key for key in (row.package_blob, row.upload_blob, row.nuspec_blob) if key]
        subject = f"{row.registration.package_id}/{row.version}"
        session.delete(row)
        feed_state.bump(session)
        audit.record(session, actor, audit.VERSION_DELETE, subject, at=at,
                     before=info.to_dict() | {"blobs": blobs}, after=None)
    for key in blobs:  # after the commit: a failure here leaves an orphan blob, which is never served
        try:
            ctx.blobs.delete(key)
        except (StorageError, OSError):  # the deletion itself is done; the orphan is logged for clean-up
            _log.exception("could not delete blob %s of %s", key, subject)
    return info
