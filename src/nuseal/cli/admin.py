"""``nuseal admin``: the operator's commands for the feed (migrations, accounts, API keys, owners, packages, audit).

A contract for scripts outside the repository: command names, arguments, output lines and ``--json`` documents
are extended, never renamed. Changes print one confirmation line on stdout; ``apikey create`` prints the new key
alone on stdout (details on stderr). Bad input is ``error: ...`` on stderr with exit 1; usage errors exit 2.
Every change is written to the audit log with the actor ``admin-cli``. The data options (``--data``,
``--database-url``, ``--storage``, ``--config``) go before the subcommand: ``nuseal admin --data DIR user add X``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from nuseal.cli import admin_group
from nuseal.cli.admin_group import admin_app
from nuseal.cli.base import command, group
from nuseal.cli.options import JSON

if TYPE_CHECKING:
    pass

user_app = group("user", "Users.", admin_app)
org_app = group("org", "Organizations and their members.", admin_app)
member_app = group("member", "Members of an organization.", org_app)
apikey_app = group("apikey", "API keys.", admin_app)
owner_app = group("owner", "Package owners.", admin_app)
package_app = group("package", "Packages.", admin_app)

# Arguments several commands take, declared once.
ORG = typer.Argument(..., metavar="ORG", help="Organization name.")
USER = typer.Argument(..., metavar="USER", help="User name.")
OWNER = typer.Argument(..., metavar="OWNER", help="User or organization.")
PACKAGE_ID = typer.Argument(..., metavar="PACKAGE_ID", help="Package id.")
ACCOUNT = typer.Argument(..., metavar="ACCOUNT", help="User or organization.")


# --- migrate ------------------------------------------------------------------------------------------------


@command(admin_app, "migrate")
def migrate(ctx: typer.Context) -> None:
    """Apply the database migrations (also done automatically for the embedded SQLite database)."""
    settings = admin_group.settings(ctx)
    from nuseal.server.bootstrap import migrate_database

    result = migrate_database(settings, actor=admin_group.operator())
    if result.changed:
        typer.echo(f"Migrated the database from {result.before or 'empty'} to revision {result.after}.")
    else:
        typer.echo(f"The database is up to date (revision {result.after}).")


# --- users and organizations --------------------------------------------------------------------------------


@command(user_app, "add")
def user_add(
    ctx: typer.Context,
    name: str = typer.Argument(..., metavar="NAME", help="User name (letters, digits, '_', '.', '-')."),
    email: str | None = typer.Option(None, "--email", metavar="EMAIL", help="Contact address."),
    site_admin: bool = typer.Option(False, "--site-admin", help="May unlist and manage owners of any package."),
) -> None:
    """Create a user."""
    from nuseal.server.services import accounts

    info = accounts.add_user(admin_group.context(ctx), admin_group.operator(), name, email=email, site_admin=site_admin)
    typer.echo(f"Added user {info.name}" + (" (site admin)." if info.is_site_admin else "."))


@command(org_app, "add")
def org_add(
    ctx: typer.Context,
    name: str = ORG,
    admin: str = typer.Option(..., "--admin", metavar="USER", help="Existing user who becomes the first admin."),
    email: str | None = typer.Option(None, "--email", metavar="EMAIL", help="Contact address."),
) -> None:
    """Create an organization with its first admin."""
    from nuseal.server.services import accounts

    info = accounts.add_organization(admin_group.context(ctx), admin_group.operator(), name, admin=admin, email=email)
    typer.echo(f"Added organization {info.name} with admin {admin}.")


@command(member_app, "add")
def member_add(
    ctx: typer.Context,
    organization: str = ORG,
    user: str = USER,
    admin: bool = typer.Option(False, "--admin", help="Admin instead of collaborator."),
) -> None:
    """Add a member (collaborator, or admin with --admin), or change an existing member's role."""
    from nuseal.server.services import accounts

    change = accounts.set_member(admin_group.context(ctx), admin_group.operator(), organization, user, admin=admin)
    role = "admin" if admin else "collaborator"
    messages = {
        accounts.MembershipChange.ADDED: f"Added {user} to {organization} as {role}.",
        accounts.MembershipChange.ROLE_CHANGED: f"{user} is now {role} of {organization}.",
        accounts.MembershipChange.UNCHANGED: f"{user} already is {role} of {organization}.",
    }
    typer.echo(messages[change])


@command(member_app, "remove")
def member_remove(ctx: typer.Context, organization: str = ORG, user: str = USER) -> None:
    """Remove a member (their API keys for the organization are revoked)."""
    from nuseal.server.services import accounts

    revoked = accounts.remove_member(admin_group.context(ctx), admin_group.operator(), organization, user)
    typer.echo(f"Removed {user} from {organization}; revoked {revoked} API key(s).")


# --- API keys -------------------------------------------------------------------------------------------------


@command(apikey_app, "create")
def apikey_create(
    ctx: typer.Context,
    owner: str = typer.Argument(..., metavar="OWNER", help="User or organization the key acts for."),
    user: str | None = typer.Option(
        None, "--user", metavar="USER", help="Member who holds the key (OWNER is an organization)."),
    scope: list[str] = typer.Option(
        [], "--scope", metavar="SCOPE", show_default=False,
        help="package:push, package:pushversion, package:unlist, account:certificates or package:signer "
        "(repeatable; default: package:push).",
    ),
    glob: list[str] = typer.Option(
        [], "--glob", metavar="PATTERN", help="Package id pattern, '*' = any run (repeatable; default: *)."),
    expires_days: int = typer.Option(
        365, "--expires-days", metavar="DAYS", help="Days until the key expires (1-3650)."),
    description: str = typer.Option("", "--description", metavar="TEXT", help="What the key is for."),
) -> None:
    """Create an API key and print it, alone on the line, on stdout (it is shown only this once)."""
    from nuseal.server.services import apikeys

    created = apikeys.create(admin_group.context(ctx), admin_group.operator(), owner, holder_name=user,
                             scopes=scope, globs=glob, expires_in_days=expires_days,
                             description=description)  # fmt: skip
    info = created.info
    typer.echo(created.token)
    typer.echo(f"Created API key {info.key_id} for {info.owner} held by {info.holder}: scopes "
               f"{', '.join(info.scopes)}; packages {', '.join(info.globs)}; expires "
               f"{info.expires_at.isoformat()}. Store it now: it cannot be shown again.", err=True)  # fmt: skip


