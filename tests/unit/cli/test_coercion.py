"""nuseal's option coercion (``nuseal.cli.coercion``) gives exactly what typer's pydantic coercion gives: the same
value for every input it handles itself, and typer's own error (and wording) for the rest."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main
from typer._click import Command, Context
from typer._coercion import build_runtime_param
from typer.core import _TyperParameter

from nuseal.cli import coercion

SAMPLES = ["", "0", "1", "-1", "7", "010", "+3", "1_0", " 5", "65536", "99999", "abc", "q", "quiet", "normal", "diag",
           "x" * 3, "online", "OFFLINE", "sha256", "SHA512", "MD5", "https://example.com/v3/index.json",
           "http://127.0.0.1:1/tsa", "ftp://x", "https://", "ab" * 32, "AB" * 20, "a/b.nupkg", "-", "1.2.3.4",
           "not an oid", "2048", "1024", "Contoso", "10", "0.5", "-2", "inf", "nan", "1e3"]


def _params() -> Iterator[tuple[str, Command, _TyperParameter]]:
    from nuseal.cli.app import app

    def walk(command: Command, path: str) -> Iterator[tuple[str, Command, _TyperParameter]]:
        ctx = Context(command)
        for param in command.get_params(ctx):
            if isinstance(param, _TyperParameter):
                yield f"{path} {param.name}", command, param
        for name, child in getattr(command, "commands", {}).items():
            yield from walk(child, f"{path} {name}")

    yield from walk(typer.main.get_command(app), "nuseal")


def _outcome(runtime: Any, value: Any, param: _TyperParameter, ctx: Context) -> tuple[str, Any]:
    try:
        result = runtime.coerce(value, param=param, ctx=ctx)
    except typer.TyperException as exc:
        return "error", (type(exc).__name__, exc.format_message())
    return "value", (type(result).__name__, result)


def test_every_option_is_coerced_as_typer_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "b.nupkg").write_bytes(b"x")
    checked = 0
    fast_values = 0
    for where, command, param in _params():
        ctx = Context(command)
        fast = coercion._Coercion(param.type_descriptor.parameter_info, param.type_descriptor.annotation,
                                  param.type_descriptor)
        slow = build_runtime_param(param.type_descriptor)
        multi = param.multiple or param.nargs == -1
        for sample in SAMPLES:
            value: Any = (sample, sample) if multi else sample
            got, expected = _outcome(fast, value, param, ctx), _outcome(slow, value, param, ctx)
            assert got == expected, (where, value)
            checked += 1
            fast_values += got[0] == "value"
    assert checked > 1000 and fast_values > 300  # every command's options, and most values succeed


def test_commands_get_the_fast_coercion() -> None:
    for where, _, param in _params():
        assert isinstance(param._runtime_param, coercion._Coercion), where
