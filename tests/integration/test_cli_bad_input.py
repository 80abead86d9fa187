"""Every command with bad input: a missing file, a folder, an empty file, a text file, a bad URL, a bad option
value. Each gives exactly one ``error:`` line, the documented exit code (1 when the command ran and failed,
2 for a command line that does not parse) and no traceback, and leaves every input byte for byte as it was.

The cases run in process through the root group, which holds the CLI's only error handler (the same code the
console script runs); ``test_cli_script.py`` runs a bad input per command through the console script too.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.support.cli import run
from tests.support.pki import TEST_PASSWORD, TestPki
from tests.unit.sign.helpers import make_package, signer_for

from nuseal.sign.author import AuthorSignRequest, sign_package

CONFIG = '<?xml version="1.0" encoding="utf-8"?>\n<configuration>\n</configuration>\n'


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    code: int
    says: str  # a piece of the error line: what is wrong, and usually where

    def __str__(self) -> str:
        return " ".join(self.args)


def case(code: int, says: str, *args: str) -> Case:
    return Case(args, code, says)


# {dir} is the inputs folder. Names: signed.nupkg, unsigned.nupkg, empty.nupkg, text.nupkg, folder/, leaf.pfx,
# leaf-pem/ (chain.pem, key.pem), root.pem, tsa.pfx, text.cer, nuget.config, text.config; missing.* do not exist.
MISSING = "File does not exist"
FOLDER = "is a directory"
NOT_ZIP = "Not a zip archive"
SIGN = ("--certificate-path", "{dir}/leaf.pfx", "--certificate-password", TEST_PASSWORD)
OFFLINE = ("--revocation-mode", "offline")
CFG = ("--configfile", "{dir}/nuget.config")

CASES: list[Case] = [
    # -- the root ------------------------------------------------------------------------------------------
    case(2, "No such command 'nosuch'", "nosuch"),
    case(2, "No such option: --bogus", "--bogus"),
    # -- verify ----------------------------------------------------------------------------------------------
    case(1, f"{MISSING} ({{dir}}/missing.nupkg)", "verify", *OFFLINE, "{dir}/missing.nupkg"),
    case(1, f"{FOLDER}, not a package file ({{dir}}/folder)", "verify", *OFFLINE, "{dir}/folder"),
    case(1, "No file matches the pattern ({dir}/nothing*.nupkg)", "verify", *OFFLINE, "{dir}/nothing*.nupkg"),
    case(1, "'{dir}/empty.nupkg' is not a valid package file", "verify", *OFFLINE, "{dir}/empty.nupkg"),
    case(1, "'{dir}/text.nupkg' is not a valid package file", "verify", *OFFLINE, "{dir}/text.nupkg"),
    case(2, "'xyz' is not one of q[uiet]", "verify", "-v", "xyz", "{dir}/signed.nupkg"),
    case(2, "'-5' is not a positive number of seconds", "verify", "--revocation-timeout", "-5", "{dir}/signed.nupkg"),
    case(2, "'sometimes' is not online or offline", "verify", "--revocation-mode", "sometimes", "{dir}/signed.nupkg"),
    case(2, "'nothex' is not a certificate fingerprint", "verify", "--certificate-fingerprint", "nothex",
         "{dir}/signed.nupkg"),
    case(1, "{dir}/text.cer: neither a PEM bundle", "verify", *OFFLINE, "--trust-roots", "{dir}/text.cer",
         "{dir}/signed.nupkg"),
    case(1, "{dir}/empty.nupkg: the file is empty", "verify", *OFFLINE, "--timestamp-roots", "{dir}/empty.nupkg",
         "{dir}/signed.nupkg"),
    case(1, "{dir}/missing.pem", "verify", *OFFLINE, "--trust-roots", "{dir}/missing.pem", "{dir}/signed.nupkg"),
    case(1, "{dir}/folder", "verify", *OFFLINE, "--trust-roots", "{dir}/folder", "{dir}/signed.nupkg"),
    case(1, "not valid XML. Path: '{dir}/text.config'", "verify", *OFFLINE, "--configfile", "{dir}/text.config",
         "{dir}/signed.nupkg"),
    case(1, "'{dir}/missing.config' does not exist", "verify", *OFFLINE, "--configfile", "{dir}/missing.config",
         "{dir}/signed.nupkg"),
    # -- inspect ---------------------------------------------------------------------------------------------
    case(1, "does not exist ({dir}/missing.nupkg)", "inspect", "{dir}/missing.nupkg"),
    case(1, f"{FOLDER}, not a file ({{dir}}/folder)", "inspect", "{dir}/folder"),
    case(1, NOT_ZIP, "inspect", "{dir}/empty.nupkg"),
    case(1, NOT_ZIP, "inspect", "{dir}/text.nupkg"),
    # -- sign --------------------------------------------------------------------------------------------------
    case(1, f"{MISSING} ({{dir}}/missing.nupkg)", "sign", "{dir}/missing.nupkg", *SIGN),
    case(1, f"{FOLDER}, not a package file ({{dir}}/folder)", "sign", "{dir}/folder", *SIGN),
    case(1, "No file matches the pattern ({dir}/nothing*.nupkg)", "sign", "{dir}/nothing*.nupkg", *SIGN),
    case(1, f"{NOT_ZIP}", "sign", "{dir}/empty.nupkg", *SIGN),
    case(1, f"{NOT_ZIP}", "sign", "{dir}/text.nupkg", *SIGN),
    case(1, "NU3001: The package already contains a signature", "sign", "{dir}/signed.nupkg", *SIGN),
    case(1, "Certificate file does not exist ({dir}/missing.pfx)", "sign", "{dir}/unsigned.nupkg",
         "--certificate-path", "{dir}/missing.pfx"),
    case(1, f"{FOLDER}, not a file ({{dir}}/folder)", "sign", "{dir}/unsigned.nupkg", "--certificate-path",
         "{dir}/folder"),
    case(1, "NU3001: The certificate file {dir}/empty.nupkg", "sign", "{dir}/unsigned.nupkg", "--certificate-path",
         "{dir}/empty.nupkg"),
    case(1, "NU3001: The certificate file {dir}/text.cer", "sign", "{dir}/unsigned.nupkg", "--certificate-path",
         "{dir}/text.cer"),
    case(1, "NU3001", "sign", "{dir}/unsigned.nupkg", "--certificate-path", "{dir}/leaf.pfx",
         "--certificate-password", "wrong"),
    case(2, "Invalid value for '--certificate-path': give a certificate file", "sign", "{dir}/unsigned.nupkg"),
    case(2, "'http://[bad' is not a valid URL", "sign", "{dir}/unsigned.nupkg", *SIGN, "--timestamper", "http://[bad"),
    case(2, "'ftp://tsa.example/' is not an absolute http or https URL", "sign", "{dir}/unsigned.nupkg", *SIGN,
         "--timestamper", "ftp://tsa.example/"),
    case(2, "'MD5' is not SHA256, SHA384 or SHA512", "sign", "{dir}/unsigned.nupkg", *SIGN, "--hash-algorithm", "MD5"),
    case(2, "'zz' is not a certificate fingerprint", "sign", "{dir}/unsigned.nupkg", *SIGN,
         "--certificate-fingerprint", "zz"),
    case(2, "'xyz' is not one of q[uiet]", "sign", "{dir}/unsigned.nupkg", *SIGN, "-v", "xyz"),
    case(1, "The output path is not a folder ({dir}/text.nupkg)", "sign", "{dir}/unsigned.nupkg", *SIGN, "-o",
         "{dir}/text.nupkg"),
    case(1, "{dir}/text.cer: neither a PEM bundle", "sign", "{dir}/unsigned.nupkg", *SIGN, "--trust-roots",
         "{dir}/text.cer"),
    case(2, "'id:xyz' is not id: followed by hexadecimal", "sign", "{dir}/unsigned.nupkg", "--pkcs11-module",
         "{dir}/missing.so", "--pkcs11-token", "t", "--pkcs11-key", "id:xyz", "--pkcs11-pin", "1"),
    case(2, "needs --pkcs11-token", "sign", "{dir}/unsigned.nupkg", "--pkcs11-module", "{dir}/missing.so"),
    # -- repo-sign ------------------------------------------------------------------------------------------
    case(1, f"{MISSING} ({{dir}}/missing.nupkg)", "repo-sign", "{dir}/missing.nupkg", *SIGN,
         "--service-index-url", "https://feed.example/v3/index.json"),
    case(1, NOT_ZIP, "repo-sign", "{dir}/text.nupkg", *SIGN, "--service-index-url",
         "https://feed.example/v3/index.json"),
    case(2, "'https://[bad' is not a valid URL", "repo-sign", "{dir}/unsigned.nupkg", *SIGN, "--service-index-url",
         "https://[bad"),
    case(2, "'http://feed.example/v3/index.json' is not an absolute https URL", "repo-sign", "{dir}/unsigned.nupkg",
         *SIGN, "--service-index-url", "http://feed.example/v3/index.json"),
    case(2, "Missing option '--service-index-url'", "repo-sign", "{dir}/unsigned.nupkg", *SIGN),
    case(1, "NU3001", "repo-sign", "{dir}/unsigned.nupkg", *SIGN, "--service-index-url",
         "https://feed.example/v3/index.json", "--owners", "a; ;b"),
    # -- remove-signature -------------------------------------------------------------------------------------
    case(1, f"{MISSING} ({{dir}}/missing.nupkg)", "remove-signature", "{dir}/missing.nupkg"),
    case(1, f"{FOLDER}, not a package file ({{dir}}/folder)", "remove-signature", "{dir}/folder"),
    case(1, "No file matches the pattern ({dir}/nothing*.nupkg)", "remove-signature", "{dir}/nothing*.nupkg"),
    case(1, f"{NOT_ZIP}", "remove-signature", "{dir}/empty.nupkg"),
    case(1, f"{NOT_ZIP}", "remove-signature", "{dir}/text.nupkg"),
    case(1, "NU3004", "remove-signature", "{dir}/unsigned.nupkg"),
    # -- trust ---------------------------------------------------------------------------------------------
    case(1, "does not exist ({dir}/missing.nupkg)", "trust", "author", "me", "{dir}/missing.nupkg", *CFG),
    case(1, f"{FOLDER}, not a file ({{dir}}/folder)", "trust", "author", "me", "{dir}/folder", *CFG),
    case(1, NOT_ZIP, "trust", "author", "me", "{dir}/empty.nupkg", *CFG),
    case(1, NOT_ZIP, "trust", "repository", "me", "{dir}/text.nupkg", *CFG),
    case(1, "The package is not signed.", "trust", "author", "me", "{dir}/unsigned.nupkg", *CFG),
    case(1, "not repository signed or countersigned", "trust", "repository", "me", "{dir}/signed.nupkg", *CFG),
    case(2, "a trusted signer needs a name", "trust", "author", " ", "{dir}/signed.nupkg", *CFG),
    case(1, "not valid XML. Path: '{dir}/text.config'", "trust", "author", "me", "{dir}/signed.nupkg",
         "--configfile", "{dir}/text.config"),
    case(1, "'{dir}/missing.config' does not exist", "trust", "list", "--configfile", "{dir}/missing.config"),
    case(1, "'{dir}/folder' does not exist", "trust", "--configfile", "{dir}/folder"),
    case(2, "'xyz' is not one of q[uiet]", "trust", "list", "-v", "xyz", *CFG),
    case(2, "'--configfile': give it after the sub-command", "trust", *CFG, "author", "me", "{dir}/signed.nupkg"),
    case(2, "'nothex' is not a certificate fingerprint: expected 64 hexadecimal characters (SHA256)",
         "trust", "certificate", "me", "nothex", *CFG),
    case(2, "expected 96 hexadecimal characters (SHA384)", "trust", "certificate", "me", "AB" * 32, "--algorithm",
         "SHA384", *CFG),
    case(2, "'MD5' is not a supported hash algorithm.", "trust", "certificate", "me", "AB" * 32, "--algorithm", "MD5",
         *CFG),
    case(2, "'https://[bad' is not a valid URL", "trust", "source", "feed", "--source-url", "https://[bad", *CFG),
    case(1, "The repository service index 'http://feed.example/v3/index.json' is not a valid HTTPS url.",
         "trust", "source", "feed", "--source-url", "http://feed.example/v3/index.json", *CFG),
    case(1, "Source 'nosuchsource' does not exist", "trust", "source", "nosuchsource", *CFG),
    case(1, "http://127.0.0.1:9/v3/index.json", "trust", "source", "feed", "--source-url",
         "http://127.0.0.1:9/v3/index.json", "--allow-insecure-loopback", *CFG),
    case(1, "A trusted repository 'nosuch' does not exist.", "trust", "sync", "nosuch", *CFG),
    case(1, "not valid XML. Path: '{dir}/text.config'", "trust", "remove", "me", "--configfile", "{dir}/text.config"),
    # -- cert --------------------------------------------------------------------------------------------------
    case(1, "The file already exists; use --force to replace it ({dir}/leaf.pfx)", "cert", "create", "--subject",
         "CN=x", "--out", "{dir}/leaf.pfx"),
    case(1, "The file already exists; use --force to replace it ({dir}/text.cer)", "cert", "create", "--subject",
         "CN=x", "--out", "{dir}/new.pfx", "--cer", "{dir}/text.cer"),
    case(1, "does not exist", "cert", "create", "--subject", "CN=x", "--out", "{dir}/missing/x.pfx"),
    case(1, f"{FOLDER}, not a file ({{dir}}/folder)", "cert", "create", "--subject", "CN=x", "--out", "{dir}/folder"),
    case(2, "distinguished name", "cert", "create", "--subject", "not a dn", "--out", "{dir}/new.pfx"),
    case(2, "'1024' is not 2048, 3072 or 4096", "cert", "create", "--subject", "CN=x", "--key-size", "1024", "--out",
         "{dir}/new.pfx"),
    case(2, "'--days': Input should be greater than or equal to 1", "cert", "create", "--subject", "CN=x", "--days",
         "0", "--out", "{dir}/new.pfx"),
    case(1, "does not exist ({dir}/missing.pfx)", "cert", "show", "{dir}/missing.pfx"),
    case(1, f"{FOLDER}, not a file ({{dir}}/folder)", "cert", "show", "{dir}/folder"),
    case(1, "NU3001: The certificate file '{dir}/empty.nupkg' could not be opened", "cert", "show",
         "{dir}/empty.nupkg"),
    case(1, "NU3001: The certificate file '{dir}/text.cer' could not be opened", "cert", "show", "{dir}/text.cer"),
    case(1, "{dir}/leaf.pfx", "cert", "export", "{dir}/leaf.pfx", "--password", "wrong", "--out", "{dir}/new.cer"),
    case(1, "The file already exists; use --force to replace it ({dir}/text.cer)", "cert", "export",
         "{dir}/leaf.pfx", "--password", TEST_PASSWORD, "--out", "{dir}/text.cer"),
    case(1, "could not be opened", "cert", "export", "{dir}/text.nupkg", "--out", "{dir}/new.cer"),
    # -- tsa ---------------------------------------------------------------------------------------------------
    case(1, "does not exist ({dir}/missing.pfx)", "tsa", "serve", "--certificate-path", "{dir}/missing.pfx"),
    case(1, f"{FOLDER}, not a file ({{dir}}/folder)", "tsa", "serve", "--certificate-path", "{dir}/folder"),
    case(1, "could not be opened", "tsa", "serve", "--certificate-path", "{dir}/empty.nupkg"),
    case(1, "could not be opened", "tsa", "serve", "--certificate-path", "{dir}/text.cer"),
    case(1, "timeStamping", "tsa", "serve", "--certificate-path", "{dir}/leaf.pfx", "--certificate-password",
         TEST_PASSWORD),
    case(2, "'--port': Input should be less than or equal to 65535", "tsa", "serve", "--certificate-path",
         "{dir}/tsa.pfx", "--port", "99999"),
    case(2, "'not-an-oid' is not a dotted object identifier", "tsa", "serve", "--certificate-path", "{dir}/tsa.pfx",
         "--certificate-password", TEST_PASSWORD, "--policy", "not-an-oid"),
    # -- install ------------------------------------------------------------------------------------------------
    case(2, "'http://[bad' is not a valid URL", "install", "X", "--source", "http://[bad"),
    case(2, "'-1' is not a positive number of seconds", "install", "X", "--timeout", "-1"),
    case(1, "http://127.0.0.1:9/v3/index.json", "install", "X", "--version", "1.0.0", "--source",
         "http://127.0.0.1:9/v3/index.json", "--allow-insecure-loopback", "-o", "{dir}/missing-out", *CFG),
    case(1, "not valid XML. Path: '{dir}/text.config'", "install", "X", "--configfile", "{dir}/text.config"),
    case(1, "{dir}/text.cer: neither a PEM bundle", "install", "X", "--trust-roots", "{dir}/text.cer", *CFG),
    case(2, "Missing argument 'ID'", "install", "--version", "1.0.0"),
    # -- serve and admin (the feed server; a data "folder" that is a file fails before anything is created) --------
    case(1, "cannot create the data folder '{dir}/text.nupkg'", "serve", "--data", "{dir}/text.nupkg"),
    case(2, "'--port': Input should be a valid integer", "serve", "--port", "notanumber"),
    case(1, "cannot create the data folder '{dir}/text.nupkg'", "worker", "--data", "{dir}/text.nupkg"),
    case(1, "{dir}/text.cer: neither a PEM bundle", "serve", "--trust-roots", "{dir}/text.cer", "--data",
         "{dir}/text.nupkg"),
    case(1, "invalid database_url 'bogus://x' (option --database-url)", "admin", "--database-url", "bogus://x",
         "migrate"),
    case(1, "invalid storage 'bogus://x' (option --storage)", "admin", "--storage", "bogus://x", "audit"),
    case(2, "'--limit': Input should be greater than or equal to 1", "admin", "audit", "--limit", "0"),
    case(2, "'--expires-days': Input should be a valid integer", "admin", "apikey", "create", "x", "--expires-days",
         "abc"),
    *(case(1, "cannot create the data folder '{dir}/text.nupkg'", "admin", "--data", "{dir}/text.nupkg", *args)
      for args in (("user", "add", "x"), ("org", "add", "o", "--admin", "u"), ("org", "member", "add", "o", "u"),
                   ("org", "member", "remove", "o", "u"), ("apikey", "list", "x"), ("apikey", "revoke", "x", "y"),
                   ("owner", "add", "p", "a"), ("owner", "remove", "p", "a"), ("owner", "list", "p"),
                   ("package", "list"), ("package", "delete", "p", "1.0"), ("cert", "add", "a", "{dir}/text.cer"),
                   ("cert", "remove", "a", "ab" * 32), ("cert", "list", "a"), ("signer", "set", "p", "Any"),
                   ("signer", "show", "p"), ("repo-cert", "list"), ("repo-cert", "activate", "ab" * 32),
                   ("repo-cert", "retire", "ab" * 32), ("repo-cert", "revoke", "ab" * 32),
                   ("repo-cert", "add", "{dir}/text.cer", "--timestamper", "http://127.0.0.1:9/"))),
    case(2, "Invalid value for '--timeout'", "admin", "repo-cert", "retire", "ab" * 32, "--timeout", "0"),
]


@pytest.fixture(scope="module")
def inputs(pki: TestPki, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("inputs")
    make_package(folder / "unsigned.nupkg")
    signed = make_package(folder / "signed.nupkg")
    sign_package(signed, signed, AuthorSignRequest(signer_for(pki.leaf)), timestamper=None, now=pki.now)
    (folder / "empty.nupkg").write_bytes(b"")
    (folder / "text.nupkg").write_text("hello, I am not a package\n")
    (folder / "text.cer").write_text("hello, I am not a certificate\n")
    (folder / "folder").mkdir()
    pki.leaf.write_pfx(folder / "leaf.pfx")
    pki.tsa.write_pfx(folder / "tsa.pfx")
    pki.root.write_cert(folder / "root.pem")
    (folder / "nuget.config").write_text(CONFIG)
    (folder / "text.config").write_text("not xml\n")
    return folder


@pytest.fixture
def isolated(inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Run in an empty working folder with an empty home, with revocation offline unless a case says.

    ``nuseal serve`` points the root logger at its stderr (JSON lines) before its start-up checks; in process that
    stream is the runner's, closed after the case, so the logging set-up is put back afterwards.
    """
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("NUGET_CERT_REVOCATION_MODE", raising=False)
    monkeypatch.chdir(tmp_path)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield inputs
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def snapshot(*folders: Path) -> dict[str, str]:
    """Every file and folder under ``folders`` with the SHA-256 of its bytes (folders map to "dir")."""
    state: dict[str, str] = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            state[str(path)] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return state


