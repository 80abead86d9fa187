"""The CLI's error handler (one line, the right exit code, never a traceback) and package argument expansion."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import pytest
import typer

from nuseal.cli.base import EXIT_FAILURE, EXIT_USAGE, TRACEBACK_ENV, run_guarded
from nuseal.cli.paths import expand
from nuseal.codes import NuCode
from nuseal.errors import SigningError


def _raising(exc: BaseException) -> NoReturn:
    raise exc


@pytest.mark.parametrize(
    ("exc", "code", "line"),
    [
        (SigningError("The package is signed.", NuCode.NU3001), EXIT_FAILURE, "error: NU3001: The package is signed."),
        (FileNotFoundError(2, "No such file or directory", "a.nupkg"), EXIT_FAILURE,
         "error: No such file or directory (a.nupkg)"),
        (typer.BadParameter("'x' is bad", param_hint=["--thing"]), EXIT_USAGE,
         "error: Invalid value for '--thing': 'x' is bad"),
        (typer.Abort(), EXIT_FAILURE, "error: aborted"),
        (KeyError("surprise"), EXIT_FAILURE, "error: unexpected KeyError: 'surprise' (a bug in nuseal"),
    ],
    ids=["nuseal-error", "os-error", "usage", "abort", "bug"],
)
def test_every_failure_is_one_error_line(
    exc: BaseException, code: int, line: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TRACEBACK_ENV, raising=False)
    assert run_guarded(lambda: _raising(exc)) == code
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1 and err.startswith(line), err


def test_traceback_only_on_request(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TRACEBACK_ENV, "1")
    assert run_guarded(lambda: _raising(KeyError("surprise"))) == EXIT_FAILURE
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and err.splitlines()[-1].startswith("error: unexpected KeyError")


def test_success_and_exit_codes_pass_through() -> None:
    assert run_guarded(lambda: None) == 0
    assert run_guarded(lambda: 3) == 3


def test_expand_keeps_argument_order_sorts_globs_and_names_what_is_missing(tmp_path: Path) -> None:
    for name in ("b.nupkg", "a.nupkg", "sub/c.nupkg"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    found, unresolved = expand([
        str(tmp_path / "sub/c.nupkg"), str(tmp_path / "*.nupkg"), str(tmp_path / "a.nupkg"),
        str(tmp_path / "**/*.nupkg"), str(tmp_path / "none*.nupkg"), str(tmp_path / "sub"),
        str(tmp_path / "gone.nupkg"),
    ])  # fmt: skip
    assert found == [tmp_path / "sub/c.nupkg", tmp_path / "a.nupkg", tmp_path / "b.nupkg"]
    assert [u.message for u in unresolved] == [
        f"No file matches the pattern ({tmp_path / 'none*.nupkg'})",
        f"The path is a directory, not a package file ({tmp_path / 'sub'})",
        f"File does not exist ({tmp_path / 'gone.nupkg'})",
    ]
