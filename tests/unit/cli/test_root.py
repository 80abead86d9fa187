"""The root ``nuseal`` help page and the unknown-command error come from the command table (``nuseal.cli.commands``)
without typer or any command module; they must be what typer prints with every command module loaded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tests.support.cli import run, script
from typer.main import get_command

from nuseal.cli import commands, entry


def test_the_table_is_what_typer_lists_with_every_module_loaded() -> None:
    from nuseal.cli.app import app

    group = get_command(app)
    ctx = group.make_context("nuseal", ["--version"], resilient_parsing=True)
    names = group.list_commands(ctx)  # type: ignore[attr-defined]
    assert names == list(commands.COMMANDS)
    limit = 100 - 6 - max(len(name) for name in names)  # click's format_commands at HELP_WIDTH
    shown = {name: group.get_command(ctx, name).get_short_help_str(limit) for name in names}  # type: ignore[attr-defined]
    assert shown == {name: entry_.summary for name, entry_ in commands.COMMANDS.items()}


@pytest.mark.parametrize("args", [["--help"], ["-h"], []], ids=lambda a: " ".join(a) or "(nothing)")
def test_the_root_page_is_typers_byte_for_byte(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        entry.main(args)
    ours = capsys.readouterr()
    typers = run(*args)
    assert (done.value.code, ours.out, ours.err) == typers
    assert ours.out.startswith("Usage: nuseal [options] COMMAND [ARGS]...\n")
    assert "  worker            Run background job workers" in ours.out


@pytest.mark.parametrize("args", [["sgn", "x"], ["verfy"], ["a'b"], ["nope", "--help"], ["repo"], ["trus", "-h"],
                                  ["admn", "repo", "list"]], ids=" ".join)
def test_an_unknown_command_is_worded_as_typer_words_it(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        entry.main(args)
    ours = capsys.readouterr()
    assert (done.value.code, ours.out, ours.err) == run(*args)
    assert ours.err.startswith(f"error: No such command {args[0]!r}")


def test_the_root_page_and_a_typo_load_no_typer_and_no_command_module(tmp_path: Path) -> None:
    modules = sorted({f"nuseal.cli.{entry_.module}" for entry_ in commands.COMMANDS.values()})
    probe = ("import sys\n"
             "from nuseal.cli.entry import main\n"
             "try:\n    main(sys.argv[1:])\n"
             "except SystemExit:\n"
             f"    print(sorted(m for m in sys.modules if m in {[*modules, 'typer', 'click']!r}), file=sys.stderr)\n")
    for args in (["--help"], [], ["sgn"]):
        done = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, cwd=tmp_path)
        assert done.stderr.splitlines()[-1] == "[]", (args, done.stderr)
    assert script("--help", cwd=tmp_path).stdout == run("--help").stdout
