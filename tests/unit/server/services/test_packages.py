"""Package registrations, owners and versions: first pusher owns, the last owner stays, hard delete removes the
row and then the blobs."""

from __future__ import annotations

import dataclasses
import logging
import re
from typing import cast

import pytest
from sqlalchemy import select
from tests.support.server_factories import OPERATOR, organization, package, user

from nuseal.server.db.models import PackageRegistration
from nuseal.server.services import accounts, audit, packages
from nuseal.server.services.context import ServiceContext
from nuseal.server.services.errors import ConflictError, InvalidInputError, NotFoundError
from nuseal.server.storage import BlobStore, StorageError


@pytest.fixture
def feed(service_ctx: ServiceContext) -> ServiceContext:
    for name in ("alice", "bob"):
        user(service_ctx, name)
    organization(service_ctx, "contoso", admins=["alice"])
    return service_ctx


def test_the_first_pusher_becomes_the_only_owner_and_ids_are_unique_in_any_case(feed: ServiceContext) -> None:
    with feed.db.transaction() as session:
        contoso = accounts.find_account(session, "contoso")
        registration = packages.register(session, "Contoso.Lib", contoso, at=feed.now())
        assert registration.package_id == "Contoso.Lib"
    assert packages.list_owners(feed, "contoso.lib") == ["contoso"]
    taken = re.escape("'CONTOSO.LIB' is already registered")
    with pytest.raises(ConflictError, match=taken), feed.db.transaction() as session:
        packages.register(session, "CONTOSO.LIB", accounts.find_account(session, "bob"), at=feed.now())
    assert packages.list_owners(feed, "Contoso.Lib") == ["contoso"]


def test_a_taken_id_fails_only_the_savepoint_and_the_transaction_goes_on(feed: ServiceContext) -> None:
    # A push racing another push for a new id gets the conflict, then carries on as a new version of that id in
    # the same transaction (push._register): the failed INSERT must not have spoiled the transaction.
    package(feed, "Contoso.Lib", "contoso")
    with feed.db.transaction() as session:
        bob = accounts.find_account(session, "bob")
        with pytest.raises(ConflictError, match="already registered"):
            packages.register(session, "contoso.LIB", bob, at=feed.now())
        assert [r.package_id for r in session.scalars(select(PackageRegistration))] == ["Contoso.Lib"]
        packages.register(session, "Other.Lib", bob, at=feed.now())
    assert packages.list_owners(feed, "Other.Lib") == ["bob"]


@pytest.mark.parametrize("bad", ["", "a b", "a..b", ".a", "a-", "a/b", "x" * 101])
def test_invalid_package_ids(feed: ServiceContext, bad: str) -> None:
    with pytest.raises(InvalidInputError, match="invalid package id"), feed.db.transaction() as session:
        packages.register(session, bad, accounts.find_account(session, "bob"), at=feed.now())


def test_owners_are_added_and_removed_but_never_the_last(feed: ServiceContext) -> None:
    package(feed, "Alice.Lib", "alice")
    assert packages.add_owner(feed, OPERATOR, "alice.lib", "Contoso") is True
    assert packages.add_owner(feed, OPERATOR, "Alice.Lib", "contoso") is False
    assert packages.list_owners(feed, "Alice.Lib") == ["alice", "contoso"]
    packages.remove_owner(feed, OPERATOR, "Alice.Lib", "ALICE")
    with pytest.raises(ConflictError, match=re.escape("contoso is the last owner of 'Alice.Lib'")):
        packages.remove_owner(feed, OPERATOR, "Alice.Lib", "contoso")
    with pytest.raises(NotFoundError, match=re.escape("bob is not an owner of 'Alice.Lib'")):
        packages.remove_owner(feed, OPERATOR, "Alice.Lib", "bob")
    with pytest.raises(NotFoundError, match="no account named 'ghost'"):
        packages.add_owner(feed, OPERATOR, "Alice.Lib", "ghost")
    with pytest.raises(NotFoundError, match="no package 'Nope'"):
        packages.add_owner(feed, OPERATOR, "Nope", "bob")
    events = [(e.action, e.subject, e.before, e.after) for e in audit.list_events(feed) if "owner" in e.action]
    assert events == [
        ("package:owner:add", "Alice.Lib", {"owners": ["alice"]}, {"owners": ["alice", "contoso"]}),
        ("package:owner:remove", "Alice.Lib", {"owners": ["alice", "contoso"]}, {"owners": ["contoso"]}),
    ]


