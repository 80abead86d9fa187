"""What a verification of real packages does not load (issue 12, after the lean CLI): cryptography's public
``serialization`` package (SSH and cipher modules), its OCSP module when no responder is asked,
``importlib.resources`` (the bundled roots are read by path) and the full-manifest reader (verification reads the
identity only). Measured in a fresh interpreter through the console script's entry point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import VECTORS

#: Modules the verify path used to import and no longer needs.
REMOVED = ("cryptography.hazmat.primitives.serialization", "cryptography.x509.ocsp", "importlib.resources",
           "nuseal.package.manifest")
_PROBE = """
import atexit, sys
REMOVED = {removed!r}
atexit.register(lambda: print("LOADED", *[m for m in REMOVED if m in sys.modules], file=sys.stderr))
from nuseal.cli.entry import main
main(sys.argv[1:])
"""


def _loaded(*args: str, cwd: Path) -> list[str]:
    done = subprocess.run([sys.executable, "-c", _PROBE.format(removed=REMOVED), *args], capture_output=True,
                          text=True, cwd=cwd)
    line = next(line for line in done.stderr.splitlines() if line.startswith("LOADED"))
    assert "Dapper" in done.stdout, done.stdout  # a verification happened
    return line.split()[1:]


def test_verifying_real_packages_offline_loads_none_of_the_removed_modules(tmp_path: Path) -> None:
    packages = [str(p) for p in sorted((VECTORS / "real").glob("*.nupkg"))]
    assert _loaded("verify", "--revocation-mode", "offline", "-v", "detailed", *packages, cwd=tmp_path) == []


def test_the_probe_sees_a_removed_module_when_it_is_loaded(tmp_path: Path) -> None:
    # The probe can fail: pulling in one of the modules on purpose shows up in its report.
    probe = _PROBE.format(removed=REMOVED).replace("from nuseal.cli.entry",
                                                   "import importlib.resources\nfrom nuseal.cli.entry")
    done = subprocess.run([sys.executable, "-c", probe, "verify", "--revocation-mode", "offline",
                           str(VECTORS / "real" / "Dapper.2.0.78.nupkg")], capture_output=True, text=True,
                          cwd=tmp_path)
    assert "LOADED importlib.resources" in done.stderr
