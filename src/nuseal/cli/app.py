"""The ``nuseal`` command: a thin typer app; each command group lives in its own module."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="nuseal",
    help="Sign, verify and trust NuGet packages, byte-compatible with the NuGet client.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    # Imported here so that each module can attach its commands to ``app`` without import cycles.
    from nuseal.cli import (
        cert,  # noqa: F401
        install,  # noqa: F401
        sign,  # noqa: F401
        trust,  # noqa: F401
        tsa,  # noqa: F401
        verify,  # noqa: F401
    )


_register()


def main() -> None:
    """Console-script entry point."""
    app()