def test_list_packages(feed: ServiceContext) -> None:
    package(feed, "Zeta", "bob", versions=["2.0.0"])
    package(feed, "alpha", "contoso", versions=["1.0.0", "1.1.0-beta"])
    listed = packages.list_packages(feed)
    assert [(p.id, p.owners, [v.version for v in p.versions]) for p in listed] == [
        ("alpha", ("contoso",), ["1.0.0", "1.1.0-beta"]),
        ("Zeta", ("bob",), ["2.0.0"]),
    ]
    document = listed[0].to_dict()
    assert document["versions"][1] | {"pushed_at": None} == {
        "version": "1.1.0-beta", "full_version": "1.1.0-beta", "status": "available", "listed": True,
        "pushed_at": None, "size": 10,
    }


def test_delete_removes_the_row_then_the_blobs_and_keeps_the_registration(feed: ServiceContext) -> None:
    package(feed, "Contoso.Lib", "contoso", versions=["1.0.0", "2.0.0"])
    before = set(feed.blobs.list_keys("packages/contoso.lib/"))
    assert len(before) == 4
    deleted = packages.delete_version(feed, OPERATOR, "CONTOSO.LIB", "1.0")  # normalized: 1.0 is 1.0.0
    assert deleted.version == "1.0.0"
    assert set(feed.blobs.list_keys("packages/contoso.lib/")) == {k for k in before if "/2.0.0/" in k}
    [remaining] = packages.list_packages(feed)
    assert [v.version for v in remaining.versions] == ["2.0.0"] and remaining.owners == ("contoso",)
    event = audit.list_events(feed)[-1]
    assert (event.action, event.subject, event.after) == ("package:version:delete", "Contoso.Lib/1.0.0", None)
    assert event.before is not None and sorted(event.before["blobs"]) == sorted(k for k in before if "/1.0.0/" in k)
    with pytest.raises(NotFoundError, match=re.escape("no version '1.0.0' of package 'Contoso.Lib'")):
        packages.delete_version(feed, OPERATOR, "Contoso.Lib", "1.0.0")
    with pytest.raises(InvalidInputError, match="'one' is not a valid NuGet version"):
        packages.delete_version(feed, OPERATOR, "Contoso.Lib", "one")


def test_a_blob_that_cannot_be_deleted_is_logged_and_the_row_stays_deleted(
    feed: ServiceContext, caplog: pytest.LogCaptureFixture
) -> None:
    package(feed, "Contoso.Lib", "contoso")

    class Stubborn:  # the backend's store, except that deleting fails
        def __init__(self, inner: BlobStore) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> object:
            return getattr(self.inner, name)

        def delete(self, key: str) -> bool:
            raise StorageError(f"cannot delete '{key}': access denied")

    stubborn = dataclasses.replace(feed, blobs=cast(BlobStore, Stubborn(feed.blobs)))
    with caplog.at_level(logging.ERROR, logger="nuseal.server.services.packages"):
        packages.delete_version(stubborn, OPERATOR, "Contoso.Lib", "1.0.0")
    assert packages.list_packages(feed)[0].versions == ()
    assert "could not delete blob packages/contoso.lib/1.0.0/" in caplog.text
    assert len(list(feed.blobs.list_keys("packages/"))) == 2  # orphans: never served, left for clean-up


def test_unlisting_an_unknown_version(feed: ServiceContext) -> None:
    package(feed, "Contoso.Lib", "contoso")
    with pytest.raises(NotFoundError, match=re.escape("no version '9.0.0'")):
        packages.set_listed(feed, OPERATOR, "Contoso.Lib", "9.0.0", listed=False)
    assert packages.set_listed(feed, OPERATOR, "Contoso.Lib", "1.0.0", listed=True) is False
