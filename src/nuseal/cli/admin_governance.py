"""``nuseal admin cert ...`` and ``nuseal admin signer ...``: account certificates and required signers (issue 10).

Part of the admin contract (names, output lines, ``--json`` documents and exit codes are used by scripts):

- ``cert add ACCOUNT FILE.cer``: the SHA-256 fingerprint alone on stdout (details on stderr); a refused upload
  is ``error: ...`` with exit 1.
- ``cert remove ACCOUNT FINGERPRINT``, ``cert list ACCOUNT [--json]``.
- ``signer set PACKAGE_ID ACCOUNT|Any``, ``signer show PACKAGE_ID [--json]`` (the signer and what it means now).

The data options go before the group (``nuseal admin --data DIR cert ...``) like every admin command; these
commands also accept them after the command (``nuseal admin cert list alice --data DIR``), which win.
The groups attach themselves to ``nuseal admin``; :mod:`nuseal.cli.admin` imports this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from nuseal.cli import admin_group
from nuseal.cli import server_options as opt
from nuseal.cli.admin_group import LATE_DATA, DataOptions, admin_app, operator, print_json
from nuseal.cli.base import command, group
from nuseal.cli.options import JSON

if TYPE_CHECKING:
    pass

cert_app = group("cert", "Author-signing certificates registered to accounts.", admin_app)
signer_app = group("signer", "The required signer of packages.", admin_app)


# --- certificates ------------------------------------------------------------------------------------------------


@command(cert_app, "add", LATE_DATA)
def cert_add(
    ctx: typer.Context,
    account: str = typer.Argument(..., metavar="ACCOUNT", help="User or organization."),
    file: Path = typer.Argument(..., metavar="FILE.cer", help="The certificate, DER encoded (.cer)."),
    *,
    late: DataOptions,
) -> None:
    """Register a certificate to ACCOUNT and print its SHA-256 fingerprint."""
    from nuseal.server.services import certificates

    try:
        with file.open("rb") as handle:
            payload = handle.read(certificates.MAX_CERTIFICATE_BYTES + 1)
    except OSError as exc:
        opt.fail(f"cannot read '{file}': {exc.strerror or exc}")
    services = admin_group.context(ctx, late)
    registration = certificates.register(services, operator(), account, payload, file.name)
    info = registration.certificate
    typer.echo(info.sha256)
    if registration.added:
        typer.echo(f"Registered certificate {info.sha256} ({info.subject}, expires {info.not_after.date()}) "
                   f"to {account}.", err=True)  # fmt: skip
    else:
        typer.echo(f"Certificate {info.sha256} already is registered to {account}.", err=True)


@command(cert_app, "remove", LATE_DATA)
def cert_remove(
    ctx: typer.Context,
    account: str = typer.Argument(..., metavar="ACCOUNT", help="User or organization."),
    fingerprint: str = typer.Argument(..., metavar="FINGERPRINT", help="SHA-256 fingerprint (hex)."),
    *,
    late: DataOptions,
) -> None:
    """Unregister a certificate from ACCOUNT (other accounts keep it)."""
    from nuseal.server.services import certificates

    services = admin_group.context(ctx, late)
    sha256 = certificates.parse_fingerprint(fingerprint)
    removed = certificates.unregister(services, operator(), account, sha256)
    typer.echo(f"Removed certificate {sha256} from {account}." if removed
               else f"Certificate {sha256} is not registered to {account}.")  # fmt: skip


@command(cert_app, "list", LATE_DATA)
def cert_list(
    ctx: typer.Context,
    account: str = typer.Argument(..., metavar="ACCOUNT", help="User or organization."),
    as_json: bool = JSON,
    *,
    late: DataOptions,
) -> None:
    """List the certificates registered to ACCOUNT."""
    from nuseal.server.services import certificates

    services = admin_group.context(ctx, late)
    found = certificates.list_for_account(services, operator(), account)
    now = services.now()
    if as_json:
        print_json({"account": account, "certificates": [info.to_dict(now) for info in found]})
        return
    if not found:
        typer.echo(f"No certificates for {account}.")
    for info in found:
        state = " (expired)" if info.is_expired(now) else ""
        typer.echo(f"{info.sha256}  expires {info.not_after.date().isoformat()}{state}  {info.subject}  "
                   f"issuer {info.issuer}")  # fmt: skip


# --- required signer -------------------------------------------------------------------------------------------


@command(signer_app, "set", LATE_DATA)
def signer_set(
    ctx: typer.Context,
    package_id: str = typer.Argument(..., metavar="PACKAGE_ID", help="Package id."),
    signer: str = typer.Argument(..., metavar="ACCOUNT|Any", help="An owner of the package, or Any."),
    *,
    late: DataOptions,
) -> None:
    """Set the required signer of a package: one of its owners, or Any."""
    from nuseal.server.services import signing_rules

    services = admin_group.context(ctx, late)
    state, changed = signing_rules.set_signer(services, operator(), package_id, signer)
    shown = state.required_signer or signing_rules.ANY
    typer.echo(f"The required signer of {state.package_id} is now {shown}." if changed
               else f"The required signer of {state.package_id} already is {shown}.")  # fmt: skip


@command(signer_app, "show", LATE_DATA)
def signer_show(
    ctx: typer.Context,
    package_id: str = typer.Argument(..., metavar="PACKAGE_ID", help="Package id."),
    as_json: bool = JSON,
    *,
    late: DataOptions,
) -> None:
    """Show the required signer of a package and what it means for the next push."""
    from nuseal.server.services import signing_rules

    services = admin_group.context(ctx, late)
    state = signing_rules.show_signer(services, operator(), package_id)
    if as_json:
        print_json(state.to_dict())
        return
    owners = ", ".join(f"{o.name} ({o.certificates} certificate{'' if o.certificates == 1 else 's'})"
                       for o in state.owners)  # fmt: skip
    typer.echo(f"{state.package_id}  required signer: {state.required_signer or signing_rules.ANY}")
    typer.echo(f"signing: {state.policy.value}")
    typer.echo(state.message)
    typer.echo(f"owners: {owners}")
