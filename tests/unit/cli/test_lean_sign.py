"""``nuseal sign`` without typer (``nuseal.cli.lean``): the lean parser reads every command line it takes as typer
does, leaves the rest to typer, prints typer's help byte for byte, and a signing through the console script (lean)
prints and exits exactly as the same signing in process (typer)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.cli import run, script
from tests.support.pki import TEST_PASSWORD, TestPki
from tests.unit.sign.helpers import make_package
from typer.main import get_command

from nuseal.cli import declare, entry, lean, sign_run
from nuseal.cli.declare import SignArgs, SigningArgs

FP256, FP1 = "AB" * 32, "cd" * 20

#: Command lines the lean parser takes; typer must read each one the same way.
TAKEN = [
    ["a.nupkg"],
    ["a.nupkg", "b.nupkg", "--json", "--overwrite", "--no-fsync"],
    ["--certificate-path", "c.pfx", "--certificate-password=pw", "a.nupkg", "-v", "q"],
    ["--certificate-path=c.pem", "--key-path", "k.pem", "--certificate-fingerprint", FP256, "*.nupkg"],
    ["--certificate-fingerprint", FP1, "a.nupkg", "--certificate-fingerprint", FP256],
    ["--hash-algorithm", "sha384", "--timestamp-hash-algorithm=SHA512", "a.nupkg"],
    ["--timestamper", "http://127.0.0.1:9/tsa", "-o", "out", "a.nupkg"],
    ["--output=out", "--parallel", "2", "--trust-roots", "r.pem", "--timestamp-roots", "t.pem", "a.nupkg"],
    ["--pkcs11-module", "m.so", "--pkcs11-token", "tok", "--pkcs11-key", "id:01ab", "--pkcs11-pin", "1234", "a.nupkg"],
    ["-v", "diag", "a.nupkg", "--verbosity", "m"],
]  # fmt: skip

#: Command lines the lean parser leaves to typer (help, usage errors, forms it does not read).
LEFT = [
    [], ["--help", "a.nupkg"], ["-h", "a.nupkg"], ["a.nupkg", "--nope"], ["--parallel", "0", "a.nupkg"],
    ["--hash-algorithm", "MD5", "a.nupkg"], ["--timestamper", "ftp://x/", "a.nupkg"], ["--timestamper", "http://[bad",
    "a.nupkg"], ["--certificate-fingerprint", "zz", "a.nupkg"], ["-v", "loud", "a.nupkg"], ["--overwrite=1", "a.nupkg"],
    ["--", "a.nupkg"], ["-o"], ["a.nupkg", "--output"], ["-", "a.nupkg"], ["--service-index-url", "https://f/", "a"],
]  # fmt: skip


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[SignArgs, SigningArgs]]]:
    calls: list[tuple[SignArgs, SigningArgs]] = []

    def fake_sign(args: SignArgs, signing: SigningArgs) -> int:
        calls.append((args, signing))
        return 0

    monkeypatch.setattr(sign_run, "sign", fake_sign)
    yield calls


@pytest.mark.parametrize("argv", TAKEN, ids=" ".join)
def test_lean_reads_every_sign_option_as_typer_does(argv: list[str], captured: list[Any]) -> None:
    assert lean.run("sign", argv) == 0
    ours = captured.pop()
    code, _, err = run("sign", *argv, env=dict(os.environ))
    assert code == 0, err
    assert ours == captured.pop()


@pytest.mark.parametrize("argv", LEFT, ids=lambda a: " ".join(a) or "(nothing)")
def test_lean_leaves_sign_help_and_usage_errors_to_typer(argv: list[str], captured: list[Any]) -> None:
    assert lean.run("sign", argv) is None
    assert captured == []


def test_the_typer_sign_command_has_exactly_the_declared_options() -> None:
    from nuseal.cli.app import app

    commands = get_command(app).commands  # type: ignore[attr-defined]
    for name, declared in (("sign", {**declare.SIGN, **declare.SIGNING}),
                           ("repo-sign", {**declare.SIGNING})):
        params = {p.name: p for p in commands[name].params}
        assert set(declared) <= set(params), name
        if name == "sign":
            assert set(params) == set(declared)
        for field, opt in declared.items():
            assert tuple(params[field].opts) == (opt.flags or (field,)), field


def test_the_entry_point_dispatches_exactly_the_lean_commands() -> None:
    source = Path(entry.__file__).read_text()
    dispatched = {name for name in ("verify", "sign", "inspect", "repo-sign", "trust") if f'["{name}"]' in source}
    assert dispatched == set(lean.COMMANDS)


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_lean_sign_help_is_typers_help_byte_for_byte(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert lean.run("sign", [flag]) == 0
    ours = capsys.readouterr().out
    code, typers, _ = run("sign", "--json", flag)  # not a lone help flag: typer prints it
    assert code == 0
    assert ours == typers
    assert ours.startswith("Usage: nuseal sign [options] PACKAGE...\n")
    assert "-o, --output FOLDER" in ours and "[default: SHA256]" in ours and "[x>=1]" in ours


def test_lean_sign_help_through_the_console_script_loads_no_typer(tmp_path: Path) -> None:
    done = script("sign", "--help", cwd=tmp_path, env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert done.code == 0 and "--timestamper URL" in done.stdout
    assert " typer" not in done.stderr and "nuseal.cli.lean" in done.stderr


# --- the same output and exit code through the console script (lean) and in process (typer) ---------------------


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory, pki: TestPki) -> Path:
    """A folder with a signing certificate, a PEM with only certificates, and unsigned and signed packages."""
    folder = tmp_path_factory.mktemp("leansign")
    pki.leaf.write_pfx(folder / "leaf.pfx")
    (folder / "text.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    for name in ("A.1.0.0.nupkg", "B.2.0.0.nupkg"):
        make_package(folder / name)
    return folder


SIGN = ["--certificate-path", "leaf.pfx", "--certificate-password", TEST_PASSWORD]


@pytest.mark.parametrize("argv", [
    [*SIGN, "*.nupkg"],
    [*SIGN, "-o", "out", "-v", "detailed", "A.1.0.0.nupkg"],
    [*SIGN, "--json", "--parallel", "1", "--hash-algorithm", "SHA384", "*.nupkg"],
    [*SIGN, "-v", "q", "A.1.0.0.nupkg", "missing.nupkg"],
    [*SIGN, "-o", "A.1.0.0.nupkg", "B.2.0.0.nupkg"],
    [*SIGN, "--certificate-fingerprint", FP256, "A.1.0.0.nupkg"],
    ["--certificate-path", "leaf.pfx", "--certificate-password", "wrong", "A.1.0.0.nupkg"],
    ["--certificate-path", "missing.pfx", "A.1.0.0.nupkg"],
    ["A.1.0.0.nupkg"],
    ["--pkcs11-module", "missing.so", "A.1.0.0.nupkg"],
    ["--pkcs11-module", "m.so", "--pkcs11-token", "t", "--pkcs11-key", "id:xyz", "--pkcs11-pin", "1", "A.1.0.0.nupkg"],
    ["--certificate-path", "text.pem", "A.1.0.0.nupkg"],
], ids=" ".join)  # fmt: skip
def test_lean_sign_output_matches_typer(argv: list[str], material: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    lean_dir, typer_dir = tmp_path / "lean", tmp_path / "typer"
    shutil.copytree(material, lean_dir)
    shutil.copytree(material, typer_dir)
    lean_result = script("sign", *argv, cwd=lean_dir)
    monkeypatch.chdir(typer_dir)
    typer_result = run("sign", *argv)
    assert lean_result == typer_result
    assert lean_result.code in (0, 1, 2) and (lean_result.stdout or lean_result.stderr)
    # The same packages were signed (or left alone) on both paths.
    for package in sorted(lean_dir.rglob("*.nupkg")):
        twin = typer_dir / package.relative_to(lean_dir)
        assert twin.is_file() and (package.stat().st_size == twin.stat().st_size), package


def test_a_signing_usage_error_found_while_running_is_worded_as_click_words_it(material: Path) -> None:
    done = script("sign", "A.1.0.0.nupkg", cwd=material)
    assert done == (2, "", "error: Invalid value for '--certificate-path': give a certificate file "
                           "(or the --pkcs11-* options) (nuseal sign)\n")
