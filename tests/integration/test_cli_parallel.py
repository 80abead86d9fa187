"""``--parallel N`` on ``nuseal verify`` / ``sign`` / ``repo-sign`` and ``--no-fsync``: the same output, in the same
order, with the same exit code as in one process."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest
from tests.conftest import VECTORS
from tests.support import tamper
from tests.support.pki import TestPki
from tests.unit.sign.helpers import make_package
from typer.testing import CliRunner

OFFLINE = ("--revocation-mode", "offline")


def run(*args: str) -> tuple[int, str, str]:
    from nuseal.cli.app import app

    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def batch(tmp_path: Path) -> list[str]:
    real = sorted((VECTORS / "real").glob("*.nupkg"))[:6]
    tampered = tmp_path / "Tampered.nupkg"
    tamper.append_to_entry(VECTORS / "real" / "Newtonsoft.Json.13.0.1.nupkg", tampered)
    return [*map(str, real[:3]), str(tampered), *map(str, real[3:]), str(tmp_path / "missing.nupkg")]


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_verify_output_and_exit_code_do_not_depend_on_parallel(batch: list[str], as_json: bool) -> None:
    extra = ("--json",) if as_json else ()
    one = run("verify", *OFFLINE, *extra, "--parallel", "1", *batch)
    two = run("verify", *OFFLINE, *extra, "--parallel", "3", *batch)
    assert one == two
    assert one[0] == 1  # the tampered and the missing package
    if as_json:
        paths = [p["path"] for p in json.loads(one[1])["packages"]]
        assert paths == batch  # the missing file, last here, is also reported last


def test_parallel_must_be_at_least_one(batch: list[str]) -> None:
    code, _, stderr = run("verify", *OFFLINE, "--parallel", "0", batch[0])
    assert code == 2 and "--parallel" in stderr


def _pfx(pki: TestPki, tmp_path: Path) -> Path:
    return pki.leaf.write_pfx(tmp_path / "leaf.pfx", "pw")


def test_sign_in_parallel_reports_in_input_order_and_isolates_a_refusal(pki: TestPki, tmp_path: Path) -> None:
    packages = [make_package(tmp_path / f"P{i}.1.0.0.nupkg") for i in range(5)]
    signed_already = tmp_path / "Signed.1.0.0.nupkg"
    shutil.copy(VECTORS / "real" / "Newtonsoft.Json.13.0.1.nupkg", signed_already)
    inputs = [*map(str, packages[:2]), str(signed_already), *map(str, packages[2:])]
    out = tmp_path / "out"
    code, stdout, _ = run("sign", *inputs, "--certificate-path", str(_pfx(pki, tmp_path)),
                          "--certificate-password", "pw", "-o", str(out), "--json", "--parallel", "2",
                          "--no-fsync")  # fmt: skip
    assert code == 1
    report = json.loads(stdout)
    assert [p["path"] for p in report["packages"]] == inputs
    refused = report["packages"][2]
    assert refused["error"]["code"] == "NU3001" and not (out / signed_already.name).exists()
    for entry in report["packages"][:2] + report["packages"][3:]:
        assert "error" not in entry and entry["kind"] == "author"
        with zipfile.ZipFile(entry["output"]) as zf:
            assert zf.testzip() is None and ".signature.p7s" in zf.namelist()


def test_repo_sign_in_parallel_matches_one_process(pki: TestPki, tmp_path: Path) -> None:
    pfx = _pfx(pki, tmp_path)
    results = []
    for workers in ("1", "2"):
        folder = tmp_path / f"run{workers}"
        folder.mkdir()
        packages = [str(make_package(folder / f"P{i}.1.0.0.nupkg")) for i in range(3)]
        code, stdout, _ = run("repo-sign", *packages, "--service-index-url", "https://feed.example/v3/index.json",
                              "--certificate-path", str(pfx), "--certificate-password", "pw", "--json",
                              "--parallel", workers)  # fmt: skip
        report = json.loads(stdout)
        results.append((code, [(Path(p["path"]).name, p["kind"], p["timestamped"]) for p in report["packages"]]))
    assert results[0] == results[1] == (0, [(f"P{i}.1.0.0.nupkg", "repository", False) for i in range(3)])
