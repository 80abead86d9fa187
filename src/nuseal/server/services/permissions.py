"""THE permission matrix (spec server.md §A.7) as one table, and the one :func:`authorize` every service calls.

As in NuGetGallery (``ActionsRequiringPermissions``), an action is checked in two steps:

1. the *acting user* against the *account it acts for* (the API key's owner, or the account picked in the UI):
   the user is that account (``OWNER``), an admin or a collaborator of that organization, or a site admin;
2. for package actions, the *account acted for* against the *package's owners*: it is an owner, an admin or a
   collaborator of an owning organization, or a site admin.

An API key narrows this further: one of its scopes must grant the action and, for package actions, one of its
globs must match the package id (nuget.org's ``ApiScopeEvaluator``). Checking that the key itself is valid
(revoked, expired) is :func:`nuseal.server.services.apikeys.authenticate`'s job, before any of this.

The operator (``nuseal admin``, a shell on the server) is not in the matrix: it may do everything, audited as such.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from nuseal.server.db.models import Account, Membership, PackageRegistration
from nuseal.server.services.errors import DomainError, NotFoundError


class Action(enum.Enum):
    PUSH_NEW_ID = "push a new package id"
    PUSH_NEW_VERSION = "push a new version"
    UNLIST = "unlist or relist a version"
    MANAGE_OWNERS = "add or remove package owners"
    MANAGE_SIGNER = "set the required signer"
    VIEW_SIGNER = "view the required signer"
    MANAGE_CERTIFICATES = "register or remove account certificates"
    VIEW_ACCOUNT = "view the account"


class Relation(enum.Flag):
    """How one party relates to another (an empty flag is a stranger)."""

    OWNER = enum.auto()  # the same account (step 1) / one of the package owners (step 2)
    ORG_ADMIN = enum.auto()
    ORG_COLLABORATOR = enum.auto()
    SITE_ADMIN = enum.auto()


class Scope(str, enum.Enum):
    """API key scopes: nuget.org's three, plus the management scopes of issue 10 (never granted by default)."""

    PUSH = "package:push"  # new ids and new versions
    PUSH_VERSION = "package:pushversion"  # new versions of ids the owner already has
    UNLIST = "package:unlist"
    CERTIFICATES = "account:certificates"
    SIGNER = "package:signer"


class Target(enum.Enum):
    NEW_PACKAGE = "new package"  # the id has no registration yet: no owners to check (no reserved prefixes)
    PACKAGE = "package"
    ACCOUNT = "account"


@dataclass(frozen=True)
class Rule:
    acting_for: Relation  # step 1: acting user → account acted for
    on_package: Relation  # step 2: account acted for → package owners (unused unless target is PACKAGE)
    key_scopes: frozenset[Scope]  # scopes of an API key that grant the action; empty = never through a key
    target: Target


_O, _A, _C, _S = Relation.OWNER, Relation.ORG_ADMIN, Relation.ORG_COLLABORATOR, Relation.SITE_ADMIN
_NONE = Relation(0)

#: The matrix. Rows from NuGetGallery's ActionsRequiringPermissions (UploadNewPackageId, UploadNewPackageVersion,
#: UnlistOrRelistPackage, ManagePackageOwnership, ManagePackageRequiredSigner, ManageAccount, ViewAccount) and the
#: scopes its ApiController asks for.
MATRIX: Final[Mapping[Action, Rule]] = {
    Action.PUSH_NEW_ID: Rule(_O | _A | _C, _NONE, frozenset({Scope.PUSH}), Target.NEW_PACKAGE),
    Action.PUSH_NEW_VERSION: Rule(_O | _A | _C, _O, frozenset({Scope.PUSH, Scope.PUSH_VERSION}), Target.PACKAGE),
    Action.UNLIST: Rule(_O | _A | _C, _O | _S, frozenset({Scope.UNLIST}), Target.PACKAGE),
    Action.MANAGE_OWNERS: Rule(_O | _A, _O | _S, frozenset(), Target.PACKAGE),
    Action.MANAGE_SIGNER: Rule(_O | _A, _O | _A, frozenset({Scope.SIGNER}), Target.PACKAGE),
    Action.MANAGE_CERTIFICATES: Rule(_O | _A, _NONE, frozenset({Scope.CERTIFICATES}), Target.ACCOUNT),
    # ViewAccount includes listing certificates; through a key only with the certificates scope.
    Action.VIEW_ACCOUNT: Rule(_O | _A | _C | _S, _NONE, frozenset({Scope.CERTIFICATES}), Target.ACCOUNT),
    # nuseal's own row (nuget.org shows the signer on its Manage Packages page to the owners' members and to
    # site admins): whoever may push to or administer the package may see who must sign it.
    Action.VIEW_SIGNER: Rule(_O | _A | _C, _O | _A | _C | _S, frozenset({Scope.SIGNER}), Target.PACKAGE),
}


