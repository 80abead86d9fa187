"""The ``nuseal`` command with every command group registered (for ``--help``, tests and embedding)."""

from __future__ import annotations

from nuseal.cli.base import app, register
from nuseal.cli.entry import main

__all__ = ["app", "main"]

register()
