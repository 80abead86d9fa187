"""The permission matrix, cell by cell, at the service level: every role × every action, then API keys (scopes,
globs, expired, revoked), then the real ownership and unlist/relist services. Expected outcomes are written out
here by hand (from spec server.md §A.7), never computed from ``permissions.MATRIX``; a test fails on any
unexpected allow *and* any unexpected denial.

The world: users alice, olga, carl, sam (site admin), eve; organization contoso (admin olga, collaborator
carl); Alice.Lib owned by alice, Contoso.Lib owned by contoso; Fresh.Lib and Contoso.New do not exist yet.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from tests.support.server_factories import OPERATOR, organization, package, principal, user
from tests.support.server_fixtures import BACKENDS, DatabaseFactory, FakeClock, make_context

from nuseal.server.services import apikeys, audit, packages
from nuseal.server.services.context import ServiceContext
from nuseal.server.services.errors import AuthenticationError
from nuseal.server.services.permissions import MATRIX, AccessDenied, Action, Actor, Denial, Principal, authorize

#: Who acts, for which account: (user, account acted for).
CASES: dict[str, tuple[str, str]] = {
    "owner-user": ("alice", "alice"),
    "org-admin-for-org": ("olga", "contoso"),
    "org-collaborator-for-org": ("carl", "contoso"),
    "org-admin-for-self": ("olga", "olga"),
    "org-collaborator-for-self": ("carl", "carl"),
    "site-admin": ("sam", "sam"),
    "stranger": ("eve", "eve"),
    "stranger-for-org": ("eve", "contoso"),
    "site-admin-for-org": ("sam", "contoso"),
    "other-user-for-org": ("alice", "contoso"),
}

A, C, NEW, CNEW = "Alice.Lib", "Contoso.Lib", "Fresh.Lib", "Contoso.New"
ACCOUNT = None  # account actions apply to the account acted for

#: (action, package) → the cases allowed. Everything not listed is denied.
EXPECTED: dict[tuple[Action, str | None], set[str]] = {
    (Action.PUSH_NEW_ID, NEW): {
        "owner-user", "org-admin-for-org", "org-collaborator-for-org", "org-admin-for-self",
        "org-collaborator-for-self", "site-admin", "stranger",
    },
    (Action.PUSH_NEW_VERSION, A): {"owner-user"},
    (Action.PUSH_NEW_VERSION, C): {"org-admin-for-org", "org-collaborator-for-org"},
    (Action.UNLIST, A): {"owner-user", "site-admin"},
    (Action.UNLIST, C): {"org-admin-for-org", "org-collaborator-for-org", "site-admin"},
    (Action.MANAGE_OWNERS, A): {"owner-user", "site-admin"},
    (Action.MANAGE_OWNERS, C): {"org-admin-for-org", "site-admin"},
    (Action.MANAGE_SIGNER, A): {"owner-user"},
    (Action.MANAGE_SIGNER, C): {"org-admin-for-org", "org-admin-for-self"},
    (Action.VIEW_SIGNER, A): {"owner-user", "site-admin"},
    (Action.VIEW_SIGNER, C): {
        "org-admin-for-org", "org-collaborator-for-org", "org-admin-for-self", "org-collaborator-for-self",
        "site-admin",
    },
    (Action.MANAGE_CERTIFICATES, ACCOUNT): {
        "owner-user", "org-admin-for-org", "org-admin-for-self", "org-collaborator-for-self", "site-admin",
        "stranger",
    },
    (Action.VIEW_ACCOUNT, ACCOUNT): {
        "owner-user", "org-admin-for-org", "org-collaborator-for-org", "org-admin-for-self",
        "org-collaborator-for-self", "site-admin", "stranger", "site-admin-for-org",
    },
}  # fmt: skip


@dataclass
class World:
    ctx: ServiceContext
    clock: FakeClock


def build(ctx: ServiceContext) -> None:
    for name in ("alice", "olga", "carl", "eve"):
        user(ctx, name)
    user(ctx, "sam", site_admin=True)
    organization(ctx, "contoso", admins=["olga"], collaborators=["carl"])
    package(ctx, A, "alice")
    package(ctx, C, "contoso")


@pytest.fixture(scope="module", params=BACKENDS)
def world(
    request: pytest.FixtureRequest, database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """One world per backend for the read-only checks (authorize never changes anything)."""
    with database_factory.database(request.param) as db:
        clock = FakeClock()
        ctx = make_context(db, tmp_path_factory.mktemp("matrix"), clock)
        build(ctx)
        yield World(ctx, clock)


def allowed(ctx: ServiceContext, actor: Actor, action: Action, package_id: str | None) -> bool:
    with ctx.db.reading() as session:
        try:
            authorize(session, actor, action, package_id=package_id)
        except AccessDenied:
            return False
    return True


def test_the_expected_table_covers_every_action_of_the_matrix() -> None:
    assert {action for action, _ in EXPECTED} == set(MATRIX)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize(("action", "package_id"), EXPECTED, ids=lambda v: getattr(v, "name", str(v)))
def test_role_by_action(world: World, case: str, action: Action, package_id: str | None) -> None:
    actor = principal(world.ctx, *CASES[case])
    assert allowed(world.ctx, actor, action, package_id) is (case in EXPECTED[(action, package_id)])


def test_the_operator_may_do_everything(world: World) -> None:
    for action, package_id in EXPECTED:
        assert allowed(world.ctx, OPERATOR, action, package_id)


@pytest.mark.parametrize("case", CASES)
def test_a_new_id_created_meanwhile_is_judged_as_a_new_version(world: World, case: str) -> None:
    # A push reads "no registration", another push creates it, then this push asks for PUSH_NEW_ID (PostgreSQL
    # READ COMMITTED, seen with concurrent pushes): it is judged as PUSH_NEW_VERSION of what now exists.
    actor = principal(world.ctx, *CASES[case])
    for existing in (A, C):
        assert allowed(world.ctx, actor, Action.PUSH_NEW_ID, existing) is (
            case in EXPECTED[(Action.PUSH_NEW_VERSION, existing)])


# --- API keys ---------------------------------------------------------------------------------------------------

ALL = ["package:push", "package:pushversion", "package:unlist", "account:certificates", "package:signer"]

#: key name → (owner, holder, scopes, globs)
KEYS: dict[str, tuple[str, str, list[str], list[str]]] = {
    "collaborator-push": ("contoso", "carl", ["package:push"], ["*"]),
    "collaborator-pushversion": ("contoso", "carl", ["package:pushversion"], ["*"]),
    "collaborator-unlist": ("contoso", "carl", ["package:unlist"], ["*"]),
    "collaborator-all-scopes": ("contoso", "carl", ALL, ["*"]),
    "collaborator-wrong-glob": ("contoso", "carl", ["package:push", "package:unlist"], ["Fabrikam.*"]),
    "collaborator-lowercase-glob": ("contoso", "carl", ["package:push", "package:unlist"], ["contoso.*"]),
    "admin-all-scopes": ("contoso", "olga", ALL, ["*"]),
    "owner-user-push": ("alice", "alice", ["package:push"], ["*"]),
    "stranger-all-scopes": ("eve", "eve", ALL, ["*"]),
    "site-admin-all-scopes": ("sam", "sam", ALL, ["*"]),
    "expired-all-scopes": ("contoso", "olga", ALL, ["*"]),
    "revoked-all-scopes": ("contoso", "olga", ALL, ["*"]),
}

KEY_TARGETS: list[tuple[Action, str | None]] = [
    (Action.PUSH_NEW_ID, NEW), (Action.PUSH_NEW_ID, CNEW), (Action.PUSH_NEW_VERSION, A),
    (Action.PUSH_NEW_VERSION, C), (Action.UNLIST, A), (Action.UNLIST, C), (Action.MANAGE_OWNERS, A),
    (Action.MANAGE_OWNERS, C), (Action.MANAGE_SIGNER, C), (Action.MANAGE_CERTIFICATES, ACCOUNT),
    (Action.VIEW_ACCOUNT, ACCOUNT), (Action.VIEW_SIGNER, A), (Action.VIEW_SIGNER, C),
]  # fmt: skip

#: key name → the targets it is allowed on (everything else in KEY_TARGETS is denied).
KEY_EXPECTED: dict[str, set[tuple[Action, str | None]]] = {
    "collaborator-push": {(Action.PUSH_NEW_ID, NEW), (Action.PUSH_NEW_ID, CNEW), (Action.PUSH_NEW_VERSION, C)},
    "collaborator-pushversion": {(Action.PUSH_NEW_VERSION, C)},
    "collaborator-unlist": {(Action.UNLIST, C)},
    "collaborator-all-scopes": {
        (Action.PUSH_NEW_ID, NEW), (Action.PUSH_NEW_ID, CNEW), (Action.PUSH_NEW_VERSION, C), (Action.UNLIST, C),
        (Action.VIEW_ACCOUNT, ACCOUNT), (Action.VIEW_SIGNER, C),
    },
    "collaborator-wrong-glob": set(),
    "collaborator-lowercase-glob": {(Action.PUSH_NEW_ID, CNEW), (Action.PUSH_NEW_VERSION, C), (Action.UNLIST, C)},
    "admin-all-scopes": {
        (Action.PUSH_NEW_ID, NEW), (Action.PUSH_NEW_ID, CNEW), (Action.PUSH_NEW_VERSION, C), (Action.UNLIST, C),
        (Action.MANAGE_SIGNER, C), (Action.MANAGE_CERTIFICATES, ACCOUNT), (Action.VIEW_ACCOUNT, ACCOUNT),
        (Action.VIEW_SIGNER, C),
    },
    "owner-user-push": {(Action.PUSH_NEW_ID, NEW), (Action.PUSH_NEW_ID, CNEW), (Action.PUSH_NEW_VERSION, A)},
    "stranger-all-scopes": {
        (Action.PUSH_NEW_ID, NEW), (Action.PUSH_NEW_ID, CNEW), (Action.MANAGE_CERTIFICATES, ACCOUNT),
        (Action.VIEW_ACCOUNT, ACCOUNT),
    },
    "site-admin-all-scopes": {
        (Action.PUSH_NEW_ID, NEW), (Action.PUSH_NEW_ID, CNEW), (Action.UNLIST, A), (Action.UNLIST, C),
        (Action.MANAGE_CERTIFICATES, ACCOUNT), (Action.VIEW_ACCOUNT, ACCOUNT), (Action.VIEW_SIGNER, A),
        (Action.VIEW_SIGNER, C),
    },
    "expired-all-scopes": set(),
    "revoked-all-scopes": set(),
}  # fmt: skip


@pytest.fixture(scope="module")
def tokens(world: World) -> dict[str, str]:
    """Every key of KEYS, created at the world's clock; the expired one's expiry has passed, one is revoked."""
    made = {}
    for name, (owner, holder, scopes, globs) in KEYS.items():
        days = 1 if name.startswith("expired") else 30
        created = apikeys.create(world.ctx, OPERATOR, owner, holder_name=holder, scopes=scopes, globs=globs,
                                 expires_in_days=days)  # fmt: skip
        made[name] = created.token
        if name.startswith("revoked"):
            apikeys.revoke(world.ctx, OPERATOR, owner, created.info.key_id)
    world.clock.advance(timedelta(days=2))
    return made


def key_allowed(ctx: ServiceContext, token: str, action: Action, package_id: str | None) -> bool:
    try:
        actor = apikeys.authenticate(ctx, token)
    except AuthenticationError:
        return False
    return allowed(ctx, actor, action, package_id)


def test_the_key_table_is_complete() -> None:
    assert set(KEY_EXPECTED) == set(KEYS)
    assert all(cells <= set(KEY_TARGETS) for cells in KEY_EXPECTED.values())


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize(("action", "package_id"), KEY_TARGETS, ids=lambda v: getattr(v, "name", str(v)))
def test_key_by_action(world: World, tokens: dict[str, str], key: str, action: Action, package_id: str | None) -> None:
    expected = (action, package_id) in KEY_EXPECTED[key]
    assert key_allowed(world.ctx, tokens[key], action, package_id) is expected


def test_denials_say_why(world: World, tokens: dict[str, str]) -> None:
    def reason(key: str, action: Action, package_id: str | None) -> Denial:
        actor = apikeys.authenticate(world.ctx, tokens[key])
        with world.ctx.db.reading() as session, pytest.raises(AccessDenied) as caught:
            authorize(session, actor, action, package_id=package_id)
        return caught.value.reason

    assert reason("collaborator-push", Action.UNLIST, C) is Denial.SCOPE
    assert reason("collaborator-wrong-glob", Action.PUSH_NEW_VERSION, C) is Denial.GLOB
    assert reason("collaborator-all-scopes", Action.MANAGE_SIGNER, C) is Denial.ACCOUNT
    assert reason("collaborator-push", Action.PUSH_NEW_VERSION, A) is Denial.PACKAGE
    assert reason("admin-all-scopes", Action.MANAGE_OWNERS, C) is Denial.SCOPE  # no key scope manages owners
    assert reason("collaborator-push", Action.VIEW_ACCOUNT, None) is Denial.SCOPE  # certificates scope needed
    assert reason("collaborator-all-scopes", Action.MANAGE_CERTIFICATES, None) is Denial.ACCOUNT


def test_a_key_follows_its_holder_s_current_role(service_ctx: ServiceContext) -> None:
    build(service_ctx)
    token = apikeys.create(service_ctx, OPERATOR, "contoso", holder_name="olga", scopes=ALL).token
    assert key_allowed(service_ctx, token, Action.MANAGE_SIGNER, C)
    organization_admin = "carl"
    from nuseal.server.services import accounts

    accounts.set_member(service_ctx, OPERATOR, "contoso", organization_admin, admin=True)
    accounts.set_member(service_ctx, OPERATOR, "contoso", "olga", admin=False)  # demoted after the key was made
    assert not key_allowed(service_ctx, token, Action.MANAGE_SIGNER, C)
    assert not key_allowed(service_ctx, token, Action.MANAGE_CERTIFICATES, None)
    assert key_allowed(service_ctx, token, Action.PUSH_NEW_VERSION, C)
    accounts.remove_member(service_ctx, OPERATOR, "contoso", "olga")
    assert not key_allowed(service_ctx, token, Action.PUSH_NEW_VERSION, C)


# --- the real services: owner changes and unlist/relist, state unchanged on denial ------------------------------

OWNER_CHANGE_ALLOWED = {"org-admin-for-org", "site-admin"}
UNLIST_ALLOWED = {"org-admin-for-org", "org-collaborator-for-org", "site-admin"}


@pytest.mark.parametrize("case", CASES)
def test_owner_changes_through_the_service(service_ctx: ServiceContext, case: str) -> None:
    build(service_ctx)
    actor: Principal = principal(service_ctx, *CASES[case])
    may = case in OWNER_CHANGE_ALLOWED
    try:
        packages.add_owner(service_ctx, actor, C, "alice")
    except AccessDenied:
        assert not may
    else:
        assert may
    assert packages.list_owners(service_ctx, C) == (["alice", "contoso"] if may else ["contoso"])
    try:
        packages.remove_owner(service_ctx, actor, C, "contoso")
    except AccessDenied:
        assert not may
    else:
        assert may
    assert packages.list_owners(service_ctx, C) == (["alice"] if may else ["contoso"])
    changes = [e for e in audit.list_events(service_ctx) if e.action.startswith("package:owner:")]
    assert [e.actor for e in changes] == ([actor.label, actor.label] if may else [])


@pytest.mark.parametrize("case", CASES)
def test_unlist_and_relist_through_the_service(service_ctx: ServiceContext, case: str) -> None:
    build(service_ctx)
    actor = principal(service_ctx, *CASES[case])
    may = case in UNLIST_ALLOWED
    for listed in (False, True):
        try:
            changed = packages.set_listed(service_ctx, actor, C, "1.0.0", listed=listed)
        except AccessDenied:
            assert not may
        else:
            assert may and changed
        [version] = next(p for p in packages.list_packages(service_ctx) if p.id == C).versions
        assert version.listed is (listed if may else True)
    tags = [e.action for e in audit.list_events(service_ctx) if e.action.startswith("package:version:")]
    assert tags == (["package:version:unlist", "package:version:relist"] if may else [])


def test_an_unlist_key_through_the_service(service_ctx: ServiceContext) -> None:
    build(service_ctx)
    unlist_key = apikeys.create(service_ctx, OPERATOR, "contoso", holder_name="carl", scopes=["package:unlist"])
    push_key = apikeys.create(service_ctx, OPERATOR, "contoso", holder_name="carl")
    unlist = apikeys.authenticate(service_ctx, unlist_key.token)
    push = apikeys.authenticate(service_ctx, push_key.token)
    with pytest.raises(AccessDenied, match="scopes do not allow to unlist or relist a version"):
        packages.set_listed(service_ctx, push, C, "1.0.0", listed=False)
    assert packages.set_listed(service_ctx, unlist, C, "1.0.0", listed=False)
    assert packages.set_listed(service_ctx, unlist, C, "1.0", listed=False) is False  # same version, normalized
    with pytest.raises(AccessDenied):
        packages.add_owner(service_ctx, unlist, C, "alice")
