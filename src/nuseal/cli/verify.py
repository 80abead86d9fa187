"""``nuseal verify`` and ``nuseal inspect``: the typer commands (spec §6.8, §7.2).

``verify``'s options are declared once, in ``nuseal.cli.declare``; its work is ``nuseal.cli.verify_run.run``, which
the lean path (``nuseal.cli.lean``) calls too. typer handles ``verify`` for help, usage errors and any command line
the lean parser leaves to it. The library is imported inside the commands, not here: ``nuseal verify --help`` and a
command line that does not parse never load cryptography, the CMS parser or lxml (start-up, docs/performance.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from nuseal.cli import declare
from nuseal.cli.base import app, command
from nuseal.cli.options import JSON, TRUST, TrustArgs, existing_file, option_group

VERIFY = option_group(declare.VerifyArgs, declare.VERIFY, "args")


def verify_command(*, args: declare.VerifyArgs, trust: TrustArgs) -> None:
    from nuseal.cli.verify_run import run

    raise typer.Exit(run(args, trust))


verify_command.__doc__ = declare.VERIFY_DOC  # declared once: the lean help (nuseal.cli.helptext) shows it too
command(app, "verify", VERIFY, TRUST)(verify_command)


@command(app, "inspect")
def inspect_command(
    package: Path = typer.Argument(..., metavar="FILE", help="A .nupkg or a .signature.p7s file."),
    as_json: bool = JSON,
) -> None:
    """Show everything inside a package signature.

    Certificates, signed attributes, timestamps and the repository countersignature.
    """
    from nuseal.render import json as render_json
    from nuseal.render.inspect import inspect_lines

    lines, document = inspect_lines(existing_file(package))
    if as_json:
        sys.stdout.write(render_json.dumps(document) + "\n")
    else:
        for line in lines:
            typer.echo(line)
