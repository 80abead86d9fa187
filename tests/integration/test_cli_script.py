"""Every command and sub-command through the installed ``nuseal`` console script, in subprocesses.

This is what a user runs: ``nuseal.cli.entry:main`` imports only the invoked command's module, so a command that
works with every module loaded (``CliRunner`` on ``nuseal.cli.app``) can still fail here. That is how
``nuseal install ID ...`` was refused whatever the argument order (issue 8, defect 2).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest
import typer.main
from tests.support.cli import Result, script
from tests.support.pki import TEST_PASSWORD, TestPki
from tests.support.servers import LoopbackServer
from tests.support.static_feed import StaticFeed, serve_feed
from tests.unit.sign.helpers import make_package

from nuseal.cli.base import COMMAND_MODULES

ACCEPT = '<?xml version="1.0" encoding="utf-8"?>\n<configuration />\n'
#: The feed server's commands run through the console script in tests/integration/server/ (test_admin_cli.py runs
#: every admin command, test_serve.py the server): they need a data folder, a database and a listening socket.
SERVER_COMMANDS = {"serve", "worker", "admin"}


def command_paths() -> set[tuple[str, ...]]:
    """Every command and sub-command of ``nuseal``, with every module loaded (groups included)."""
    from nuseal.cli.app import app

    def walk(command: object, prefix: tuple[str, ...]) -> set[tuple[str, ...]]:
        found = {prefix} if prefix else set()
        for name, child in getattr(command, "commands", {}).items():
            found |= walk(child, (*prefix, name))
        return found

    return walk(typer.main.get_command(app), ())


class Recorder:
    """Runs the console script and remembers which command paths it ran."""

    def __init__(self, cwd: Path, home: Path) -> None:
        self.cwd, self.home = cwd, home
        self.ran: set[tuple[str, ...]] = set()
        self.paths = command_paths()

    def __call__(self, *args: str, code: int = 0) -> Result:
        words = tuple(a for a in args if not a.startswith("-"))
        self.ran |= {p for p in self.paths if words[: len(p)] == p and all(w in args for w in p)}
        result = script(*args, cwd=self.cwd, env={"HOME": str(self.home), "NUGET_CERT_REVOCATION_MODE": "offline"})
        assert "Traceback" not in result.stdout + result.stderr, result
        assert result.code == code, result
        return result


@pytest.fixture
def nuseal(tmp_path: Path) -> Recorder:
    (tmp_path / "home").mkdir()
    return Recorder(tmp_path, tmp_path / "home")


@pytest.fixture
def feed(tmp_path: Path) -> Iterator[StaticFeed]:
    with serve_feed(tmp_path / "feed") as served:
        yield served


def test_the_console_script_is_the_entry_point() -> None:
    (entry,) = [e for e in metadata.entry_points(group="console_scripts") if e.name == "nuseal"]
    assert entry.value == "nuseal.cli.entry:main"


def test_the_command_module_map_matches_the_commands_that_exist() -> None:
    top = {path[0] for path in command_paths()}
    assert top == set(COMMAND_MODULES)
    # Loading one module alone (what the console script does) must register exactly its commands.
    for module in sorted(set(COMMAND_MODULES.values())):
        code = (
            "import typer.main\n"
            "from nuseal.cli.base import app, register\n"
            f"register({{{module!r}}})\n"
            "print(' '.join(sorted(typer.main.get_command(app).commands)))\n"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        assert done.stdout.split() == sorted(n for n, m in COMMAND_MODULES.items() if m == module), module


def test_every_command_and_sub_command_runs_through_the_console_script(
    nuseal: Recorder, pki: TestPki, tsa_server: LoopbackServer, feed: StaticFeed, tmp_path: Path
) -> None:
    work = tmp_path
    # -- the root: --version, -h, no command --------------------------------------------------------------
    assert nuseal("--version").stdout.startswith("nuseal ")
    listed = nuseal("-h").stdout
    assert all(f"  {name} " in listed for name in COMMAND_MODULES)
    assert "Usage: nuseal [options] COMMAND" in nuseal(code=2).stdout

    # -- cert create / show / export ----------------------------------------------------------------------
    created = nuseal("cert", "create", "--subject", "CN=Script Test", "--out", "me.pfx", "--password", "pw",
                     "--cer", "me.cer").stdout
    fingerprint = created.split("SHA-256 fingerprint: ")[1].split()[0]
    assert fingerprint in nuseal("cert", "show", "me.pfx", "--password", "pw").stdout
    nuseal("cert", "export", "me.pfx", "--password", "pw", "--out", "again.cer")
    assert (work / "again.cer").read_bytes() == (work / "me.cer").read_bytes()
    assert nuseal("cert", code=2).stdout.startswith("Usage: nuseal cert")
    nuseal("cert", "create", "--subject", "CN=Again", "--out", "me.pfx", code=1)  # no --force: refused

    # -- sign (timestamped), repo-sign (a countersignature), verify with a DER root, inspect ----------------
    package = make_package(work / "Test.Package.1.0.0.nupkg")
    pki.leaf.write_pfx(work / "leaf.pfx")
    (work / "root.cer").write_bytes(pki.root.der)  # DER, as `cert create --cer` writes
    key = ("--certificate-path", "leaf.pfx", "--certificate-password", TEST_PASSWORD)
    signed = nuseal("sign", "*.nupkg", *key, "--timestamper", pki.tsa_url).stdout
    assert f"Added an author primary signature to '{package.name}', timestamped." in signed
    countersigned = nuseal("repo-sign", package.name, *key, "--service-index-url",
                           "https://feed.example/v3/index.json", "--owners", "me").stdout
    assert "Added a repository countersignature to" in countersigned
    verified = nuseal("verify", "*.nupkg", "--trust-roots", "root.cer", "--timestamp-roots", "root.cer").stdout
    assert "Successfully verified package 'Test.Package.1.0.0'." in verified
    inspected = nuseal("inspect", package.name, "--json").stdout
    assert json.loads(inspected)["countersignature"] is not None

    # -- trust: every sub-command, each confirming what it wrote ---------------------------------------------
    (work / "nuget.config").write_text(ACCEPT)
    cfg = ("--configfile", "nuget.config")
    author = nuseal("trust", "author", "me", package.name, *cfg).stdout
    assert author.splitlines() == ["Successfully added a trusted author 'me'.",
                                   f"  SHA256 - {pki.leaf.sha256_fingerprint}", "  in nuget.config"]
    assert "Successfully added a trusted repository 'repo'." in nuseal("trust", "repository", "repo", package.name,
                                                                       *cfg).stdout
    assert f"SHA384 - {'AB' * 48}" in nuseal("trust", "certificate", "other", "AB" * 48, "--algorithm", "SHA384",
                                             *cfg).stdout
    feed.set_repository_signatures([pki.intermediate.sha256_fingerprint.lower()], all_signed=False)
    source = nuseal("trust", "source", "feed", "--source-url", feed.index_url, "--allow-insecure-loopback",
                    *cfg).stdout
    assert f"SHA256 - {pki.intermediate.sha256_fingerprint.lower()}" in source
    feed.set_repository_signatures([pki.root.sha256_fingerprint.lower()], all_signed=False)
    synced = nuseal("trust", "sync", "feed", "--allow-insecure-loopback", *cfg).stdout
    assert "Successfully synchronized the trusted repository 'feed'." in synced
    assert pki.root.sha256_fingerprint.lower() in synced
    assert " 4.   feed [repository]" in nuseal("trust", "list", *cfg).stdout
    assert " 1.   me [author]" in nuseal("trust", *cfg).stdout
    assert nuseal("trust", "remove", "me", *cfg).stdout == "Successfully removed the trusted signer 'me'.\n"

    # -- remove-signature: the countersignature, then the signature -----------------------------------------
    removed = nuseal("remove-signature", "*.nupkg", "--repository-only").stdout
    assert removed == f"The repository countersignature was removed ({package.name}).\n"
    assert nuseal("remove-signature", package.name).stdout.startswith("The package signature was removed")

    # -- install, the id before and after the options (defect 2) ---------------------------------------------
    feed.add(package)
    (work / "accept.config").write_text(ACCEPT)
    common = ("--source", feed.index_url, "--allow-insecure-loopback", "--configfile", "accept.config")
    before = nuseal("install", "Test.Package", "--version", "1.0.0", *common, "-o", "one").stdout
    after = nuseal("install", "--version", "1.0.0", *common, "-o", "two", "Test.Package").stdout
    assert before.startswith("Test.Package 1.0.0 installed in ") and after.startswith("Test.Package 1.0.0 installed")
    assert (work / "two" / "test.package" / "1.0.0" / "test.package.1.0.0.nupkg").is_file()

    # -- tsa serve (a server: it runs until stopped; see also test_cli_cert.test_tsa_serve_process) ------------
    assert nuseal("tsa", code=2).stdout.startswith("Usage: nuseal tsa")
    nuseal("tsa", "serve", "--certificate-path", "leaf.pfx", "--certificate-password", TEST_PASSWORD, code=1)

    assert {p for p in command_paths() - nuseal.ran if p[0] not in SERVER_COMMANDS} == set()


@pytest.mark.parametrize("command", sorted(COMMAND_MODULES))
def test_a_bad_input_per_command_is_one_line_through_the_console_script(tmp_path: Path, command: str) -> None:
    (tmp_path / "text.nupkg").write_text("not a package\n")
    args = {
        "verify": ["verify", "--revocation-mode", "offline", "text.nupkg", "missing.nupkg"],
        "inspect": ["inspect", "text.nupkg"],
        "sign": ["sign", "text.nupkg", "--certificate-path", "missing.pfx"],
        "repo-sign": ["repo-sign", "text.nupkg", "--service-index-url", "https://[bad", "--certificate-path", "x"],
        "remove-signature": ["remove-signature", "text.nupkg"],
        "trust": ["trust", "author", "me", "text.nupkg", "--configfile", "text.nupkg"],
        "cert": ["cert", "show", "text.nupkg"],
        "tsa": ["tsa", "serve", "--certificate-path", "text.nupkg"],
        "install": ["install", "X", "--version", "1.0", "--source", "http://[bad"],
        "serve": ["serve", "--data", "text.nupkg"],
        "worker": ["worker", "--data", "text.nupkg"],
        "admin": ["admin", "--data", "text.nupkg", "user", "add", "x"],
    }[command]
    result = script(*args, cwd=tmp_path, env={"HOME": str(tmp_path)})
    output = result.stdout + result.stderr
    assert "Traceback" not in output and "unexpected" not in output, output
    assert result.code in (1, 2), output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == (2 if command == "verify" else 1), output
    assert (tmp_path / "text.nupkg").read_text() == "not a package\n"


def test_a_failed_write_is_one_error_line_and_leaves_the_package(pki: TestPki, tmp_path: Path) -> None:
    """A write that fails (here: a file size limit of 0, which root cannot bypass, unlike a read-only folder)."""
    import resource

    package = make_package(tmp_path / "a.nupkg")
    pki.leaf.write_pfx(tmp_path / "leaf.pfx")
    before = package.read_bytes()

    def no_writes() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))

    sign = ("sign", "a.nupkg", "--certificate-path", "leaf.pfx", "--certificate-password", TEST_PASSWORD)
    remove = ("remove-signature", "a.nupkg")
    for args, prepare in ((sign, None), (remove, sign)):
        if prepare is not None:
            assert script(*prepare, cwd=tmp_path, env={"HOME": str(tmp_path)}).code == 0
            before = package.read_bytes()
        result = script(*args, cwd=tmp_path, env={"HOME": str(tmp_path)}, preexec_fn=no_writes)
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert result.code == 1 and len(errors) == 1, result
        assert "Traceback" not in result.stderr and "a.nupkg" in errors[0] and "File too large" in errors[0], result
        assert package.read_bytes() == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["a.nupkg", "leaf.pfx"]
