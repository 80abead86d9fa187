"""The ``nuseal`` command table without the CLI framework: each command's module and its line on the root help page.

The console entry point (``nuseal.cli.entry``) reads it to import only the invoked command's module, and to print
the root ``--help`` page and the "No such command" error without importing typer or every command module (the
feed server's included: ~1 s of start-up, issue 12). ``nuseal.cli.base`` builds the typer group from the same
names and text, and a test compares this table with what typer lists when every module is loaded, so the two
cannot drift apart.
"""

from __future__ import annotations

from nuseal.cli.declare import Opt
from nuseal.record import Struct

#: The root group's help text (``nuseal --help``).
ROOT_DOC = "Sign, verify and trust NuGet packages, byte-compatible with the NuGet client."

#: The root group's only option (typer adds its eager callback in ``nuseal.cli.base``).
VERSION = Opt(False, ("--version",), help="Print nuseal's version and exit.")


class CommandEntry(Struct, frozen=True):
    """Where a command (or group) is defined, and its summary as the root help page shows it: the first sentence
    of its help, shortened by click to the page's width (``worker``'s ends in ``...``)."""

    module: str
    summary: str


#: Every command and group, in the order help lists them (the README's).
COMMANDS: dict[str, CommandEntry] = {
    "verify": CommandEntry("verify", "Verify package signatures as `dotnet nuget verify` does."),
    "inspect": CommandEntry("verify", "Show everything inside a package signature."),
    "sign": CommandEntry("sign", "Author-sign NuGet packages (like 'dotnet nuget sign')."),
    "repo-sign": CommandEntry("sign", "Repository-sign packages (like 'nuget reposign')."),
    "remove-signature": CommandEntry("sign", "Remove package signatures, byte-exact."),
    "trust": CommandEntry("trust", "Manage the trusted signers of nuget.config (like 'dotnet nuget trust')."),
    "cert": CommandEntry("cert", "Create, export and inspect signing certificates."),
    "tsa": CommandEntry("tsa", "Run an RFC 3161 timestamp authority."),
    "install": CommandEntry("install", "Install a package and its dependencies from NuGet V3 feeds."),
    "serve": CommandEntry("serve", "Run the NuGet V3 feed server until interrupted (Ctrl+C)."),
    "worker": CommandEntry("serve", "Run background job workers (validation, re-signing) for a feed until..."),
    "admin": CommandEntry("admin", "Administer a nuseal feed (operators)."),
}

#: Command (or group) name → the module that defines it.
COMMAND_MODULES: dict[str, str] = {name: entry.module for name, entry in COMMANDS.items()}


def root_page() -> str | None:
    """``nuseal --help`` (``nuseal.cli.helptext``), or ``None`` when typer must lay it out."""
    from nuseal.cli.helptext import page

    summaries = [(name, entry.summary) for name, entry in COMMANDS.items()]
    return page("nuseal", ROOT_DOC, {"version": VERSION}, {"version"}, commands=summaries)


def no_such_command(name: str) -> str:
    """click's and typer's usage error for an unknown command ``name``, with typer's suggestions."""
    from difflib import get_close_matches

    message = f"No such command {name!r}."
    matches = get_close_matches(name, list(COMMANDS))
    if matches:
        message = f"{message.rstrip('.')}. Did you mean {', '.join(repr(m) for m in matches)}?"
    return f"{message} (nuseal)"
