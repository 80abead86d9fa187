"""Signing against nuseal's TSA on loopback, through the library and through the ``nuseal`` commands."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

from tests.support.cli import run
from tests.support.pki import TEST_PASSWORD, TestPki
from tests.support.servers import LoopbackServer
from tests.unit.sign.helpers import (
    make_package,
    package_bytes_without_signature,
    signature_value,
    signed_part,
    signer_for,
)

from nuseal.cms.parse import load_primary_signature
from nuseal.sign.author import AuthorSignRequest, sign_package
from nuseal.timestamp.client import HttpTimestamper


def test_http_timestamper_round_trip(pki: TestPki, tsa_server: LoopbackServer, tmp_path: Path) -> None:
    src = make_package(tmp_path / "a.nupkg")
    stamper = HttpTimestamper(pki.tsa_url)
    result = sign_package(src, src, AuthorSignRequest(signer_for(pki.leaf)), timestamper=stamper, now=datetime.now(UTC))
    assert result.timestamped
    signature = signed_part(src)
    token = load_primary_signature(signature).timestamp_tokens[0]
    assert hashlib.sha256(signature_value(signature)).digest() in token


def test_sign_command_signs_with_timestamp(pki: TestPki, tsa_server: LoopbackServer, tmp_path: Path) -> None:
    src = make_package(tmp_path / "a.nupkg")
    original = src.read_bytes()
    pfx = pki.leaf.write_pfx(tmp_path / "leaf.pfx")
    out = tmp_path / "signed"
    code, stdout, stderr = run(
        "sign", str(src), "--certificate-path", str(pfx), "--certificate-password", TEST_PASSWORD,
        "--timestamper", pki.tsa_url, "-o", str(out),
    )  # fmt: skip
    assert code == 0, stderr
    assert "Signing package(s) with certificate:" in stdout
    assert pki.leaf.sha256_fingerprint in stdout
    assert "Package(s) signed successfully." in stdout
    assert src.read_bytes() == original
    assert package_bytes_without_signature(out / "a.nupkg") == original
    assert len(load_primary_signature(signed_part(out / "a.nupkg")).timestamp_tokens) == 1


def test_sign_command_reports_nu_codes_and_exit_1(pki: TestPki, tmp_path: Path) -> None:
    src = make_package(tmp_path / "a.nupkg")
    pfx = pki.leaf.write_pfx(tmp_path / "leaf.pfx")
    code, _, stderr = run("sign", str(src), "--certificate-path", str(pfx), "--certificate-password", "bad")
    assert code == 1 and "NU3001:" in stderr and "password is incorrect" in stderr
    code, _, stderr = run("sign", str(src), "--certificate-path", str(pfx), "--certificate-password", TEST_PASSWORD)
    assert code == 0 and "NU3002" in stderr
    # nuseal's NU3002 names nuseal's own option, in the one warning style of every command.
    assert "warn : NU3002: The '--timestamper' option was not provided." in stderr
    code, _, stderr = run("sign", str(src), "--certificate-path", str(pfx), "--certificate-password", TEST_PASSWORD)
    assert code == 1 and "NU3001:" in stderr and "already contains a signature" in stderr


def test_repo_sign_and_remove_commands_with_pem_and_json(pki: TestPki, tmp_path: Path) -> None:
    src = make_package(tmp_path / "a.nupkg")
    original = src.read_bytes()
    files = pki.leaf.write_pem_key_and_chain(tmp_path / "pem")
    code, stdout, stderr = run(
        "repo-sign", str(src), "--service-index-url", "https://feed.example/v3/index.json", "--owners", "a;b",
        "--certificate-path", str(files.chain), "--key-path", str(files.key), "--json",
    )  # fmt: skip
    assert code == 0, stderr
    report = json.loads(stdout)
    assert report["ok"] and report["packages"][0]["kind"] == "repository"
    assert tuple(load_primary_signature(signed_part(src)).owners) == ("a", "b")
    code, stdout, _ = run("remove-signature", str(src), "--repository-only")
    assert code == 0 and "removed" in stdout
    assert src.read_bytes() == original
    code, _, stderr = run("remove-signature", str(src))
    assert code == 1 and "NU3004" in stderr


def test_sign_command_reports_unreadable_packages_and_signs_the_rest(pki: TestPki, tmp_path: Path) -> None:
    good = make_package(tmp_path / "good.nupkg")
    broken = tmp_path / "broken.nupkg"
    broken.write_text("not a zip")
    pfx = pki.leaf.write_pfx(tmp_path / "leaf.pfx")
    out = tmp_path / "signed"
    code, stdout, stderr = run(
        "sign", str(broken), str(good), "--certificate-path", str(pfx), "--certificate-password", TEST_PASSWORD,
        "-o", str(out), "--json",
    )  # fmt: skip
    assert code == 1, stderr
    report = json.loads(stdout)
    assert report["ok"] is False
    first, second = report["packages"]
    assert first["path"] == str(broken) and "Not a zip archive" in first["error"]["message"]
    assert "error" not in second and second["kind"] == "author"
    assert sorted(p.name for p in out.iterdir()) == ["good.nupkg"]


def test_sign_command_refuses_arguments_that_name_no_file_before_signing(pki: TestPki, tmp_path: Path) -> None:
    good = make_package(tmp_path / "good.nupkg")
    before = good.read_bytes()
    pfx = pki.leaf.write_pfx(tmp_path / "leaf.pfx")
    for missing in (str(tmp_path / "missing.nupkg"), str(tmp_path / "nothing*.nupkg")):
        code, stdout, stderr = run(
            "sign", str(good), missing, "--certificate-path", str(pfx), "--certificate-password", TEST_PASSWORD)
        assert code == 1 and stdout == ""
        assert stderr.splitlines() == [
            f"error: File does not exist ({missing})" if "*" not in missing
            else f"error: No file matches the pattern ({missing})"]
    assert good.read_bytes() == before


def test_sign_command_builds_chains_against_given_roots(
    pki: TestPki, tsa_server: LoopbackServer, tmp_path: Path
) -> None:
    pfx = pki.leaf.write_pfx(tmp_path / "leaf.pfx")
    root = pki.root.write_cert(tmp_path / "root.pem")
    other = pki.untrusted_root.write_cert(tmp_path / "other.pem")
    common = ("--certificate-path", str(pfx), "--certificate-password", TEST_PASSWORD, "--timestamper", pki.tsa_url)

    trusted = make_package(tmp_path / "trusted.nupkg")
    code, _, stderr = run("sign", str(trusted), *common, "--trust-roots", str(root), "--timestamp-roots", str(root))
    assert code == 0, stderr
    assert "NU3018" not in stderr

    untrusted = make_package(tmp_path / "untrusted.nupkg")
    before = untrusted.read_bytes()
    code, _, stderr = run("sign", str(untrusted), *common, "--trust-roots", str(other))
    assert code == 1 and "NU3018:" in stderr and pki.leaf.sha256_fingerprint in stderr
    assert untrusted.read_bytes() == before

    code, _, stderr = run("sign", str(untrusted), *common, "--trust-roots", str(root), "--timestamp-roots", str(other))
    assert code == 1 and "NU3028:" in stderr
    assert untrusted.read_bytes() == before


def test_sign_command_rejects_an_unreadable_root_bundle(pki: TestPki, tmp_path: Path) -> None:
    pfx = pki.leaf.write_pfx(tmp_path / "leaf.pfx")
    bogus = tmp_path / "roots.pem"
    bogus.write_text("not a certificate")
    code, _, stderr = run(
        "sign", str(make_package(tmp_path / "a.nupkg")), "--certificate-path", str(pfx),
        "--certificate-password", TEST_PASSWORD, "--trust-roots", str(bogus),
    )  # fmt: skip
    assert code == 1 and str(bogus) in stderr


def test_sign_command_rejects_a_relative_timestamper_url(pki: TestPki, tmp_path: Path) -> None:
    src = make_package(tmp_path / "a.nupkg")
    before = src.read_bytes()
    pfx = pki.leaf.write_pfx(tmp_path / "leaf.pfx")
    code, _, stderr = run(
        "sign", str(src), "--certificate-path", str(pfx), "--certificate-password", TEST_PASSWORD,
        "--timestamper", "notaurl",
    )  # fmt: skip
    assert code == 2 and "'notaurl' is not an absolute http or https URL" in stderr
    assert src.read_bytes() == before


def test_repo_sign_says_which_signature_it_added(pki: TestPki, tmp_path: Path) -> None:
    unsigned = make_package(tmp_path / "u.nupkg")
    authored = make_package(tmp_path / "a.nupkg")
    pfx = pki.leaf.write_pfx(tmp_path / "leaf.pfx")
    key = ("--certificate-path", str(pfx), "--certificate-password", TEST_PASSWORD)
    assert run("sign", str(authored), *key).code == 0
    code, out, _ = run("repo-sign", str(tmp_path / "*.nupkg"), *key, "--service-index-url",
                       "https://feed.example/v3/index.json")
    assert code == 0
    assert f"Added a repository countersignature to '{authored}', not timestamped." in out
    assert f"Added a repository primary signature to '{unsigned}', not timestamped." in out
    code, quiet, err = run("repo-sign", str(unsigned), *key, "--service-index-url",
                           "https://feed.example/v3/index.json", "--overwrite", "-v", "q")
    assert code == 0 and quiet == "" and "warn : NU3002" in err


def test_repository_countersignature_removed_by_the_commands_gives_back_the_author_signed_bytes(
    pki: TestPki, tsa_server: LoopbackServer, tmp_path: Path
) -> None:
    src = make_package(tmp_path / "a.nupkg")
    pfx = pki.leaf.write_pfx(tmp_path / "leaf.pfx")
    code, _, stderr = run("sign", str(src), "--certificate-path", str(pfx), "--certificate-password", TEST_PASSWORD,
                          "--timestamper", pki.tsa_url)  # fmt: skip
    assert code == 0, stderr
    author_signed = src.read_bytes()
    # A repository certificate from another root: its leaf and root are added to the signature, then dropped.
    files = pki.untrusted_leaf.write_pem_key_and_chain(tmp_path / "pem")
    code, _, stderr = run("repo-sign", str(src), "--service-index-url", "https://feed.example/v3/index.json",
                          "--certificate-path", str(files.chain), "--key-path", str(files.key),
                          "--timestamper", pki.tsa_url)  # fmt: skip
    assert code == 0, stderr
    assert len(src.read_bytes()) > len(author_signed)
    code, _, stderr = run("remove-signature", str(src), "--repository-only")
    assert code == 0, stderr
    assert src.read_bytes() == author_signed
