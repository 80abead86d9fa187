"""What the start-up of the fast paths loads (issue 12). ``--help`` and command lines that do not parse (an unknown
option, a missing argument) load no library they do not use; a malformed value may load pydantic, which typer
words the error with. Verifying or signing one package loads no CLI framework extras (pydantic, rich), no HTTP
client it does not use and no process pool. Measured in fresh interpreters, through the console script's entry
point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import VECTORS
from tests.support.pki import TEST_PASSWORD, TestPki
from tests.unit.sign.helpers import make_package

#: Top-level packages (and nuseal modules) whose import shows in start-up time.
HEAVY = ("pydantic", "cryptography", "asn1crypto", "lxml", "httpx", "rich", "multiprocessing", "concurrent",
         "nuseal.protocol", "nuseal.verify.engine", "nuseal.sign", "nuseal.x509.roots", "nuseal.trust.nuget_config")
#: Also checked on the lean paths of verify and sign (``nuseal.cli.lean``): the CLI framework and what only typer
#: needs.
CLI_FRAMEWORK = ("typer", "click", "nuseal.cli.base", "nuseal.cli.options", "nuseal.cli.coercion")
_PROBE = """
import atexit, sys
def report():
    loaded = {name for name in sys.modules if any(name == h or name.startswith(h + ".") for h in HEAVY)}
    print("LOADED", " ".join(sorted(h for h in HEAVY if any(n == h or n.startswith(h + ".") for n in loaded))),
          file=sys.stderr)
atexit.register(report)
from nuseal.cli.entry import main
main(sys.argv[1:])
"""


def _loaded(*args: str, cwd: Path, heavy: tuple[str, ...] = HEAVY) -> set[str]:
    code = f"HEAVY = {heavy!r}\n{_PROBE}"
    # HOME in cwd: no user nuget.config (one would load lxml, rightly)
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "HOME": str(cwd)})
    line = next(line for line in done.stderr.splitlines() if line.startswith("LOADED"))
    return set(line.split()[1:])


@pytest.mark.parametrize("args", [("verify", "--help"), ("sign", "--help"), ("verify", "--no-such-option", "x"),
                                  ("sign", "-v", "q")], ids=" ".join)
def test_help_and_usage_errors_load_no_library(args: tuple[str, ...], tmp_path: Path) -> None:
    assert _loaded(*args, cwd=tmp_path) == set()


def test_verifying_one_package_loads_only_what_it_uses(tmp_path: Path) -> None:
    loaded = _loaded("verify", "--revocation-mode", "offline", str(VECTORS / "real" / "Dapper.2.0.78.nupkg"),
                     cwd=tmp_path)
    # no lxml: the identity is read with expat and no nuget.config exists here (issue 12)
    assert loaded == {"cryptography", "nuseal.verify.engine", "nuseal.x509.roots", "nuseal.trust.nuget_config"}


@pytest.mark.parametrize("extra", [(), ("--json", "-v", "detailed"), ("--parallel", "2", "--certificate-fingerprint",
                                                                        "AB" * 32)], ids=" ".join)
def test_verifying_real_packages_loads_no_cli_framework_and_no_asn1crypto(extra: tuple[str, ...],
                                                                           tmp_path: Path) -> None:
    packages = [str(p) for p in sorted((VECTORS / "real").glob("*.nupkg"))]
    loaded = _loaded("verify", "--revocation-mode", "offline", *extra, *packages, cwd=tmp_path,
                     heavy=(*HEAVY, *CLI_FRAMEWORK))
    assert loaded.isdisjoint({"asn1crypto", "pydantic", "rich", "httpx", *CLI_FRAMEWORK}), loaded
    assert "nuseal.verify.engine" in loaded  # the probe saw a verification


def test_signing_one_package_loads_only_what_it_uses(pki: TestPki, tmp_path: Path) -> None:
    package = make_package(tmp_path / "A.1.0.0.nupkg")
    pfx = pki.leaf.write_pfx(tmp_path / "leaf.pfx")
    loaded = _loaded("sign", str(package), "--certificate-path", str(pfx), "--certificate-password", TEST_PASSWORD,
                     cwd=tmp_path)
    assert "pydantic" not in loaded and "rich" not in loaded and "httpx" not in loaded
    assert "multiprocessing" not in loaded and "concurrent" not in loaded and "nuseal.protocol" not in loaded
    assert "nuseal.sign" in loaded


@pytest.mark.parametrize("extra", [(), ("--json", "-v", "detailed", "-o", "out"),
                                   ("--parallel", "1", "--hash-algorithm", "SHA384")], ids=" ".join)
def test_signing_one_package_loads_no_cli_framework(extra: tuple[str, ...], pki: TestPki, tmp_path: Path) -> None:
    package = make_package(tmp_path / "A.1.0.0.nupkg")
    pfx = pki.leaf.write_pfx(tmp_path / "leaf.pfx")
    loaded = _loaded("sign", str(package), "--certificate-path", str(pfx), "--certificate-password", TEST_PASSWORD,
                     *extra, cwd=tmp_path, heavy=(*HEAVY, *CLI_FRAMEWORK))
    assert loaded.isdisjoint({"pydantic", "rich", "httpx", *CLI_FRAMEWORK}), loaded
    assert "nuseal.sign" in loaded  # the probe saw a signing