@command(apikey_app, "list")
def apikey_list(ctx: typer.Context, owner: str = OWNER, as_json: bool = JSON) -> None:
    """List the API keys acting for OWNER (never their secrets)."""
    from nuseal.server.services import apikeys

    context = admin_group.context(ctx)
    keys = apikeys.list_keys(context, owner)
    now = context.now()
    if as_json:
        admin_group.print_json({"owner": owner, "keys": [key.to_dict(now) for key in keys]})
        return
    if not keys:
        typer.echo(f"No API keys for {owner}.")
    for key in keys:
        typer.echo(f"{key.key_id}  {key.state(now):8}  holder {key.holder}  scopes {','.join(key.scopes)}  "
                   f"globs {','.join(key.globs)}  expires {key.expires_at.date().isoformat()}"
                   + (f"  \"{key.description}\"" if key.description else ""))  # fmt: skip


@command(apikey_app, "revoke")
def apikey_revoke(
    ctx: typer.Context,
    owner: str = OWNER,
    key_id: str = typer.Argument(..., metavar="KEY_ID", help="The key's id, as 'apikey list' shows it."),
) -> None:
    """Revoke an API key of OWNER by its id (see 'apikey list')."""
    from nuseal.server.services import apikeys

    info, changed = apikeys.revoke(admin_group.context(ctx), admin_group.operator(), owner, key_id)
    typer.echo(f"Revoked API key {info.key_id} of {info.owner}." if changed
               else f"API key {info.key_id} of {info.owner} was already revoked.")  # fmt: skip


# --- owners and packages ---------------------------------------------------------------------------------------


@command(owner_app, "add")
def owner_add(ctx: typer.Context, package_id: str = PACKAGE_ID, account: str = ACCOUNT) -> None:
    """Make a user or organization an owner of a package."""
    from nuseal.server.services import packages

    added = packages.add_owner(admin_group.context(ctx), admin_group.operator(), package_id, account)
    typer.echo(f"Added {account} as an owner of {package_id}." if added
               else f"{account} already is an owner of {package_id}.")  # fmt: skip


@command(owner_app, "remove")
def owner_remove(ctx: typer.Context, package_id: str = PACKAGE_ID, account: str = ACCOUNT) -> None:
    """Remove an owner from a package (never the last one)."""
    from nuseal.server.services import packages

    packages.remove_owner(admin_group.context(ctx), admin_group.operator(), package_id, account)
    typer.echo(f"Removed {account} from the owners of {package_id}.")


@command(owner_app, "list")
def owner_list(ctx: typer.Context, package_id: str = PACKAGE_ID, as_json: bool = JSON) -> None:
    """List the owners of a package."""
    from nuseal.server.services import packages

    owners = packages.list_owners(admin_group.context(ctx), package_id)
    if as_json:
        admin_group.print_json({"package": package_id, "owners": owners})
    else:
        typer.echo("\n".join(owners))


@command(package_app, "list")
def package_list(ctx: typer.Context, as_json: bool = JSON) -> None:
    """List every package id with its owners and versions."""
    from nuseal.server.services import packages

    found = packages.list_packages(admin_group.context(ctx))
    if as_json:
        admin_group.print_json({"packages": [package.to_dict() for package in found]})
        return
    if not found:
        typer.echo("No packages.")
    for package in found:
        typer.echo(f"{package.id}  owners: {', '.join(package.owners)}")
        for v in package.versions:
            typer.echo(f"  {v.full_version}  {v.status}  {'listed' if v.listed else 'unlisted'}")


@command(package_app, "delete")
def package_delete(
    ctx: typer.Context,
    package_id: str = typer.Argument(..., metavar="ID", help="Package id."),
    version: str = typer.Argument(..., metavar="VERSION", help="Package version."),
) -> None:
    """Delete a version for good: its database row and its blobs (operators only; 'unlist' hides it instead)."""
    from nuseal.server.services import packages

    info = packages.delete_version(admin_group.context(ctx), admin_group.operator(), package_id, version)
    typer.echo(f"Deleted {package_id} {info.version}.")


@command(admin_app, "audit")
def audit(
    ctx: typer.Context,
    as_json: bool = JSON,
    limit: int | None = typer.Option(None, "--limit", metavar="N", min=1, help="Only the last N events."),
) -> None:
    """Show the audit log, oldest first."""
    from nuseal.server.services import audit as audit_log

    events = audit_log.list_events(admin_group.context(ctx), limit=limit)
    if as_json:
        admin_group.print_json({"events": [event.to_dict() for event in events]})
        return
    for event in events:
        typer.echo(f"{event.at.isoformat()}  {event.actor}  {event.action}  {event.subject}")


# The certificate / required-signer groups (issue 10) and the repository certificates (issue 11) live in their own
# modules and attach themselves to admin_app; importing them here registers them.
from nuseal.cli import admin_governance as _admin_governance  # noqa: E402, F401
from nuseal.cli import admin_repo as _admin_repo  # noqa: E402, F401
