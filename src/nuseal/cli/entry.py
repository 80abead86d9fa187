"""Console-script entry point: import only the module of the invoked command (all of them for help or a typo).

``nuseal verify ...`` and ``nuseal sign ...`` with an ordinary command line run without typer (``nuseal.cli.lean``):
the CLI framework's import is most of a small verification's start-up and a fixed share of every signing.
Everything else, and every such command line the lean parser does not take (usage errors), goes through typer.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    """Run ``nuseal`` with ``argv`` (default: the process arguments); exits with the command's code.

    The root group has no option that takes a value, so the first word that is not an option is the command.
    """
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["verify"] or args[:1] == ["sign"]:  # nuseal.cli.lean.COMMANDS (a test checks they agree)
        from nuseal.cli import lean

        code = lean.run(args[0], args[1:])
        if code is not None:
            if argv is None:  # the console script: this process ends here (not a caller's, such as a test's)
                from nuseal.cli.guard import exit_now

                exit_now(code)
            sys.exit(code)
    from nuseal.cli.base import COMMAND_MODULES, app, register

    first = next((a for a in args if not a.startswith("-")), None)
    if first in COMMAND_MODULES:
        register({COMMAND_MODULES[first]})
    elif not (first is None and "--version" in args):  # the version needs no command; help and typos need all
        register()
    app(args=args, prog_name="nuseal")
