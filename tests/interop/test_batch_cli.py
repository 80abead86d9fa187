"""Issue 8 at the command line: damaged packages first in a batch, then good ones, through the installed ``nuseal``
console script. Each damaged package gets its own verdict with an NU code, the packages after it are still verified,
nothing prints a traceback, and no library warning reaches the user (even with ``-W error::UserWarning``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import VECTORS
from tests.fuzz.common import RECORDED_MUTANTS

REAL = VECTORS / "real"
GOOD = [REAL / "Newtonsoft.Json.13.0.1.nupkg", REAL / "Antlr.3.5.0.2.nupkg", REAL / "Dapper.2.0.78.nupkg"]
#: Fixtures whose certificates made cryptography warn (over-long name attributes) before warnings were captured.
WARNED_BEFORE = [VECTORS / "fixtures" / name for name in (
    "ExpiredPrimaryAndTimestampCertificatesWithUnavailableRevocationInfo.nupkg",
    "TimestampInvalidGenTimePackage.nupkg", "UntrustedTimestampPackage.nupkg")]


def nuseal(*args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("nuseal")
    if not script.is_file():
        pytest.fail(f"the nuseal console script is not installed next to {sys.executable} (run scripts/install)")
    env = {**os.environ, "PYTHONWARNINGS": "error::UserWarning", "NO_COLOR": "1"}
    return subprocess.run([str(script), *args], capture_output=True, text=True, env=env, timeout=240, check=False)


@pytest.fixture(scope="module")
def damaged(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The recorded crash examples of the mutation campaign (each used to abort the whole batch)."""
    folder = tmp_path_factory.mktemp("damaged")
    paths = []
    for cause, package, offset, xor, _ in RECORDED_MUTANTS:
        data = bytearray((REAL / package).read_bytes())
        data[offset] ^= xor
        path = folder / f"{cause}.nupkg"
        path.write_bytes(bytes(data))
        paths.append(path)
    return paths


def test_damaged_packages_first_do_not_stop_the_batch(damaged: list[Path]) -> None:
    result = nuseal("verify", "--revocation-mode", "offline", "--json", *map(str, damaged), *map(str, GOOD))
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 1, result.stderr
    document = json.loads(result.stdout)
    packages = {Path(p["path"]).name: p for p in document["packages"]}
    assert list(packages) == [p.name for p in [*damaged, *GOOD]]
    for (cause, _, _, _, code), path in zip(RECORDED_MUTANTS, damaged, strict=True):
        verdict = packages[path.name]
        if code == "valid":
            assert verdict["valid"], (cause, verdict["issues"])
            continue
        assert not verdict["valid"], cause
        assert code in {issue["code"] for issue in verdict["issues"] if issue["level"] == "error"}, (cause, verdict)
        assert "internal error" not in json.dumps(verdict), verdict
    for path in GOOD:
        assert packages[path.name]["valid"], packages[path.name]["issues"]


def test_text_output_reports_each_package_in_order(damaged: list[Path]) -> None:
    result = nuseal("verify", "--revocation-mode", "offline", str(damaged[0]), *map(str, GOOD))
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr, result.stderr
    assert result.returncode == 1
    first_error = result.stdout.index("NU3003")
    for name in ("Newtonsoft.Json.13.0.1", "Antlr.3.5.0.2", "Dapper.2.0.78"):
        assert result.stdout.index(f"Successfully verified package '{name}'.") > first_error


@pytest.mark.parametrize("package", WARNED_BEFORE, ids=[p.name for p in WARNED_BEFORE])
def test_no_library_warning_reaches_the_user(package: Path) -> None:
    inspect = nuseal("inspect", str(package))
    assert inspect.returncode == 0, inspect.stderr
    assert inspect.stderr == ""
    verify = nuseal("verify", "--revocation-mode", "offline", "-v", "d", str(package))
    assert "Warning:" not in verify.stderr and "Traceback" not in verify.stderr, verify.stderr
    assert "Verifying" in verify.stdout and "internal error" not in verify.stdout
