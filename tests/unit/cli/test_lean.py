"""The lean ``nuseal verify`` path (``nuseal.cli.lean``) agrees with the typer command on every option: the same
values reach ``verify_run.run`` for every command line the lean parser takes, and everything else (help, usage
errors, unusual forms) is left to typer. Output and exit codes match the typer path for the same command lines."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import VECTORS
from tests.support import tamper
from tests.support.cli import run, script
from typer.main import get_command

from nuseal.cli import declare, lean, verify_run
from nuseal.cli.declare import TrustArgs, VerifyArgs

FP1, FP2 = "AB" * 32, "cd" * 32

#: Command lines the lean parser takes; typer must read each one the same way.
TAKEN = [
    ["a.nupkg"],
    ["a.nupkg", "b.nupkg", "--json"],
    ["-v", "q", "a.nupkg"],
    ["--verbosity=detailed", "a.nupkg"],
    ["--verbosity", "diag", "a.nupkg", "-v", "m"],
    ["--certificate-fingerprint", FP1, "a.nupkg", f"--certificate-fingerprint={FP2}"],
    ["--parallel", "2", "a.nupkg"],
    ["--parallel=1", "a.nupkg", "--all", "--signatures"],
    ["--configfile", "x.config", "a.nupkg"],
    ["--trust-roots", "r.pem", "--timestamp-roots=t.pem", "a.nupkg"],
    ["--revocation-mode", "OFFLINE", "a.nupkg", "--revocation-timeout", "2.5"],
    ["--revocation-mode=online", "*.nupkg", "--json", "--json"],
]

#: Command lines the lean parser leaves to typer (help, usage errors, forms it does not read).
LEFT = [
    [], ["--help", "a.nupkg"], ["-h", "a.nupkg"], ["a.nupkg", "--nope"], ["--parallel", "0", "a.nupkg"],
    ["--parallel", "x", "a.nupkg"], ["--parallel", "-1", "a.nupkg"], ["-v", "loud", "a.nupkg"],
    ["--revocation-mode", "maybe", "a.nupkg"], ["--revocation-timeout", "0", "a.nupkg"], ["--json=1", "a.nupkg"],
    ["--", "a.nupkg"], ["-vq", "a.nupkg"], ["--configfile"], ["a.nupkg", "-v"], ["-", "a.nupkg"],
    ["--certificate-fingerprint", "zz", "a.nupkg"], ["--configfile", "--json", "a.nupkg"],
]


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[VerifyArgs, TrustArgs]]]:
    calls: list[tuple[VerifyArgs, TrustArgs]] = []

    def fake_run(args: VerifyArgs, trust: TrustArgs) -> int:
        calls.append((args, trust))
        return 0

    monkeypatch.setattr(verify_run, "run", fake_run)
    monkeypatch.delenv(declare.REVOCATION_ENV, raising=False)
    yield calls


def _typer_values(argv: list[str], calls: list[tuple[VerifyArgs, TrustArgs]]) -> tuple[VerifyArgs, TrustArgs]:
    code, _, err = run("verify", *argv, env=dict(os.environ))
    assert code == 0, err
    return calls.pop()


@pytest.mark.parametrize("argv", TAKEN, ids=" ".join)
def test_lean_reads_every_option_as_typer_does(argv: list[str], captured: list[Any]) -> None:
    assert lean.run("verify", argv) == 0
    ours = captured.pop()
    assert ours == _typer_values(argv, captured)


@pytest.mark.parametrize("value", ["offline", "OffLine", ""])
def test_revocation_mode_from_the_environment(value: str, captured: list[Any],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(declare.REVOCATION_ENV, value)
    assert lean.run("verify", ["a.nupkg"]) == 0
    ours = captured.pop()
    assert ours == _typer_values(["a.nupkg"], captured)
    assert ours[1].revocation.value == (value.lower() or "online")


@pytest.mark.parametrize("argv", LEFT, ids=lambda a: " ".join(a) or "(nothing)")
def test_lean_leaves_help_and_usage_errors_to_typer(argv: list[str], captured: list[Any]) -> None:
    assert lean.run("verify", argv) is None
    assert captured == []


def test_the_typer_command_has_exactly_the_declared_options() -> None:
    from nuseal.cli.app import app

    command = get_command(app).commands["verify"]  # type: ignore[attr-defined]
    declared = {**declare.VERIFY, **declare.TRUST}
    params = {p.name: p for p in command.params}
    assert set(params) == set(declared)
    for name, opt in declared.items():
        assert tuple(params[name].opts) == (opt.flags or (name,)), name
        assert params[name].envvar == opt.envvar, name


# --- the same output through the console script (lean) and in process (typer) ---------------------------------

REAL = VECTORS / "real"


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("lean")
    for name in ("Newtonsoft.Json.13.0.1.nupkg", "Dapper.2.0.78.nupkg", "NUnit.2.6.4__unsigned.nupkg"):
        (folder / name).write_bytes((REAL / name).read_bytes())
    tamper.append_to_entry(REAL / "Antlr.3.5.0.2.nupkg", folder / "Antlr.3.5.0.2.nupkg")
    return folder


@pytest.mark.parametrize("argv", [
    ["--revocation-mode", "offline", "*.nupkg"],
    ["--revocation-mode", "offline", "-v", "detailed", "Dapper.2.0.78.nupkg", "missing.nupkg"],
    ["--revocation-mode=offline", "--json", "--parallel", "1", "*.nupkg"],
    ["--revocation-mode", "offline", "-v", "q", "Antlr.3.5.0.2.nupkg", "--certificate-fingerprint", FP1],
], ids=" ".join)  # fmt: skip
def test_lean_output_matches_typer(argv: list[str], packages: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lean_result = script("verify", *argv, cwd=packages)
    monkeypatch.chdir(packages)
    typer_result = run("verify", *argv)
    assert lean_result == typer_result


# --- help without typer ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_lean_help_is_typers_help_byte_for_byte(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert lean.run("verify", [flag]) == 0
    ours = capsys.readouterr().out
    code, typers, _ = run("verify", "--json", flag)  # not a lone help flag: typer prints it
    assert code == 0
    assert ours == typers
    assert ours.startswith("Usage: nuseal verify [options] PACKAGE...\n") and "[default: normal]" in ours


def test_lean_help_through_the_console_script_loads_no_typer(tmp_path: Path) -> None:
    done = script("verify", "--help", cwd=tmp_path, env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert done.code == 0 and "--revocation-mode online|offline" in done.stdout
    assert " typer" not in done.stderr and "nuseal.cli.lean" in done.stderr


def test_help_declarations_it_cannot_lay_out_are_left_to_typer() -> None:
    from nuseal.cli.helptext import page

    odd = {"count": declare.Opt(3, ("--count",), metavar="N", help="A number.")}
    assert page("nuseal x", "Doc.", odd, set()) is None
    no_metavar = {"name": declare.Opt("a", ("--name",), help="A name.")}
    assert page("nuseal x", "Doc.", no_metavar, set()) is None
    assert page("nuseal x", "\b\nraw", {}, set()) is None


def test_console_script_exit_runs_atexit_and_flushes_everything(packages: Path) -> None:
    """The lean path ends the process without the interpreter's teardown (``guard.exit_now``): atexit functions
    still run, every line is written, and the exit code is the verdict's."""
    code = ("import atexit, sys\n"
            "atexit.register(lambda: print('atexit ran', file=sys.stderr))\n"
            "from nuseal.cli.entry import main\n"
            "sys.argv = ['nuseal', *sys.argv[1:]]\n"
            "main()\n")
    argv = ["verify", "--revocation-mode", "offline", "-v", "diag", "*.nupkg"]
    done = subprocess.run([sys.executable, "-c", code, *argv], cwd=packages, capture_output=True, text=True)
    assert done.returncode == 1  # the tampered package
    assert done.stderr.endswith("atexit ran\n")
    assert done.stdout.count("Verifying Dapper.2.0.78") == 1 and len(done.stdout) > 4000
    assert done.stdout == script(*argv, cwd=packages).stdout