class Denial(enum.Enum):
    """Why :func:`authorize` refused; the API maps SCOPE/GLOB/ACCOUNT/PACKAGE to 401 on push, 403 elsewhere."""

    SCOPE = "scope"
    GLOB = "glob"
    ACCOUNT = "account"
    PACKAGE = "package"


class AccessDenied(DomainError):
    def __init__(self, message: str, reason: Denial) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class KeyGrant:
    """What an authenticated API key allows: its scopes and package-id globs."""

    key_id: str
    scopes: frozenset[Scope]
    globs: tuple[str, ...]


@dataclass(frozen=True)
class Principal:
    """A person acting for an account: through an API key (``key``) or a signed-in session (``key`` is None)."""

    user_id: int
    account_id: int
    label: str  # for the audit log, e.g. "alice" or "alice for contoso (key 1a2b3c)"
    key: KeyGrant | None = None


@dataclass(frozen=True)
class Operator:
    """The server's operator (``nuseal admin``): outside the matrix, always allowed, audited under ``label``."""

    label: str = "admin-cli"


Actor = Principal | Operator


@dataclass(frozen=True)
class Party:
    """The facts about one account the matrix looks at."""

    id: int
    name: str
    is_site_admin: bool = False
    admins: frozenset[int] = frozenset()  # for organizations: user ids of admins
    collaborators: frozenset[int] = frozenset()  # for organizations: user ids of collaborators


def relation(user: Party, account: Party) -> Relation:
    """Step 1: how ``user`` relates to ``account``."""
    found = _S if user.is_site_admin else _NONE
    if user.id == account.id:
        found |= _O
    if user.id in account.admins:
        found |= _A
    if user.id in account.collaborators:
        found |= _C
    return found


def relation_to_owners(account: Party, owners: Iterable[Party]) -> Relation:
    """Step 2: how ``account`` relates to a package owned by ``owners``."""
    found = _S if account.is_site_admin else _NONE
    for owner in owners:
        found |= relation(account, owner) & ~_S
    return found


_GLOB_CHARS = re.compile(r"^[A-Za-z0-9_.*-]+$")


def check_glob(pattern: str) -> str:
    """A package-id glob: id characters and ``*`` (any run of characters); ``ValueError`` otherwise."""
    if not _GLOB_CHARS.match(pattern) or len(pattern) > 128:
        raise ValueError(f"invalid package glob {pattern!r}: use package id characters and '*'")
    return pattern


def glob_matches(pattern: str, package_id: str) -> bool:
    """nuget.org's ``MatchesPackagePattern``: ``*`` is any run of characters, case-insensitive, whole id."""
    regex = "^" + ".*".join(re.escape(part) for part in pattern.split("*")) + "$"
    return re.match(regex, package_id, re.IGNORECASE | re.DOTALL) is not None


def decide(
    action: Action,
    *,
    user: Party,
    account: Party,
    owners: tuple[Party, ...] = (),
    package_id: str | None = None,
    key: KeyGrant | None = None,
) -> Denial | None:
    """The matrix as a pure function: ``None`` when allowed, else the first failed check (key, step 1, step 2)."""
    rule = MATRIX[action]
    if rule.target is not Target.ACCOUNT and package_id is None:
        raise ValueError(f"{action.name} needs a package id")
    if key is not None:
        if not rule.key_scopes & key.scopes:
            return Denial.SCOPE
        if package_id is not None and not any(glob_matches(glob, package_id) for glob in key.globs):
            return Denial.GLOB
    if not relation(user, account) & rule.acting_for:
        return Denial.ACCOUNT
    if rule.target is Target.PACKAGE and not relation_to_owners(account, owners) & rule.on_package:
        return Denial.PACKAGE
    return None


