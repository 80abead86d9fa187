"""Small builders for server tests: accounts, packages with versions, principals. ``package`` inserts available
versions as rows with blobs in the store, as the push path leaves them, without the cost of a push (tests of
the push itself use ``nuseal.server.services.push`` and ``tests.support.feed_packages``)."""

from __future__ import annotations

import io
from collections.abc import Sequence

from nuseal.server.db.models import PackageVersion, VersionStatus
from nuseal.server.services import accounts, packages
from nuseal.server.services.context import ServiceContext
from nuseal.server.services.permissions import Operator, Principal

OPERATOR = Operator()


def user(ctx: ServiceContext, name: str, *, site_admin: bool = False) -> accounts.AccountInfo:
    return accounts.add_user(ctx, OPERATOR, name, site_admin=site_admin)


def organization(
    ctx: ServiceContext, name: str, *, admins: Sequence[str], collaborators: Sequence[str] = ()
) -> accounts.AccountInfo:
    info = accounts.add_organization(ctx, OPERATOR, name, admin=admins[0])
    for admin in admins[1:]:
        accounts.set_member(ctx, OPERATOR, name, admin, admin=True)
    for collaborator in collaborators:
        accounts.set_member(ctx, OPERATOR, name, collaborator, admin=False)
    return info


def package(ctx: ServiceContext, package_id: str, owner: str, versions: Sequence[str] = ("1.0.0",)) -> None:
    """Register ``package_id`` for ``owner`` with available, listed versions whose blobs exist in the store."""
    at = ctx.now()
    with ctx.db.transaction() as session:
        registration = packages.register(session, package_id, accounts.find_account(session, owner), at=at)
        for version in versions:
            lower_id, lower = package_id.lower(), packages.lower_version(version)
            blob = f"packages/{lower_id}/{lower}/{lower_id}.{lower}.nupkg"
            nuspec = f"packages/{lower_id}/{lower}/{lower_id}.nuspec"
            ctx.blobs.put(blob, io.BytesIO(f"{package_id} {version}".encode()))
            ctx.blobs.put(nuspec, io.BytesIO(b"<package/>"))
            session.add(PackageVersion(
                registration_id=registration.id, version=version, lower_version=lower, full_version=version,
                is_prerelease="-" in version, is_semver2=False, listed=True, status=VersionStatus.AVAILABLE.value,
                pushed_at=at, package_blob=blob, nuspec_blob=nuspec, package_size=10, published_at=at,
            ))  # fmt: skip


def principal(ctx: ServiceContext, user_name: str, acting_for: str | None = None) -> Principal:
    """A signed-in ``user_name`` acting for ``acting_for`` (default: themselves), without an API key."""
    with ctx.db.reading() as session:
        person = accounts.find_account(session, user_name)
        account = accounts.find_account(session, acting_for or user_name)
        return Principal(user_id=person.id, account_id=account.id, label=person.name)
