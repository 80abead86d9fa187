"""What a verification of real packages does not load (issue 12, after the lean CLI): cryptography's public
``serialization`` package (SSH and cipher modules), its OCSP module when no responder is asked,
``importlib.resources`` (the bundled roots are read by path), the full-manifest reader (verification reads the
identity only) and ``dataclasses`` (the records on the path are ``nuseal.record`` structs); since issue 12's
``startup2``: no ``msgspec`` (with ``typing_extensions`` → ``inspect``, ``uuid``, ``decimal``) and no ``lxml`` (the
nuspec identity is read with expat; no nuget.config exists in these runs); against its own roots files, not ``json``
either (the built-in roots' index), nor ``ast``, ``dis`` or ``tokenize`` (which ``inspect`` loaded); since issue 12's
``verifyfirst``: no ``email`` package (``cryptography.x509`` imports ``email.utils`` only for ``RFC822Name(...)``;
``nuseal.cli.x509_import``), so none of ``calendar``, ``locale``, ``quopri`` either; since issue 12's
``verifyimp``: no ``json`` (the built-in roots' index is the module ``nuseal.x509.roots_index``). Measured in a
fresh interpreter through the console script's entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import VECTORS
from tests.support.pki import TEST_PASSWORD, TestPki
from tests.unit.sign.helpers import make_package

#: Modules the verify path used to import and no longer needs.
REMOVED = ("cryptography.hazmat.primitives.serialization", "cryptography.x509.ocsp", "importlib.resources",
           "nuseal.package.manifest", "dataclasses", "msgspec", "typing_extensions", "inspect", "lxml", "uuid",
           "decimal", "zipfile", "lzma", "bz2", "shutil", "email", "email.utils", "email.charset", "calendar", "locale",
           "quopri", "json")
_PROBE = """
import atexit, sys
REMOVED = {removed!r}
atexit.register(lambda: print("LOADED", *[m for m in REMOVED if m in sys.modules], file=sys.stderr))
from nuseal.cli.entry import main
main(sys.argv[1:])
"""


def _no_user_config(home: Path) -> dict[str, str]:
    """The environment with ``home`` as HOME: no user nuget.config (one would load lxml, rightly)."""
    return {**os.environ, "HOME": str(home)}


def _loaded(*args: str, cwd: Path) -> list[str]:
    done = subprocess.run([sys.executable, "-c", _PROBE.format(removed=REMOVED), *args], capture_output=True,
                          text=True, cwd=cwd, env=_no_user_config(cwd))
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


#: What a verification against its own roots files (``--trust-roots``, ``--timestamp-roots``: bench/verify's 1 MB
#: case) does not load: ``dataclasses`` (records are ``nuseal.record`` structs; creating ~50 frozen dataclasses cost
#: ~60 ms), ``nuseal.x509.roots_index`` and ``unicodedata`` (read only for the built-in roots), ``json``, ``glob``
#: (only for arguments that are patterns), ``msgspec`` and what it imported (``typing_extensions``, ``inspect`` with
#: ``ast``, ``dis`` and ``tokenize``; ``uuid`` with ``platform``; ``decimal``), ``lxml`` (the nuspec identity is read
#: with expat).
OWN_ROOTS_UNUSED = ("dataclasses", "nuseal.x509.roots_index", "json", "unicodedata", "glob", "msgspec",
                    "typing_extensions", "inspect", "ast", "dis", "tokenize", "uuid", "platform", "decimal", "lxml")
_OWN_ROOTS_PROBE = """
import atexit, sys
UNUSED = {unused!r}
atexit.register(lambda: print("LOADED", *[m for m in UNUSED if m in sys.modules], file=sys.stderr))
{preload}
from nuseal.cli.entry import main
main(sys.argv[1:])
"""


def _own_roots_run(pki: TestPki, tmp_path: Path, preload: str = "") -> list[str]:
    package = make_package(tmp_path / "A.1.0.0.nupkg")
    pfx = pki.leaf.write_pfx(tmp_path / "leaf.pfx")
    signed = subprocess.run([sys.executable, "-m", "nuseal", "sign", str(package), "--certificate-path", str(pfx),
                             "--certificate-password", TEST_PASSWORD], capture_output=True, text=True, cwd=tmp_path)
    assert signed.returncode == 0, signed.stderr
    root = str(pki.root.write_cert(tmp_path / "root.pem"))
    probe = _OWN_ROOTS_PROBE.format(unused=OWN_ROOTS_UNUSED, preload=preload)
    done = subprocess.run([sys.executable, "-c", probe, "verify", "--trust-roots", root, "--timestamp-roots", root,
                           "--revocation-mode", "offline", "-v", "n", str(package)], capture_output=True, text=True,
                          cwd=tmp_path, env=_no_user_config(tmp_path))
    # it did verify:
    assert "Successfully verified package 'Test.Package.1.0.0'" in done.stdout, done.stdout + done.stderr
    line = next(line for line in done.stderr.splitlines() if line.startswith("LOADED"))
    return line.split()[1:]


def test_verifying_against_own_roots_files_loads_no_dataclasses_and_no_roots_index(pki: TestPki,
                                                                                    tmp_path: Path) -> None:
    assert _own_roots_run(pki, tmp_path) == []


def test_the_own_roots_probe_sees_dataclasses_when_it_is_loaded(pki: TestPki, tmp_path: Path) -> None:
    assert "dataclasses" in _own_roots_run(pki, tmp_path, preload="import dataclasses")  # (with inspect, ast...)


def test_the_own_roots_probe_sees_msgspecs_import_chain_and_lxml_when_they_are_loaded(pki: TestPki,
                                                                                     tmp_path: Path) -> None:
    # msgspec's import chain (msgspec itself is no longer installed) and lxml are what this pins out; the probe
    # reports them when they come back.
    loaded = _own_roots_run(pki, tmp_path, preload="import typing_extensions, uuid, decimal, lxml.etree")
    assert {"typing_extensions", "inspect", "uuid", "decimal", "lxml"} <= set(loaded)
