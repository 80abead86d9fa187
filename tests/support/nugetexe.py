"""NuGet's own client, ``nuget.exe`` 5.8.0, under Debian's Mono: a real peer for the feed server's protocol tests.

``scripts/install --test`` takes the exe from the npm package ``nuget-exe@5.8.0`` (``npm pack``; the tarball's
``package/nuget-5.8.0.exe``, SHA-256 pinned below) into ``.cache/realparts/`` and installs the smallest Mono that
runs it (see the apt list there: about 12 MB of downloads, against 46 MB for ``mono-devel``).

:class:`NuGetExe` runs it with a throwaway HOME (its own NuGet.Config with no sources, its own global packages
folder and HTTP cache, so it never reads or writes the user's), without stdin, ``-NonInteractive
-ForceEnglishOutput``, and a timeout; ``run()`` returns ``(exit_code, stdout, stderr)``.

What nuget.exe 5.8 under Mono 6.8 does against an HTTP V3 feed on loopback (seen here, 2026-12):

* Each call costs about 1.7 s (Mono JIT). HTTP sources are accepted with no warning; HTTPS would need Debian's
  ``ca-certificates-mono``, which is not installed.
* It composes all its commands with MEF at start-up, so every assembly its types mention must be present even
  for ``help``: System.ServiceModel, System.Data.Services.Client, WindowsBase, Microsoft.Build.*, ...
* ``push``: ``PUT {PackagePublish/2.0.0}/`` (note the trailing slash), ``X-NuGet-ApiKey``, a multipart/form-data
  body with a quoted boundary, sent with ``Transfer-Encoding: chunked`` (no Content-Length). ``delete``:
  ``DELETE {PackagePublish}/{id}/{version}``. ``search``: ``SearchQueryService/3.0.0-beta`` with
  ``q, skip, take, prerelease, semVerLevel=2.0.0``.
* ``list`` needs a V2 ``LegacyGallery`` resource; on a V3-only feed it prints "does not support listing packages"
  and exits 0 with nothing found. Use ``search``.
* ``install <id>`` gathers dependencies through the registration hive and finds it only under
  ``RegistrationsBaseUrl/3.0.0-beta`` or ``/3.4.0`` (with only ``/3.6.0`` it fails with "Value cannot be null.
  Parameter name: baseUrl"), and reads the pages' ``lower``/``upper``. ``install packages.config`` restores exact
  versions straight from ``PackageBaseAddress/3.0.0`` (``GET {base}/{id}/{ver}/{id}.{ver}.nupkg``).
* A refused push prints the HTTP reason phrase: ``Response status code does not indicate success: 400 (This
  package must be signed with a registered certificate.)``; ``nuseal serve`` puts nuget.org's message there
  (``nuseal.server.reason_phrase``), the body is not shown.
* Signatures cannot be checked under Mono (``verify -Signatures`` gives NU3030; stack.md §8): use it as a
  protocol peer only.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.support.processes import INSTALL_HINT, RealPartError, failing_clearly, find_binary

REPO = Path(__file__).resolve().parents[2]
VERSION = "5.8.0"
#: Where ``scripts/install --test`` puts it (gitignored).
NUGET_EXE = REPO / ".cache" / "realparts" / f"nuget-{VERSION}.exe"
#: SHA-256 of ``package/nuget-5.8.0.exe`` in the npm tarball ``nuget-exe-5.8.0.tgz``.
SHA256 = "5c5b9c96165d3283b2cb9e5b65825d343e0e7139b9e70a250b4bb24c2285f3ba"
DEFAULT_TIMEOUT = 120.0

_EMPTY_CONFIG = """\
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <clear />
  </packageSources>
</configuration>
"""


class NuGetResult(NamedTuple):
    exit_code: int
    stdout: str
    stderr: str


def nuget_exe_path() -> Path:
    """The installed nuget.exe, checked against its pinned SHA-256; a RealPartError saying how to get it."""
    if not NUGET_EXE.is_file():
        raise RealPartError(f"{NUGET_EXE} not found (npm package nuget-exe@{VERSION}): {INSTALL_HINT}")
    digest = hashlib.sha256(NUGET_EXE.read_bytes()).hexdigest()
    if digest != SHA256:
        raise RealPartError(f"{NUGET_EXE} has SHA-256 {digest}, expected {SHA256}: delete it and {INSTALL_HINT}")
    return NUGET_EXE


class NuGetExe:
    """``mono nuget.exe`` confined to ``home`` (created if missing)."""

    def __init__(self, home: Path, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.mono = find_binary("mono", "/usr/bin/mono", package="mono-runtime")
        self.exe = nuget_exe_path()
        self.home = home
        self.timeout = timeout
        self.config = home / ".config" / "NuGet" / "NuGet.Config"
        self.global_packages = home / "packages"
        # With no config at all nuget.exe writes one with nuget.org in it; ours has no source at all.
        self.config.parent.mkdir(parents=True, exist_ok=True)
        if not self.config.exists():
            self.config.write_text(_EMPTY_CONFIG, encoding="utf-8")
        (home / "tmp").mkdir(exist_ok=True)

    def env(self) -> dict[str, str]:
        """The parent's environment without NuGet or proxy settings, everything NuGet writes under ``home``."""
        env = {k: v for k, v in os.environ.items()
               if not k.upper().startswith(("NUGET_", "MONO_")) and not k.lower().endswith("_proxy")}
        env.update({
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "XDG_DATA_HOME": str(self.home / ".local" / "share"),
            "XDG_CACHE_HOME": str(self.home / ".cache"),
            "NUGET_PACKAGES": str(self.global_packages),
            "NUGET_HTTP_CACHE_PATH": str(self.home / "http-cache"),
            "NUGET_PLUGINS_CACHE_PATH": str(self.home / "plugins-cache"),
            "TMPDIR": str(self.home / "tmp"),  # Mono's temp path: nuget.exe's NuGetScratch goes there
            "no_proxy": "127.0.0.1,localhost",
        })  # fmt: skip
        return env

    def run(self, *args: str, cwd: Path | None = None, timeout: float | None = None) -> NuGetResult:
        """Run ``nuget.exe ARGS -NonInteractive -ForceEnglishOutput``; a timeout is a RealPartError."""
        argv = [self.mono, str(self.exe), *args, "-NonInteractive", "-ForceEnglishOutput"]
        limit = timeout if timeout is not None else self.timeout
        try:
            done = subprocess.run(argv, cwd=cwd or self.home, env=self.env(), stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True, errors="replace", timeout=limit, check=False)
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
            raise RealPartError(f"nuget.exe {' '.join(args)}: no exit after {limit:.0f} s; output so far:\n"
                                f"{out[-2000:]}") from exc
        return NuGetResult(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def nuget_exe(tmp_path: Path) -> NuGetExe:
    """nuget.exe with a fresh HOME under the test's tmp_path."""
    with failing_clearly():
        return NuGetExe(tmp_path / "nuget-home")
