"""API keys: created with scopes, globs, owner, holder, expiry; stored as a salted hash; shown once; revoked."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import select
from tests.support.server_factories import OPERATOR, organization, user
from tests.support.server_fixtures import T0, FakeClock

from nuseal.server.db.models import ApiKey
from nuseal.server.services import apikeys, audit
from nuseal.server.services.context import ServiceContext
from nuseal.server.services.errors import AuthenticationError, InvalidInputError, NotFoundError
from nuseal.server.services.permissions import Scope


@pytest.fixture
def people(service_ctx: ServiceContext) -> ServiceContext:
    for name in ("alice", "bob", "eve"):
        user(service_ctx, name)
    organization(service_ctx, "contoso", admins=["alice"], collaborators=["bob"])
    return service_ctx


def test_a_key_is_shown_once_and_only_its_salted_hash_is_stored(people: ServiceContext) -> None:
    created = apikeys.create(people, OPERATOR, "contoso", holder_name="bob", scopes=["package:push", "package:unlist"],
                             globs=["Contoso.*", "Fabrikam.Lib"], expires_in_days=30, description="CI")  # fmt: skip
    token = created.token
    assert token.startswith(f"nsk_{created.info.key_id}_") and len(token) == 4 + 12 + 1 + 52
    info = created.info
    assert (info.owner, info.holder, info.scopes, info.globs, info.description) == (
        "contoso", "bob", ("package:push", "package:unlist"), ("Contoso.*", "Fabrikam.Lib"), "CI"
    )
    assert (info.created_at, info.expires_at, info.state(T0)) == (T0, T0 + timedelta(days=30), "active")

    secret = token.rsplit("_", 1)[1]
    with people.db.reading() as session:
        row = session.scalars(select(ApiKey)).one()
        stored = {str(value) for value in vars(row).values()}
        assert secret not in stored and token not in stored
        assert row.secret_hash == hashlib.sha256(bytes.fromhex(row.salt) + secret.encode()).hexdigest()
    event = audit.list_events(people)[-1]
    assert event.action == "account:apikey:create" and event.subject == f"contoso/{info.key_id}"
    assert secret not in repr(event)


def test_defaults_are_push_on_every_package_for_a_year(people: ServiceContext) -> None:
    info = apikeys.create(people, OPERATOR, "alice").info
    assert (info.holder, info.scopes, info.globs) == ("alice", ("package:push",), ("*",))
    assert info.expires_at == T0 + timedelta(days=365)


def test_management_scopes_exist_but_are_never_granted_implicitly(people: ServiceContext) -> None:
    assert {s.value for s in Scope} >= {"account:certificates", "package:signer"}
    for key in (apikeys.create(people, OPERATOR, "alice"), apikeys.create(people, OPERATOR, "alice", scopes=[])):
        assert not {"account:certificates", "package:signer"} & set(key.info.scopes)
    explicit = apikeys.create(people, OPERATOR, "alice", scopes=["account:certificates", "ACCOUNT:CERTIFICATES"])
    assert explicit.info.scopes == ("account:certificates",)


@pytest.mark.parametrize(
    ("owner", "kwargs", "error", "message"),
    [
        ("contoso", {}, InvalidInputError, "needs the member who holds it"),
        ("contoso", {"holder_name": "eve"}, InvalidInputError, "eve is not a member of contoso"),
        ("contoso", {"holder_name": "contoso"}, InvalidInputError, "is an organization, not a user"),
        ("alice", {"holder_name": "bob"}, InvalidInputError, "held by alice only"),
        ("alice", {"scopes": ["package:delete"]}, InvalidInputError, "unknown scope 'package:delete'"),
        ("alice", {"globs": ["Contoso/*"]}, InvalidInputError, r"invalid package glob 'Contoso/\*'"),
        ("alice", {"expires_in_days": 0}, InvalidInputError, "expiry must be 1 to 3650 days"),
        ("alice", {"expires_in_days": 3651}, InvalidInputError, "expiry must be 1 to 3650 days"),
        ("alice", {"description": "x" * 257}, InvalidInputError, "longer than 256"),
        ("nobody", {}, NotFoundError, "no account named 'nobody'"),
    ],
)
def test_bad_key_requests_are_refused_without_a_trace(
    people: ServiceContext, owner: str, kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    events = len(audit.list_events(people))
    with pytest.raises(error, match=message):
        apikeys.create(people, OPERATOR, owner, **kwargs)  # type: ignore[arg-type]
    assert apikeys.list_keys(people, "alice") == [] and apikeys.list_keys(people, "contoso") == []
    assert len(audit.list_events(people)) == events


def test_authenticate_gives_the_principal_and_records_the_use(people: ServiceContext, clock: FakeClock) -> None:
    created = apikeys.create(people, OPERATOR, "contoso", holder_name="bob", globs=["Contoso.*"])
    clock.advance(timedelta(hours=1))
    principal = apikeys.authenticate(people, created.token)
    assert principal.key is not None
    assert (principal.key.key_id, principal.key.scopes, principal.key.globs) == (
        created.info.key_id, frozenset({Scope.PUSH}), ("Contoso.*",)
    )
    assert principal.label == f"bob for contoso (key {created.info.key_id})"
    assert apikeys.list_keys(people, "contoso")[0].last_used_at == T0 + timedelta(hours=1)


def test_wrong_malformed_revoked_and_expired_keys_do_not_authenticate(
    people: ServiceContext, clock: FakeClock
) -> None:
    created = apikeys.create(people, OPERATOR, "alice", expires_in_days=1)
    token = created.token
    wrong_secret = token[:-4] + ("aaaa" if not token.endswith("aaaa") else "bbbb")
    for bad, message in [
        ("", "malformed"), ("nsk_zz_zz", "malformed"), (token.upper(), "malformed"), (wrong_secret, "not valid"),
        ("nsk_000000000000_" + token.rsplit("_", 1)[1], "not valid"),
    ]:
        with pytest.raises(AuthenticationError, match=message):
            apikeys.authenticate(people, bad)

    clock.advance(timedelta(days=1) - timedelta(seconds=1))
    apikeys.authenticate(people, token)
    clock.advance(timedelta(seconds=1))
    with pytest.raises(AuthenticationError, match=f"the API key {created.info.key_id} has expired"):
        apikeys.authenticate(people, token)
    assert apikeys.list_keys(people, "alice")[0].state(clock.now) == "expired"

    other = apikeys.create(people, OPERATOR, "alice")
    info, changed = apikeys.revoke(people, OPERATOR, "alice", other.info.key_id)
    assert changed and info.revoked_at == clock.now
    assert apikeys.revoke(people, OPERATOR, "alice", other.info.key_id)[1] is False
    with pytest.raises(AuthenticationError, match="was revoked"):
        apikeys.authenticate(people, other.token)
    revocations = [e for e in audit.list_events(people) if e.action == "account:apikey:revoke"]
    assert len(revocations) == 1
    assert revocations[0].before is not None and revocations[0].before["state"] == "active"
    assert revocations[0].after is not None and revocations[0].after["state"] == "revoked"


def test_revoke_needs_the_right_owner(people: ServiceContext) -> None:
    created = apikeys.create(people, OPERATOR, "alice")
    with pytest.raises(NotFoundError, match=f"no API key '{created.info.key_id}' acting for bob"):
        apikeys.revoke(people, OPERATOR, "bob", created.info.key_id)
    apikeys.authenticate(people, created.token)
