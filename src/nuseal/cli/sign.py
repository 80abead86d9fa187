"""``nuseal sign`` / ``repo-sign`` / ``remove-signature``: the typer commands of signing (spec §7.1).

``sign``'s and the shared signing options are declared once, in ``nuseal.cli.declare``; the work is
``nuseal.cli.sign_run``, which the lean ``sign`` path (``nuseal.cli.lean``) calls too. typer handles ``sign`` for
help, usage errors and any command line the lean parser leaves to it. The library is imported inside the commands:
``--help`` and usage errors never load cryptography or the signers (start-up, docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import typer

from nuseal.cli import declare
from nuseal.cli.base import app, command
from nuseal.cli.declare import SignArgs, SigningArgs
from nuseal.cli.guard import BadOption
from nuseal.cli.options import VERBOSITY, option_group, url_parser
from nuseal.cli.paths import expand_all
from nuseal.cli.sign_run import local_now, located, run_signing
from nuseal.errors import NusealError
from nuseal.render.text import Verbosity

if TYPE_CHECKING:
    from nuseal.sign.common import SignOptions
    from nuseal.sign.repository import RepositorySignRequest
    from nuseal.sign.signers import Signer

__all__ = ["SIGN", "SIGNING", "SigningArgs"]

SIGN = option_group(SignArgs, declare.SIGN, "args")
SIGNING = option_group(SigningArgs, declare.SIGNING, "signing")


def _exit(run: Callable[[], int]) -> None:
    """Run a signing and end with its exit code; a ``BadOption`` becomes click's usage error, as before."""
    try:
        code = run()
    except BadOption as exc:
        raise typer.BadParameter(exc.message, param_hint=[exc.flag]) from None
    if code:
        raise typer.Exit(code)


def sign_command(*, args: SignArgs, signing: SigningArgs) -> None:
    from nuseal.cli.sign_run import sign

    _exit(lambda: sign(args, signing))


sign_command.__doc__ = declare.SIGN_DOC  # declared once: the lean help (nuseal.cli.helptext) shows it too
command(app, "sign", SIGN, SIGNING)(sign_command)


@command(app, "repo-sign", SIGNING)
def repo_sign_command(
    packages: list[str] = typer.Argument(
        ..., metavar="PACKAGE...", help="Packages to repository-sign or countersign: paths or globs."),
    service_index_url: str = typer.Option(
        ..., "--service-index-url", metavar="URL", parser=url_parser("https"), help="The feed's V3 index (https)."),
    owners: str | None = typer.Option(None, "--owners", metavar="OWNER;...", help="Package owners, separated by ';'."),
    *,
    signing: SigningArgs,
) -> None:
    """Repository-sign packages (like 'nuget reposign').

    A primary signature if the package is unsigned, a countersignature if it is author-signed.
    """
    # nuget.exe reposign splits -PackageOwners on ';'; empty items are dropped, blank ones are an error.
    owner_list = tuple(o for o in (owners or "").split(";") if o != "")
    from nuseal.sign.repository import RepositorySignRequest

    def make_request(signer: Signer, options: SignOptions) -> RepositorySignRequest:
        return RepositorySignRequest(signer, service_index_url, owner_list, options).checked()

    _exit(lambda: run_signing(packages, signing, make_request))


@command(app, "remove-signature")
def remove_signature_command(
    packages: list[str] = typer.Argument(..., metavar="PACKAGE...", help="Signed packages to strip: paths or globs."),
    repository_only: bool = typer.Option(
        False, "--repository-only", help="Remove only a repository signature or repository countersignatures."),
    verbosity: Verbosity = VERBOSITY,
) -> None:
    """Remove package signatures, byte-exact.

    With --repository-only, only a repository signature or repository countersignatures.
    """
    from nuseal.sign.removal import Removal, remove_signature

    said = {
        Removal.SIGNATURE_REMOVED: "The package signature was removed",
        Removal.COUNTERSIGNATURES_REMOVED: "The repository countersignature was removed",
        Removal.NOTHING_TO_REMOVE: "The package has no repository signature; nothing was removed",
    }
    failed = False
    for package in expand_all(packages):
        try:
            outcome = remove_signature(package, repository_only=repository_only, now=local_now())
        except (NusealError, OSError) as exc:
            failed = True
            reason = str(exc) if isinstance(exc, NusealError) else (exc.strerror or str(exc))
            typer.echo(f"error: {located(reason, package)}", err=True)
            continue
        if verbosity >= Verbosity.MINIMAL:
            typer.echo(f"{said[outcome]} ({package}).")
    if failed:
        raise typer.Exit(1)
