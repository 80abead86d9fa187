"""The engine's last resort: an exception escaping every boundary (a bug) becomes that package's verdict, marked so
that tests notice, and the batch goes on (``nuseal verify`` keeps verifying the packages after it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from nuseal.findings import Severity
from nuseal.package import hashing
from nuseal.verify import engine
from nuseal.verify.engine import TrustContext, verify_package
from tests.conftest import VECTORS
from tests.fuzz.common import NOW, verify_policy

BROKEN = VECTORS / "real" / "Antlr.3.5.0.2.nupkg"
GOOD = VECTORS / "real" / "Dapper.2.0.78.nupkg"


@pytest.fixture
def hashing_bug(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in bug: hashing one particular package raises something no boundary expects."""
    original = hashing.package_hash

    def package_hash(f, layout, entry, name):  # type: ignore[no-untyped-def]
        if Path(f.name).name == BROKEN.name:
            raise ZeroDivisionError("stand-in bug")
        return original(f, layout, entry, name)

    monkeypatch.setattr(engine.hashing, "package_hash", package_hash)


@pytest.mark.usefixtures("hashing_bug")
def test_unexpected_exception_becomes_a_marked_verdict(trust: TrustContext) -> None:
    verdict = verify_package(BROKEN, policy=verify_policy(), trust=trust, now=NOW)
    assert not verdict.valid
    assert verdict.extra["internal_error"].startswith("ZeroDivisionError: stand-in bug at engine.py:")
    assert verdict.error is not None and "internal error" in verdict.error and str(BROKEN) in verdict.error
    [finding] = verdict.findings
    assert finding.code.value == "NU3003" and finding.severity is Severity.ERROR
    assert "ZeroDivisionError: stand-in bug" in finding.message
    assert verify_package(GOOD, policy=verify_policy(), trust=trust, now=NOW).valid


@pytest.mark.usefixtures("hashing_bug")
def test_cli_batch_goes_on_after_an_internal_error() -> None:
    from nuseal.cli.app import app

    # In process: the stand-in bug is a monkeypatch, which worker processes started by a forkserver (whenever
    # another test left a thread running, such as the session's TSA) would not have.
    result = CliRunner().invoke(app, ["verify", "--revocation-mode", "offline", "--parallel", "1", str(BROKEN),
                                      str(GOOD)])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "ZeroDivisionError: stand-in bug" in result.output
    assert "Successfully verified package 'Dapper.2.0.78'." in result.output