def test_lean_interrupts_end_as_typers_do(capsys: pytest.CaptureFixture[str]) -> None:
    from nuseal.cli.guard import EXIT_FAILURE, EXIT_INTERRUPTED, run_command

    def raising(exc: BaseException) -> None:
        raise exc

    assert run_command(lambda: raising(KeyboardInterrupt())) == EXIT_INTERRUPTED == 130
    assert capsys.readouterr() == ("", "")
    assert run_command(lambda: raising(EOFError())) == EXIT_FAILURE
    assert capsys.readouterr() == ("", "\nerror: aborted\n")


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    for copy in range(60):  # ~2 KB of diagnostic output each: more than a pipe holds
        (tmp_path / f"Dapper.{copy}.nupkg").write_bytes((REAL / "Dapper.2.0.78.nupkg").read_bytes())
    reader = subprocess.Popen([str(Path(sys.executable).parent / "nuseal"), "verify", "--revocation-mode", "offline",
                               "-v", "diag", "--parallel", "1", "*.nupkg"], cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    assert reader.stdout is not None and reader.stderr is not None
    assert b"Verifying" in reader.stdout.read(20)
    reader.stdout.close()  # the reader goes away while nuseal still writes
    err = reader.stderr.read().decode()
    assert reader.wait(timeout=120) == 1  # every package is valid: 1 is the closed pipe, as with typer
    assert err == "", err


def test_parse_leaves_extra_and_single_arguments_to_typer() -> None:
    flag_only = {"as_json": declare.JSON}
    assert lean.parse(["--json"], flag_only, {"as_json": bool}) == {"as_json": True}
    assert lean.parse(["--json", "extra"], flag_only, {"as_json": bool}) is None
    single = {"package": declare.Opt(..., metavar="FILE", help="A file.")}
    assert lean.parse(["a"], single, {"package": Path}) is None


def test_parse_converts_only_the_types_it_knows() -> None:
    ratio = {"ratio": declare.Opt(None, ("--ratio",), metavar="X", help="A float without a parser.")}
    assert lean.parse(["--ratio", "1.5"], ratio, {"ratio": float | None}) is None
    paths = {"files": declare.Opt(..., metavar="FILE...", help="Files.")}
    assert lean.parse(["a", "b"], paths, {"files": list[Path]}) == {"files": [Path("a"), Path("b")]}


@pytest.mark.parametrize("record", [type_ for command in lean.COMMANDS.values() for type_, _ in command.groups],
                         ids=lambda record: record.__name__)
def test_field_types_are_what_get_type_hints_gives(record: type[Any]) -> None:
    import typing

    ours = lean.field_types(record)
    theirs = typing.get_type_hints(record)
    assert set(ours) == set(record.__record_fields__)
    assert all(ours[name] == theirs[name] for name in ours)
