"""The typer application object and lazy registration of the command modules.

Each command module attaches its commands to ``app`` when imported. The console entry point imports only the
module the invoked command needs, so ``nuseal sign`` does not pay for importing the feed client or the trust
commands (start-up time is part of every signing and verification benchmark).
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="nuseal",
    help="Sign, verify and trust NuGet packages, byte-compatible with the NuGet client.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Sign, verify and trust NuGet packages, byte-compatible with the NuGet client."""
    # A root callback keeps ``app`` a command group when only one single-command module is loaded
    # (``nuseal serve``); the cli branch's root callback (``--version``) replaces this one.

#: Command (or group) name → the module that defines it.
COMMAND_MODULES: dict[str, str] = {
    "verify": "verify", "inspect": "verify",
    "sign": "sign", "repo-sign": "sign", "remove-signature": "sign",
    "trust": "trust", "cert": "cert", "tsa": "tsa", "install": "install",
    "serve": "serve", "worker": "serve",
    "admin": "admin_repo",  # admin_repo imports admin and adds its 'repo-cert' group to it
}

_loaded: set[str] = set()


def register(modules: set[str] | None = None) -> None:
    """Import the given command modules (all when None) so that their commands exist on ``app``."""
    for module in sorted(modules if modules is not None else set(COMMAND_MODULES.values())):
        if module not in _loaded:
            importlib.import_module(f"nuseal.cli.{module}")
            _loaded.add(module)