# ---------------------------------------------------------------------------------------------------------------
# Loading the facts from the database.


def _party(session: Session, account: Account) -> Party:
    admins: set[int] = set()
    collaborators: set[int] = set()
    if account.is_organization:
        for membership in session.scalars(select(Membership).where(Membership.organization_id == account.id)):
            (admins if membership.is_admin else collaborators).add(membership.member_id)
    return Party(account.id, account.name, account.is_site_admin, frozenset(admins), frozenset(collaborators))


def _message(denial: Denial, action: Action, user: Party, account: Party, package_id: str | None) -> str:
    on = f" on package '{package_id}'" if package_id is not None else ""
    acting = user.name if user.id == account.id else f"{user.name} acting for {account.name}"
    if denial is Denial.SCOPE:
        return f"the API key's scopes do not allow to {action.value}"
    if denial is Denial.GLOB:
        return f"the API key's package patterns do not cover '{package_id}'"
    if denial is Denial.ACCOUNT:
        return f"{user.name} may not {action.value} for the account {account.name}"
    return f"{acting} may not {action.value}{on}"


def authorize(
    session: Session, actor: Actor, action: Action, *, package_id: str | None = None
) -> None:
    """Raise :class:`AccessDenied` unless ``actor`` may do ``action`` (on ``package_id`` for package actions).

    Account actions apply to the account the principal acts for. ``PUSH_NEW_ID`` is for ids without a
    registration; every other package action needs the registration (:class:`NotFoundError` otherwise).
    """
    if isinstance(actor, Operator):
        return
    user_row, account_row = session.get(Account, actor.user_id), session.get(Account, actor.account_id)
    if user_row is None or account_row is None:
        raise AccessDenied("the acting account no longer exists", Denial.ACCOUNT)
    user, account = _party(session, user_row), _party(session, account_row)
    owners: tuple[Party, ...] = ()
    rule = MATRIX[action]
    if rule.target is not Target.ACCOUNT:
        if package_id is None:
            raise ValueError(f"{action.name} needs a package id")
        registration = session.scalars(
            select(PackageRegistration).where(PackageRegistration.lower_id == package_id.lower())
        ).one_or_none()
        if rule.target is Target.NEW_PACKAGE and registration is not None:
            # Another push created the id since the caller looked (PostgreSQL, READ COMMITTED): it is now a
            # new version of an existing package, and judged as one.
            authorize(session, actor, Action.PUSH_NEW_VERSION, package_id=package_id)
            return
        if rule.target is Target.PACKAGE:
            if registration is None:
                raise NotFoundError(f"no package '{package_id}'")
            owners = tuple(_party(session, owner) for owner in registration.owners)
    denial = decide(action, user=user, account=account, owners=owners, package_id=package_id, key=actor.key)
    if denial is not None:
        raise AccessDenied(_message(denial, action, user, account, package_id), denial)


def authorize_on_account(session: Session, actor: Actor, action: Action, account: Account) -> None:
    """:func:`authorize` for an account action on ``account`` (certificates): a principal acts for one account
    (its API key's owner, or the account picked in the UI), so it may only act on that account, and then the
    matrix decides. The operator may do everything."""
    if MATRIX[action].target is not Target.ACCOUNT:
        raise ValueError(f"{action.name} is not an account action")
    if isinstance(actor, Operator):
        return
    if actor.account_id != account.id:
        acting = session.get(Account, actor.account_id)
        name = acting.name if acting is not None else "another account"
        raise AccessDenied(
            f"this {'API key' if actor.key is not None else 'session'} acts for {name}, not for {account.name}: "
            f"use one that acts for {account.name} to {action.value}",
            Denial.ACCOUNT,
        )
    authorize(session, actor, action)