def error_lines(stdout: str, stderr: str) -> list[str]:
    return [line for line in (stdout + "\n" + stderr).splitlines() if line.startswith("error:")]


@pytest.mark.parametrize("bad", CASES, ids=str)
def test_bad_input_gives_one_error_line_and_changes_nothing(isolated: Path, tmp_path: Path, bad: Case) -> None:
    args = [a.replace("{dir}", str(isolated)) for a in bad.args]
    before = snapshot(isolated, tmp_path)
    code, stdout, stderr = run(*args)
    output = stdout + stderr
    assert "Traceback" not in output and "unexpected" not in output, output
    lines = error_lines(stdout, stderr)
    assert len(lines) == 1, output
    assert bad.says.replace("{dir}", str(isolated)) in lines[0], output
    assert code == bad.code, output
    if args[0] != "verify":  # verify reports a package it cannot read in its verdict block, as dotnet does
        assert lines[0] in stderr.splitlines(), output
    assert snapshot(isolated, tmp_path) == before


def test_the_cases_cover_every_command() -> None:
    import typer.main

    from nuseal.cli.app import app

    def paths(command: object, prefix: tuple[str, ...]) -> set[tuple[str, ...]]:
        children = getattr(command, "commands", {})
        found = {prefix} if prefix else set()
        for name, child in children.items():
            found |= paths(child, (*prefix, name))
        return found

    def runs(path: tuple[str, ...], args: tuple[str, ...]) -> bool:
        words = iter(args)  # the path's words in order, options and values between them allowed
        return all(any(word == step for word in words) for step in path)

    every = paths(typer.main.get_command(app), ())
    assert {path for path in every if not any(runs(path, c.args) for c in CASES)} == set()
