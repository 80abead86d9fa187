"""Running ``nuseal``: in process (through the root group, so the CLI's error handler runs) or through the
installed console script in a subprocess (what a user runs, with the lazy loading of command modules)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from typer.testing import CliRunner


class Result(NamedTuple):
    """Exit code and outputs; unpacks as ``code, out, err``."""

    code: int
    stdout: str
    stderr: str


def run(*args: str, env: Mapping[str, str] | None = None) -> Result:
    """``nuseal ARGS`` in process, every command module loaded (fast; the error handler included)."""
    from nuseal.cli.app import app

    result = CliRunner().invoke(app, list(args), env=dict(env) if env is not None else None)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Result(result.exit_code, result.stdout, result.stderr)


def console_script() -> Path:
    """The ``nuseal`` script that ``pip install`` put next to this interpreter; fails the test when missing."""
    script = Path(sys.executable).parent / "nuseal"
    if not script.is_file():
        pytest.fail(f"the nuseal console script is not installed at {script}: run scripts/install --test")
    return script


def script(
    *args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None, timeout: float = 120,
    preexec_fn: object = None,
) -> Result:
    """``nuseal ARGS`` through the installed console script, in a subprocess with the real clock."""
    environment = {**os.environ, **(env or {})}
    environment.pop("NUSEAL_TRACEBACK", None)
    done = subprocess.run(
        [str(console_script()), *args], cwd=cwd, env=environment, capture_output=True, text=True,
        timeout=timeout, stdin=subprocess.DEVNULL, preexec_fn=preexec_fn,  # type: ignore[arg-type]
    )  # fmt: skip
    return Result(done.returncode, done.stdout, done.stderr)


README_BEGIN = "<!-- commands: made from --help; tests/integration/test_cli_readme.py checks it -->"
README_END = "<!-- end of commands -->"


def command_table() -> str:
    """The README's command table, made from the commands' own help: usage, summary and option names."""
    import typer.main

    from nuseal.cli.app import app

    rows = ["| command | what | options |", "|---|---|---|"]

    def walk(command: Any, ctx: Any) -> None:
        children = getattr(command, "commands", {})
        own_options = [p for p in command.get_params(ctx) if p.param_type_name == "option" and "--help" not in p.opts]
        if not children or own_options:  # a command, or a group that does something itself (trust lists)
            usage = " ".join([ctx.command_path, *command.collect_usage_pieces(ctx)])
            options = " ".join(max(p.opts, key=len) for p in own_options)
            summary = command.get_short_help_str(limit=200)
            rows.append(f"| `{usage}` | {summary.replace('|', '/')} | {options.replace('|', '/')} |")
        for name in command.list_commands(ctx) if children else ():
            child = children[name]
            walk(child, child.make_context(name, [], parent=ctx, resilient_parsing=True))

    root = typer.main.get_command(app)
    walk(root, root.make_context("nuseal", [], resilient_parsing=True))
    return "\n".join(rows)


def write_readme_table(readme: Path) -> None:
    """Replace the README's command table with ``command_table()`` (``python -m tests.support.cli``)."""
    text = readme.read_text(encoding="utf-8")
    head, rest = text.split(README_BEGIN, 1)
    tail = rest.split(README_END, 1)[1]
    readme.write_text(f"{head}{README_BEGIN}\n{command_table()}\n{README_END}{tail}", encoding="utf-8")


if __name__ == "__main__":
    write_readme_table(Path(__file__).resolve().parents[2] / "README.md")
