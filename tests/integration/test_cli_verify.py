"""The ``nuseal verify`` contract (spec §6.8, §7.2): exit codes, dotnet-style text, the ``--json`` document,
globs, missing files, ``NUGET_CERT_REVOCATION_MODE`` and verbosity."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.conftest import VECTORS
from tests.support import tamper
from tests.support.cli import run
from tests.support.pki import TestPki
from tests.unit.sign.helpers import make_package, signer_for

from nuseal.sign.author import AuthorSignRequest, sign_package

REAL = VECTORS / "real" / "Newtonsoft.Json.13.0.1.nupkg"
OFFLINE = ("--revocation-mode", "offline")




@pytest.fixture
def tampered(tmp_path: Path) -> Path:
    out = tmp_path / "Newtonsoft.Json.13.0.1.nupkg"
    tamper.append_to_entry(REAL, out)
    return out


def test_valid_package_exits_0(tmp_path: Path) -> None:
    code, stdout, _ = run("verify", *OFFLINE, str(REAL))
    assert code == 0
    assert "Verifying Newtonsoft.Json.13.0.1" in stdout
    assert "Successfully verified package 'Newtonsoft.Json.13.0.1'." in stdout
    assert "error:" not in stdout


def test_tampered_package_exits_1_with_nu3008_line(tampered: Path) -> None:
    code, stdout, _ = run("verify", *OFFLINE, str(tampered))
    assert code == 1
    assert "Finished with 1 errors and 0 warnings." in stdout
    nu3008 = [line for line in stdout.splitlines() if "NU3008:" in line]
    assert nu3008 == [
        "error: NU3008: The package integrity check failed. The package has changed since it was signed. "
        "Try clearing the local http-cache and run nuget operation again."
    ]
    assert stdout.rstrip().endswith("Package signature validation failed.")


def test_json_document_shape(tampered: Path) -> None:
    code, stdout, _ = run("verify", *OFFLINE, "--json", str(REAL), str(tampered))
    assert code == 1
    document = json.loads(stdout)
    good, bad = document["packages"]
    assert (good["path"], good["valid"]) == (str(REAL), True)
    assert (bad["path"], bad["valid"]) == (str(tampered), False)
    primary, counter = good["signatures"]
    assert (primary["kind"], primary["placement"]) == ("author", "primary")
    assert (counter["kind"], counter["placement"]) == ("repository", "countersignature")
    assert primary["certificate"]["sha256"] == "a3af7af11ebb8ef729d2d91548509717e7e0ff55a129abc3aeaa8a6940267641"
    assert datetime.fromisoformat(primary["timestamps"][0]["time"]) == datetime(2021, 3, 17, 20, 3, 36, tzinfo=UTC)
    assert counter["service_index_url"] == "https://api.nuget.org/v3/index.json"
    assert counter["owners"] == ["dotnetfoundation", "jamesnk", "newtonsoft"]
    errors = [i for i in bad["issues"] if i["level"] == "error"]
    assert [(i["code"], i["message"].split(".")[0]) for i in errors] == [
        ("NU3008", "The package integrity check failed")]
    for issue in good["issues"] + bad["issues"]:
        assert set(issue) >= {"code", "level", "message"}


def test_glob_argument_expands_sorted(tampered: Path, tmp_path: Path) -> None:
    shutil.copy(REAL, tmp_path / "A.nupkg")
    code, stdout, _ = run("verify", *OFFLINE, "--json", str(tmp_path / "*.nupkg"))
    assert code == 1
    paths = [p["path"] for p in json.loads(stdout)["packages"]]
    assert paths == [str(tmp_path / "A.nupkg"), str(tampered)]
    assert run("verify", *OFFLINE, str(tmp_path / "A*.nupkg"))[0] == 0


def test_missing_file_exits_1_and_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.nupkg"
    code, stdout, stderr = run("verify", *OFFLINE, str(REAL), str(missing))
    assert code == 1
    assert str(missing) in stderr
    assert "Successfully verified package 'Newtonsoft.Json.13.0.1'." in stdout


def test_quiet_verbosity_hides_details(tampered: Path) -> None:
    _, normal, _ = run("verify", *OFFLINE, str(tampered))
    code, quiet, _ = run("verify", *OFFLINE, "-v", "q", str(tampered))
    assert code == 1
    _, minimal, _ = run("verify", *OFFLINE, "-v", "m", str(tampered))
    assert "SHA256 hash:" in normal and "SHA256 hash:" not in quiet and "SHA256 hash:" not in minimal
    assert "Finished with" not in quiet and "Finished with" not in minimal
    # Quiet is errors and warnings only, and still names the file of the failed package.
    assert quiet.splitlines() == [
        "error: NU3008: The package integrity check failed. The package has changed since it was signed. "
        "Try clearing the local http-cache and run nuget operation again.",
        f"error: Package signature validation failed ({tampered}).",
    ]
    # Minimal adds NuGet's "Verifying" line and the result line.
    assert "Verifying Newtonsoft.Json.13.0.1" in minimal and minimal.rstrip().endswith("validation failed.")


def test_revocation_mode_environment_variable(
    pki: TestPki, running_servers: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = make_package(tmp_path / "a.nupkg")
    sign_package(pkg, pkg, AuthorSignRequest(signer_for(pki.leaf)), timestamper=None, now=datetime.now(UTC))
    root = pki.root.write_cert(tmp_path / "root.pem")
    args = ("verify", "--trust-roots", str(root), "--timestamp-roots", str(root), "--json", str(pkg))

    def revocation_issues() -> list[tuple[str, str]]:
        code, stdout, _ = run(*args)
        assert code == 0, stdout
        issues = json.loads(stdout)["packages"][0]["issues"]
        return [(i["code"], i["level"]) for i in issues if "revocation" in i["message"].lower()]

    monkeypatch.setenv("NUGET_CERT_REVOCATION_MODE", "offline")
    assert revocation_issues() == [("NU3018", "info")]
    # Online (the default), with the PKI's OCSP responder and CRL server up: revocation is known.
    monkeypatch.delenv("NUGET_CERT_REVOCATION_MODE")
    assert revocation_issues() == []


def _trusted_author_config(path: Path, fingerprint: str, *, allow_untrusted_root: bool = False) -> Path:
    flag = "true" if allow_untrusted_root else "false"
    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n<configuration><trustedSigners><author name="someone">'
        f'<certificate fingerprint="{fingerprint}" hashAlgorithm="SHA256" allowUntrustedRoot="{flag}" />'
        "</author></trustedSigners></configuration>\n")
    return path


def test_verify_names_the_nuget_config_whose_trusted_signers_decide(pki: TestPki, tmp_path: Path) -> None:
    pkg = make_package(tmp_path / "a.nupkg")
    sign_package(pkg, pkg, AuthorSignRequest(signer_for(pki.leaf)), timestamper=None, now=pki.now)
    root = pki.root.write_cert(tmp_path / "root.pem")
    roots = ("--trust-roots", str(root), "--timestamp-roots", str(root))
    empty = tmp_path / "empty.config"
    empty.write_text("<configuration />\n")
    code, out, _ = run("verify", *OFFLINE, *roots, "--configfile", str(empty), str(pkg))
    assert code == 0 and "Trusted signers from" not in out

    # A trusted author that did not sign the package: NU3034, and the file that said so is named.
    other = _trusted_author_config(tmp_path / "other.config", pki.intermediate.sha256_fingerprint)
    code, out, _ = run("verify", *OFFLINE, *roots, "--configfile", str(other), str(pkg))
    assert code == 1 and "NU3034" in out and f"Trusted signers from: {other}" in out
    code, quiet, _ = run("verify", *OFFLINE, *roots, "--configfile", str(other), "-v", "q", str(pkg))
    assert quiet.splitlines()[-2:] == [f"error: Package signature validation failed ({pkg}).",
                                      f"Trusted signers from: {other}"]

    # allowUntrustedRoot makes the package valid without any trusted root: the verdict comes from the file.
    lenient = _trusted_author_config(tmp_path / "lenient.config", pki.leaf.sha256_fingerprint,
                                     allow_untrusted_root=True)
    code, out, _ = run("verify", *OFFLINE, "--configfile", str(lenient), str(pkg))
    assert code == 0, out
    assert f"Trusted signers from: {lenient}" in out
    code, out, _ = run("verify", *OFFLINE, "--configfile", str(empty), str(pkg))
    assert code == 1 and "Trusted signers from" not in out


def test_verify_text_dates_are_iso_8601_utc() -> None:
    code, out, _ = run("verify", *OFFLINE, str(REAL))
    assert code == 0
    assert "  Valid from: 2018-10-25T00:00:00+00:00 to 2021-10-29T12:00:00+00:00" in out
    assert "Timestamp: 2021-03-17T20:03:36+00:00" in out
