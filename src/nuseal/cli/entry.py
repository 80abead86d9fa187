"""Console-script entry point: import only the module of the invoked command (all of them for help or a typo)."""

from __future__ import annotations

import sys

from nuseal.cli.base import COMMAND_MODULES, app, register


def main(argv: list[str] | None = None) -> None:
    """Run ``nuseal`` with ``argv`` (default: the process arguments); exits with the command's code.

    The root group has no option that takes a value, so the first word that is not an option is the command.
    """
    args = sys.argv[1:] if argv is None else argv
    first = next((a for a in args if not a.startswith("-")), None)
    if first in COMMAND_MODULES:
        register({COMMAND_MODULES[first]})
    elif not (first is None and "--version" in args):  # the version needs no command; help and typos need all
        register()
    app(args=args, prog_name="nuseal")
