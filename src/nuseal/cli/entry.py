"""Console-script entry point: import only the module of the invoked command (all of them for help or a typo).

``nuseal verify ...`` and ``nuseal sign ...`` with an ordinary command line run without typer (``nuseal.cli.lean``):
the CLI framework's import is most of a small verification's start-up and a fixed share of every signing.
The root help page and the "No such command" error come from the command table (``nuseal.cli.commands``) without
importing typer or any command module. Everything else, and every command line the lean parser does not take
(usage errors), goes through typer with only the invoked command's module imported.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    """Run ``nuseal`` with ``argv`` (default: the process arguments); exits with the command's code.

    The root group has no option that takes a value, so the first word that is not an option is the command.
    """
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["verify"] or args[:1] == ["sign"]:  # nuseal.cli.lean.COMMANDS (a test checks they agree)
        from nuseal.cli import collector, lean, regexes

        collector.pause()  # start-up makes no garbage worth collecting (nuseal.cli.collector)
        if args[0] == "verify":
            from nuseal.cli import prefetch

            prefetch.from_command_line(args[1:])  # a large package's hash starts now, on another core

        regexes.seed()  # before anything compiles them (cryptography.x509 and its email.utils: sign's too)
        code = lean.run(args[0], args[1:])
        if code is not None:
            if argv is None:  # the console script: this process ends here (not a caller's, such as a test's)
                from nuseal.cli.guard import exit_now

                exit_now(code)
            sys.exit(code)
        collector.resume()  # typer's path: the collector as usual
    code = _root(args)
    if code is not None:
        sys.exit(code)
    from nuseal.cli.base import COMMAND_MODULES, app, register

    first = next((a for a in args if not a.startswith("-")), None)
    if first in COMMAND_MODULES:
        register({COMMAND_MODULES[first]})
    elif not (first is None and "--version" in args):  # the version needs no command; help and typos need all
        register()
    app(args=args, prog_name="nuseal")


def _root(args: list[str]) -> int | None:
    """The root help page (exit 0, or 2 without a command) or the unknown-command error (exit 2), printed from the
    command table; ``None`` for anything else."""
    from nuseal.cli import commands
    from nuseal.cli.guard import EXIT_USAGE, echo, error

    if args and args[0] and not args[0].startswith("-"):
        if args[0] in commands.COMMANDS:
            return None
        return error(commands.no_such_command(args[0]), EXIT_USAGE)
    if args not in ([], ["-h"], ["--help"]):
        return None
    text = commands.root_page()
    if text is None:
        return None
    echo(text.rstrip("\n"))
    return 0 if args else EXIT_USAGE
