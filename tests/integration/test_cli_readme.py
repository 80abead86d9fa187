"""The README's command table is the commands' own help, and the help itself is readable: every option has a
description, and values show metavars a person reads (``FILE``, ``URL``), never Python types (``<list[str]>``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer.main
from tests.support.cli import README_BEGIN, README_END, command_table, run

from nuseal.cli.app import app

README = Path(__file__).resolve().parents[2] / "README.md"


def _commands() -> list[tuple[tuple[str, ...], Any]]:
    found: list[tuple[tuple[str, ...], Any]] = []

    def walk(command: Any, path: tuple[str, ...]) -> None:
        found.append((path, command))
        for name, child in getattr(command, "commands", {}).items():
            walk(child, (*path, name))

    walk(typer.main.get_command(app), ())
    return found


def test_readme_command_table_matches_the_help() -> None:
    text = README.read_text(encoding="utf-8")
    assert README_BEGIN in text and README_END in text, "README.md lost its command table markers"
    table = text.split(README_BEGIN, 1)[1].split(README_END, 1)[0].strip()
    expected = command_table()
    assert table == expected, "README.md's command table is stale: run `python -m tests.support.cli`"


def test_every_option_and_argument_has_a_description() -> None:
    missing = [
        f"{' '.join(path) or 'nuseal'} {param.name}"
        for path, command in _commands()
        for param in command.params
        if not (getattr(param, "help", None) or "").strip()
    ]
    assert missing == []


def test_help_shows_metavars_not_python_types() -> None:
    for path, _ in _commands():
        code, out, _err = run(*path, "--help")
        assert code == 0, out
        assert not re.search(r"<[A-Za-z_\[\], ]+>", out), f"nuseal {' '.join(path)} --help:\n{out}"
        assert out.startswith(f"Usage: {' '.join(('nuseal', *path))} ")
    short = run("-h")
    assert short.code == 0 and short.stdout == run("--help").stdout
