"""The permission matrix over the real routes of a running ``nuseal serve``, on both backends: every API key (each
role, plus expired, revoked, wrong-scope and wrong-glob keys) × push a new id / push a new version / unlist /
relist / owner change. The allowed cells are written out by hand from spec server.md §A.7 (never computed from
``permissions.MATRIX``); a test fails on any unexpected allow and on any unexpected denial, and a denial must
change nothing.

The world: users alice, olga, carl, sam (site admin), eve; organization contoso (admin olga, collaborator carl);
Alice.Lib 1.0.0 owned by alice, Contoso.Lib 1.0.0 owned by contoso.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path

import httpx
import pytest
from tests.support.feed_http import TIMEOUT, push
from tests.support.feed_packages import build_package
from tests.support.server_factories import organization, user
from tests.support.server_fixtures import BACKENDS, DatabaseFactory, FakeClock, FeedServer, start_feed_server

from nuseal.server.services import apikeys, packages
from nuseal.server.services.permissions import Operator

A, C = "Alice.Lib", "Contoso.Lib"
ALL = ("package:push", "package:pushversion", "package:unlist", "account:certificates", "package:signer")

#: key → (owner, holder, scopes, globs); "expired" and "revoked" are made unusable after creation.
KEYS: dict[str, tuple[str, str, tuple[str, ...], tuple[str, ...]]] = {
    "owner-user": ("alice", "alice", ALL, ("*",)),
    "org-admin": ("contoso", "olga", ALL, ("*",)),
    "org-collaborator": ("contoso", "carl", ALL, ("*",)),
    "collaborator-pushversion-only": ("contoso", "carl", ("package:pushversion",), ("*",)),
    "collaborator-unlist-only": ("contoso", "carl", ("package:unlist",), ("*",)),
    "collaborator-push-only": ("contoso", "carl", ("package:push",), ("*",)),
    "collaborator-wrong-glob": ("contoso", "carl", ALL, ("Fabrikam.*",)),
    "collaborator-glob-contoso": ("contoso", "carl", ALL, ("contoso.*",)),
    "admin-for-self": ("olga", "olga", ALL, ("*",)),
    "site-admin": ("sam", "sam", ALL, ("*",)),
    "stranger": ("eve", "eve", ALL, ("*",)),
    "expired": ("contoso", "olga", ALL, ("*",)),
    "revoked": ("contoso", "olga", ALL, ("*",)),
}

ACTIONS = ["push-new-id", "push-new-contoso-id", "push-version-A", "push-version-C", "unlist-A", "unlist-C",
           "relist-A", "relist-C", "add-owner-A", "add-owner-C", "remove-owner-C"]

#: key → the actions it may do; everything else in ACTIONS must be refused.
ALLOWED: dict[str, set[str]] = {
    "owner-user": {"push-new-id", "push-new-contoso-id", "push-version-A", "unlist-A", "relist-A"},
    "org-admin": {"push-new-id", "push-new-contoso-id", "push-version-C", "unlist-C", "relist-C"},
    "org-collaborator": {"push-new-id", "push-new-contoso-id", "push-version-C", "unlist-C", "relist-C"},
    "collaborator-pushversion-only": {"push-version-C"},
    "collaborator-unlist-only": {"unlist-C", "relist-C"},
    "collaborator-push-only": {"push-new-id", "push-new-contoso-id", "push-version-C"},
    "collaborator-wrong-glob": set(),
    "collaborator-glob-contoso": {"push-new-contoso-id", "push-version-C", "unlist-C", "relist-C"},
    "admin-for-self": {"push-new-id", "push-new-contoso-id"},
    "site-admin": {"push-new-id", "push-new-contoso-id", "unlist-A", "unlist-C", "relist-A", "relist-C"},
    "stranger": {"push-new-id", "push-new-contoso-id"},
    "expired": set(),
    "revoked": set(),
}  # fmt: skip

_versions = count(1)


@dataclass
class World:
    server: FeedServer
    tokens: dict[str, str]
    folder: Path
    created: set[str] = field(default_factory=set)  # ids registered by allowed pushes (their versions are removed)


@pytest.fixture(scope="module", params=BACKENDS)
def world(request: pytest.FixtureRequest, database_factory: DatabaseFactory,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp(f"matrix-{request.param}")
    server = start_feed_server(database_factory, request.param, folder)
    ctx = server.ctx
    for name in ("alice", "olga", "carl", "eve"):
        user(ctx, name)
    user(ctx, "sam", site_admin=True)
    organization(ctx, "contoso", admins=["olga"], collaborators=["carl"])
    operator = apikeys.create(ctx, Operator(), "alice", scopes=["package:push"]).token
    assert push(server.url, operator, build_package(folder / "a.nupkg", A, "1.0.0")).status_code == 201
    contoso = apikeys.create(ctx, Operator(), "contoso", holder_name="olga").token
    assert push(server.url, contoso, build_package(folder / "c.nupkg", C, "1.0.0")).status_code == 201
    tokens = {}
    for name, (owner, holder, scopes, globs) in KEYS.items():
        # Keys are made with a clock in the past, so the expired one has expired by the server's real clock.
        made_at = datetime.now(UTC) - (timedelta(days=2) if name == "expired" else timedelta(0))
        key_ctx = ctx.__class__(db=ctx.db, blobs=ctx.blobs, settings=ctx.settings, clock=FakeClock(made_at))
        created = apikeys.create(key_ctx, Operator(), owner, holder_name=holder, scopes=list(scopes),
                                 globs=list(globs), expires_in_days=1 if name == "expired" else 30)
        tokens[name] = created.token
        if name == "revoked":
            apikeys.revoke(ctx, Operator(), owner, created.info.key_id)
    yield World(server, tokens, folder)
    server.stop()


def _state(world: World) -> tuple[object, ...]:
    """Everything an action could change: ids, owners, versions and their listing."""
    return tuple((p.id, p.owners, tuple((v.version, v.listed, v.status) for v in p.versions))
                 for p in packages.list_packages(world.server.ctx) if p.id not in world.created)


def _do(world: World, key: str, action: str) -> tuple[bool, int]:
    """Perform ``action`` with ``key`` over HTTP; (allowed, status). Allowed state changes are undone."""
    url, token = world.server.url, world.tokens[key]
    headers = {"X-NuGet-ApiKey": token}
    n = next(_versions)
    if action.startswith("push"):
        package_id = {"push-new-id": f"Fresh{n}.Lib", "push-new-contoso-id": f"Contoso.New{n}",
                      "push-version-A": A, "push-version-C": C}[action]
        response = push(url, token, build_package(world.folder / f"{n}.nupkg", package_id, f"2.0.{n}"))
        allowed = response.status_code == 201
        assert response.status_code in (201, 401), response.text  # nuget.org answers 401 to a refused push
        if allowed:
            packages.delete_version(world.server.ctx, Operator(), package_id, f"2.0.{n}")
            if action.startswith("push-new"):
                world.created.add(package_id)
        return allowed, response.status_code
    if action.startswith(("unlist", "relist")):
        package_id = A if action.endswith("-A") else C
        if action.startswith("relist"):
            packages.set_listed(world.server.ctx, Operator(), package_id, "1.0.0", listed=False)
        method = "DELETE" if action.startswith("unlist") else "POST"
        response = httpx.request(method, f"{url}/api/v2/package/{package_id}/1.0.0", headers=headers, timeout=TIMEOUT)
        assert response.status_code in (200, 204, 401, 403), response.text
        allowed = response.status_code in (200, 204)
        listed = packages.list_packages(world.server.ctx)
        version = next(v for p in listed if p.id == package_id for v in p.versions if v.version == "1.0.0")
        assert version.listed is (action.startswith("relist") if allowed else action.startswith("unlist"))
        packages.set_listed(world.server.ctx, Operator(), package_id, "1.0.0", listed=True)
        return allowed, response.status_code
    package_id = A if action.endswith("-A") else C
    path = f"{url}/api/v1/packages/{package_id}/owners/{'eve' if action.startswith('add') else 'contoso'}"
    response = httpx.request("PUT" if action.startswith("add") else "DELETE", path, headers=headers, timeout=TIMEOUT)
    assert response.status_code in (200, 401, 403), response.text
    return response.status_code == 200, response.status_code


def test_the_tables_are_complete() -> None:
    assert set(ALLOWED) == set(KEYS)
    assert all(allowed <= set(ACTIONS) for allowed in ALLOWED.values())


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("action", ACTIONS)
def test_key_by_action_over_http(world: World, key: str, action: str) -> None:
    before = _state(world)
    allowed, status = _do(world, key, action)
    assert allowed is (action in ALLOWED[key]), f"{key} {action}: HTTP {status}"
    assert _state(world) == before  # a refusal changes nothing (and an allowed change was undone)
    if key in ("expired", "revoked"):
        assert status == 401  # the key itself is refused, whatever the action
