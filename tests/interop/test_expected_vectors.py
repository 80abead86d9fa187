"""Every row of ../shared/vectors/EXPECTED.tsv, under the conditions EXPECTED.md states.

Verify-command policy, nuseal's default trust roots (the .NET SDK fallback bundles), revocation offline, now.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from nuseal.enums import RevocationMode
from nuseal.verify.engine import TrustContext, verify_package
from nuseal.verify.policy import VerificationPolicy
from nuseal.x509.revocation import RevocationChecker
from nuseal.x509.roots import default_trust_store, trust_store_from_files
from tests.conftest import VECTORS


def _rows() -> list[dict[str, str]]:
    with (VECTORS / "EXPECTED.tsv").open(newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


ROWS = _rows() if (VECTORS / "EXPECTED.tsv").is_file() else []


def _policy() -> VerificationPolicy:
    return VerificationPolicy.verify_command()


@pytest.fixture(scope="module")
def trust() -> TrustContext:
    return TrustContext(default_trust_store(), RevocationChecker(RevocationMode.OFFLINE))


@pytest.mark.parametrize("row", ROWS, ids=[r["path"] for r in ROWS])
def test_expected_row(row: dict[str, str], trust: TrustContext) -> None:
    verdict = verify_package(VECTORS / row["path"], policy=_policy(), trust=trust, now=datetime.now(UTC))
    codes = {f.code.value for f in verdict.findings}
    expected_exit = int(row["verify_exit"])
    actual_exit = 0 if verdict.valid and not verdict.errors else 1
    assert actual_exit == expected_exit, (verdict.findings, verdict.error)
    for code in filter(None, row["must_codes"].split(";")):
        assert code in codes, f"{code} missing from {sorted(codes)}"
    if expected_exit == 0:
        assert not verdict.errors
    kind = row["kind"]
    if kind == "corrupt":
        assert verdict.error is not None and row["path"].split("/")[-1] in verdict.error
        return
    if kind == "unsigned":
        assert not verdict.signed and verdict.signatures == ()
        return
    primary = verdict.signatures[0]
    assert primary.placement == "primary"
    assert primary.kind.value == kind
    assert primary.certificate is not None
    assert primary.certificate.sha256.lower() == row["signer_sha256"]
    counters = [s for s in verdict.signatures if s.placement == "countersignature"]
    if row["countersignature"] == "repository":
        assert len(counters) == 1
        assert counters[0].certificate is not None
        assert counters[0].certificate.sha256.lower() == row["countersigner_sha256"]
        repository = counters[0]
    else:
        assert counters == []
        repository = primary
    assert (repository.service_index_url or "") == row["service_index_url"]
    assert ";".join(sorted(repository.owners)) == row["owners"]


def test_default_roots_equal_the_sdk_fallback_bundles(trust: TrustContext) -> None:
    fixtures = VECTORS / "fixtures"
    bundles = trust_store_from_files(fixtures / "codesignctl.pem", fixtures / "timestampctl.pem")
    default = default_trust_store()
    assert {c.serial_number for c in bundles.code_signing} == {c.serial_number for c in default.code_signing}
    assert len(bundles.timestamping) == len(default.timestamping)


def test_cli_json_contract_over_all_vectors() -> None:
    paths = [str(VECTORS / r["path"]) for r in ROWS]
    proc = subprocess.run([sys.executable, "-m", "nuseal", "verify", "--revocation-mode", "offline", "--json", *paths],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1  # some vectors are expected to fail
    document = json.loads(proc.stdout)
    assert document["schema"] == 1
    by_path = {p["path"]: p for p in document["packages"]}
    for row in ROWS:
        package = by_path[str(VECTORS / row["path"])]
        assert package["valid"] is (row["verify_exit"] == "0")
        assert set(package) >= {"path", "valid", "signatures", "issues"}
        for issue in package["issues"]:
            assert set(issue) >= {"code", "level", "message"}
            assert issue["level"] in {"error", "warning", "info"}
        if row["kind"] in {"author", "repository"}:
            primary = package["signatures"][0]
            assert primary["kind"] == row["kind"] and primary["placement"] == "primary"
            assert primary["certificate"]["sha256"] == row["signer_sha256"]
            assert set(primary["certificate"]) >= {"sha256", "subject", "issuer", "not_before", "not_after"}
            datetime.fromisoformat(primary["certificate"]["not_before"])
            for ts in primary["timestamps"]:
                datetime.fromisoformat(ts["time"])
                assert len(ts["certificate"]["sha256"]) == 64
            assert isinstance(primary["owners"], list)


def test_cli_text_for_corrupt_file_names_it() -> None:
    path = VECTORS / "real" / "HtmlAgilityPack.1.11.46__MALFORMED-zero-filled.nupkg"
    proc = subprocess.run([sys.executable, "-m", "nuseal", "verify", "--revocation-mode", "offline", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert str(path) in proc.stdout + proc.stderr


def test_cli_text_lists_signer_details() -> None:
    path = VECTORS / "real" / "Microsoft.Bcl.AsyncInterfaces.8.0.0.nupkg"
    proc = subprocess.run([sys.executable, "-m", "nuseal", "verify", "--revocation-mode", "offline", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout
    out = proc.stdout
    for expected in ("Verifying Microsoft.Bcl.AsyncInterfaces.8.0.0", "Signature type: Author",
                     "Signature type: Repository",
                     "SHA256 hash: 566A31882BE208BE4422F7CFD66ED09F5D4524A5994F50CCC8B05EC0528C1353",
                     "Service index: https://api.nuget.org/v3/index.json", "Owners: dotnetframework, Microsoft",
                     "Timestamp: 2023-10-31T20:41:33+00:00", "Successfully verified package"):
        assert expected in out, expected


def test_unsigned_is_valid_under_accept(trust: TrustContext) -> None:
    verdict = verify_package(VECTORS / "real" / "NUnit.2.6.4__unsigned.nupkg", policy=VerificationPolicy.accept_mode(),
                             trust=trust, now=datetime.now(UTC))
    assert verdict.valid and verdict.findings == ()
