"""Accounts: users and organizations share one case-insensitive name space; organizations keep an admin."""

from __future__ import annotations

from datetime import timedelta

import pytest
from tests.support.server_factories import OPERATOR, organization, user
from tests.support.server_fixtures import T0, FakeClock

from nuseal.server.services import accounts, apikeys, audit
from nuseal.server.services.context import ServiceContext
from nuseal.server.services.errors import ConflictError, InvalidInputError, NotFoundError


def test_users_and_organizations_are_created_and_audited(service_ctx: ServiceContext, clock: FakeClock) -> None:
    alice = accounts.add_user(service_ctx, OPERATOR, "Alice", email="alice@example.com", site_admin=True)
    assert (alice.name, alice.kind, alice.email, alice.is_site_admin, alice.created_at) == (
        "Alice", "user", "alice@example.com", True, T0
    )
    clock.advance(timedelta(minutes=1))
    org = accounts.add_organization(service_ctx, OPERATOR, "Contoso", admin="alice")
    assert org.kind == "organization" and not org.is_site_admin
    assert accounts.list_members(service_ctx, "contoso") == [accounts.MemberInfo("Alice", True)]

    events = audit.list_events(service_ctx)
    assert [(e.actor, e.action, e.subject) for e in events] == [
        ("admin-cli", "account:user:add", "Alice"),
        ("admin-cli", "account:organization:add", "Contoso"),
    ]
    assert events[1].at == T0 + timedelta(minutes=1)
    assert events[1].after is not None and events[1].after["admins"] == ["Alice"]
    assert events[0].before is None


@pytest.mark.parametrize("name", ["", "-lead", "trail.", "has space", "x" * 65, "ünï", "admin-cli", "SYSTEM"])
def test_bad_or_reserved_names_are_refused(service_ctx: ServiceContext, name: str) -> None:
    with pytest.raises(InvalidInputError, match="account name"):
        accounts.add_user(service_ctx, OPERATOR, name)
    assert audit.list_events(service_ctx) == []


def test_names_are_unique_across_users_and_organizations_in_any_case(service_ctx: ServiceContext) -> None:
    user(service_ctx, "alice")
    organization(service_ctx, "contoso", admins=["alice"])
    with pytest.raises(ConflictError, match="the name 'ALICE' is already taken"):
        accounts.add_user(service_ctx, OPERATOR, "ALICE")
    with pytest.raises(ConflictError, match="the name 'Contoso' is already taken"):
        accounts.add_organization(service_ctx, OPERATOR, "Contoso", admin="alice")


def test_bad_email_and_unknown_admin(service_ctx: ServiceContext) -> None:
    with pytest.raises(InvalidInputError, match="invalid email address 'nope'"):
        accounts.add_user(service_ctx, OPERATOR, "bob", email="nope")
    with pytest.raises(NotFoundError, match="no account named 'ghost'"):
        accounts.add_organization(service_ctx, OPERATOR, "contoso", admin="ghost")
    user(service_ctx, "alice")
    organization(service_ctx, "contoso", admins=["alice"])
    with pytest.raises(InvalidInputError, match="'contoso' is an organization, not a user"):
        accounts.add_organization(service_ctx, OPERATOR, "fabrikam", admin="contoso")
    with pytest.raises(InvalidInputError, match="'alice' is a user, not an organization"):
        accounts.set_member(service_ctx, OPERATOR, "alice", "contoso", admin=False)


def test_member_roles_change_and_the_last_admin_stays(service_ctx: ServiceContext) -> None:
    for name in ("alice", "bob"):
        user(service_ctx, name)
    organization(service_ctx, "contoso", admins=["alice"])

    assert accounts.set_member(service_ctx, OPERATOR, "contoso", "bob", admin=False) is accounts.MembershipChange.ADDED
    assert (
        accounts.set_member(service_ctx, OPERATOR, "contoso", "bob", admin=False)
        is accounts.MembershipChange.UNCHANGED
    )
    with pytest.raises(ConflictError, match="alice is the last admin of contoso"):
        accounts.set_member(service_ctx, OPERATOR, "contoso", "alice", admin=False)
    with pytest.raises(ConflictError, match="last admin"):
        accounts.remove_member(service_ctx, OPERATOR, "contoso", "alice")

    assert (
        accounts.set_member(service_ctx, OPERATOR, "contoso", "bob", admin=True)
        is accounts.MembershipChange.ROLE_CHANGED
    )
    accounts.set_member(service_ctx, OPERATOR, "contoso", "alice", admin=False)
    assert accounts.list_members(service_ctx, "contoso") == [
        accounts.MemberInfo("alice", False), accounts.MemberInfo("bob", True)
    ]
    actions = [(e.action, e.subject, e.before, e.after) for e in audit.list_events(service_ctx)][-3:]
    assert actions == [
        ("account:member:add", "contoso/bob", None, {"role": "collaborator"}),
        ("account:member:update", "contoso/bob", {"role": "collaborator"}, {"role": "admin"}),
        ("account:member:update", "contoso/alice", {"role": "admin"}, {"role": "collaborator"}),
    ]


def test_removing_a_member_revokes_their_keys_for_that_organization_only(service_ctx: ServiceContext) -> None:
    for name in ("alice", "bob"):
        user(service_ctx, name)
    organization(service_ctx, "contoso", admins=["alice"], collaborators=["bob"])
    org_key = apikeys.create(service_ctx, OPERATOR, "contoso", holder_name="bob")
    own_key = apikeys.create(service_ctx, OPERATOR, "bob")
    alice_key = apikeys.create(service_ctx, OPERATOR, "contoso", holder_name="alice")

    assert accounts.remove_member(service_ctx, OPERATOR, "contoso", "bob") == 1
    states = {k.key_id: k.state(service_ctx.now()) for k in apikeys.list_keys(service_ctx, "contoso")}
    assert states == {org_key.info.key_id: "revoked", alice_key.info.key_id: "active"}
    assert apikeys.list_keys(service_ctx, "bob")[0].key_id == own_key.info.key_id
    assert apikeys.list_keys(service_ctx, "bob")[0].revoked_at is None
    with pytest.raises(NotFoundError, match="bob is not a member of contoso"):
        accounts.remove_member(service_ctx, OPERATOR, "contoso", "bob")
    last = audit.list_events(service_ctx)[-1]
    assert (last.action, last.before, last.after) == (
        "account:member:remove", {"role": "collaborator"}, {"revoked_api_keys": [org_key.info.key_id]}
    )
