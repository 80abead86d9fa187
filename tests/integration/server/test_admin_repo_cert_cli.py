"""``nuseal admin repo-cert``: add (PFX/PEM with --password-stdin, or a SoftHSM2 token), list (text and JSON),
activate, retire and revoke with --wait, through the installed console script (the contract scripts rely on)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from tests.support.pki import TEST_PASSWORD, TestPki
from tests.support.repository_signing import SigningFeed, signatures_of, signing_feed, worker_environment
from tests.support.server_fixtures import DatabaseFactory

from nuseal.server.services import audit
from nuseal.x509 import certs

NUSEAL = str(Path(sys.executable).with_name("nuseal"))
MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")
_CLEAN = {k: v for k, v in os.environ.items() if not k.startswith("NUSEAL_")}


@pytest.fixture
def feed(database_factory: DatabaseFactory, pki: TestPki, tmp_path: Path) -> Iterator[SigningFeed]:
    """An embedded feed (SQLite, folder) the CLI reaches through the same NUSEAL_* settings."""
    with database_factory.database("sqlite") as db, signing_feed(db, pki, tmp_path / "feed") as made:
        made.add_certificate()
        yield made


def nuseal(feed: SigningFeed, *args: str, stdin: str | None = None,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return subprocess.run([NUSEAL, "admin", *args], input=stdin, capture_output=True, text=True, timeout=300,
                          check=False, env=_CLEAN | worker_environment(feed) | (env or {}))  # fmt: skip


def ok(feed: SigningFeed, *args: str, **kwargs: Any) -> str:
    result = nuseal(feed, *args, **kwargs)
    assert result.returncode == 0, f"nuseal admin {' '.join(args)}: {result.stderr}"
    return result.stdout


def refused(feed: SigningFeed, *args: str, code: int = 1, **kwargs: Any) -> str:
    result = nuseal(feed, *args, **kwargs)
    assert result.returncode == code, result
    return result.stderr


def listing(feed: SigningFeed) -> dict[str, dict[str, Any]]:
    document = json.loads(ok(feed, "repo-cert", "list", "--json"))
    assert document["schema"] == 1
    return {c["sha256"]: c for c in document["certificates"]}


def test_add_list_activate_and_retire_with_wait(feed: SigningFeed, tmp_path: Path) -> None:
    (old,) = listing(feed)
    versions = [feed.publish(f"Contoso.Lib{i}", "1.0.0", author_signed=i == 0) for i in range(4)]
    issued = feed.issue("cli")
    pfx = issued.write_pfx(tmp_path / "new.pfx")
    added = ok(feed, "repo-cert", "add", str(pfx), "--password-stdin", "--timestamper", feed.tsa.url,
               stdin=TEST_PASSWORD + "\n")  # fmt: skip
    new = certs.fingerprint(issued.cert).lower()
    assert added == (f"Added repository certificate {new} ({certs.subject_string(issued.cert)}), listed in "
                     f"RepositorySignatures; activate it with 'nuseal admin repo-cert activate {new}'.\n")  # fmt: skip
    found = listing(feed)
    assert (found[old]["state"], found[old]["served_packages"]) == ("active", 4)
    assert (found[new]["state"], found[new]["listed"], found[new]["key"]) == ("listed", True, "sealed-pfx")
    assert set(found[new]) >= {"sha256", "subject", "issuer", "not_before", "not_after", "state", "listed",
                               "served_packages", "timestamper", "development"}  # fmt: skip
    text = ok(feed, "repo-cert", "list").splitlines()
    assert len(text) == 2 and any(line.startswith(f"{old}  active   listed    served 4  valid ") for line in text)
    assert ok(feed, "repo-cert", "activate", new.upper()) == (
        f"Activated repository certificate {new}: new pushes are signed with it.\n")
    assert "already is the active one" in ok(feed, "repo-cert", "activate", new)

    report = json.loads(ok(feed, "repo-cert", "retire", old, "--wait", "--json"))["report"]
    assert (report["state"], report["resigned"], report["failed"], report["total"]) == ("completed", 4, 0, 4)
    assert report["certificate_listed"] is False and report["failures"] == []
    assert report["duration_seconds"] >= 0
    found = listing(feed)
    assert (found[old]["state"], found[old]["listed"], found[new]["served_packages"]) == ("retired", False, 4)
    assert {signatures_of(feed.served(v)[1], tmp_path).repository_cert for v in versions} == {new}
    actions = [e.action for e in audit.list_events(feed.ctx)]
    for action in ("repository:certificate:add", "repository:certificate:activate",
                   "repository:certificate:retire", "repository:certificate:unlist", "package:version:resign"):
        assert action in actions


def test_retire_wait_prints_the_report_and_fails_when_packages_failed(feed: SigningFeed, tmp_path: Path) -> None:
    (old,) = listing(feed)
    feed.publish("Contoso.Good", "1.0.0")
    bad = feed.publish("Contoso.Bad", "2.0.0")
    row, _ = feed.served(bad)
    path = feed.ctx.settings.data_dir / "blobs" / (row.package_blob or "")
    path.chmod(0o644)
    path.write_bytes(b"damaged")
    new = feed.add_certificate()
    result = nuseal(feed, "repo-cert", "retire", old, "--wait")
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"Retiring {old}: 2 package(s) to re-sign with {new} (run 1)."
    assert lines[1].startswith(f"Run 1 (retire {old}): re-signed 1 of 2 package(s), 1 failed, in ")
    assert lines[2] == f"Certificate {old} is still listed in RepositorySignatures (packages still carry it)."
    assert lines[3].startswith("  failed: Contoso.Bad 2.0.0: ")


def test_revoke_without_wait_leaves_the_run_to_the_workers(feed: SigningFeed) -> None:
    (old,) = listing(feed)
    feed.publish("Contoso.Lib", "1.0.0")
    new = feed.add_certificate()
    out = ok(feed, "repo-cert", "revoke", old).splitlines()
    assert out[0] == f"Revoking {old}: 1 package(s) to re-sign with {new} (run 1)."
    assert out[1].startswith("Run 1 goes on in the workers: 0 of 1 done")
    found = listing(feed)
    assert (found[old]["state"], found[old]["listed"]) == ("revoked", False)
    report = json.loads(ok(feed, "repo-cert", "revoke", old, "--wait", "--json"))["report"]  # resumes, finishes
    assert (report["run"], report["state"], report["resigned"]) == (1, "completed", 1)


def test_refusals_are_one_line_errors(feed: SigningFeed, tmp_path: Path, pki: TestPki) -> None:
    (active,) = listing(feed)
    assert refused(feed, "repo-cert", "activate", "abc") == (
        "error: invalid certificate fingerprint 'abc': expected 64 hexadecimal digits (SHA-256)\n")
    assert "is the active one: activate another" in refused(feed, "repo-cert", "retire", active)
    assert refused(feed, "repo-cert", "add", "--timestamper", feed.tsa.url).startswith("error: give a certificate")
    pfx = feed.issue("bad-password").write_pfx(tmp_path / "x.pfx")
    wrong = refused(feed, "repo-cert", "add", str(pfx), "--password-stdin", "--timestamper", feed.tsa.url,
                    stdin="wrong\n")  # fmt: skip
    assert wrong.startswith("error: ") and "password is wrong or missing" in wrong and wrong.count("\n") == 1
    weak = pki.weak_key_leaf.write_pfx(tmp_path / "weak.pfx")
    assert "cannot repository-sign: NU3014" in refused(feed, "repo-cert", "add", str(weak), "--password-stdin",
                                                       "--timestamper", feed.tsa.url, stdin=TEST_PASSWORD)  # fmt: skip
    assert "Missing option '--timestamper'" in refused(feed, "repo-cert", "add", str(pfx), code=2)


def test_the_wait_shows_a_progress_bar_on_a_terminal(feed: SigningFeed) -> None:
    (old,) = listing(feed)
    for i in range(3):
        feed.publish(f"Contoso.Lib{i}", "1.0.0")
    feed.add_certificate()
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen([NUSEAL, "admin", "repo-cert", "retire", old, "--wait"], stdout=subprocess.PIPE,
                                   stderr=follower, text=True, env=_CLEAN | worker_environment(feed))  # fmt: skip
        os.close(follower)
        out, _ = process.communicate(timeout=300)
        terminal = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            terminal += chunk
    finally:
        os.close(leader)
    assert process.returncode == 0
    assert "re-signed 3 of 3 package(s)" in out  # the report stays on stdout
    assert b"Re-signing" in terminal and b"3/3" in terminal  # the bar was drawn on the terminal


def test_a_key_on_a_pkcs11_token_signs_through_the_cli(feed: SigningFeed, tmp_path: Path) -> None:
    if not MODULE.is_file():
        pytest.fail(f"SoftHSM2 is not installed ({MODULE} missing): apt-get install softhsm2 opensc")
    (old,) = listing(feed)
    versions = [feed.publish(f"Contoso.Lib{i}", "1.0.0") for i in range(2)]
    issued = feed.issue("token")
    root = tmp_path / "softhsm"
    (root / "tokens").mkdir(parents=True)
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    env = {"SOFTHSM2_CONF": str(conf), "NUSEAL_REPOSITORY_PKCS11_PIN": "1234"}
    tool_env = _CLEAN | env
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "feed", "--pin", "1234", "--so-pin",
                    "5678"], check=True, capture_output=True, env=tool_env)  # fmt: skip
    key = root / "key.der"
    key.write_bytes(issued.key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))  # fmt: skip
    subprocess.run(["pkcs11-tool", "--module", str(MODULE), "--token-label", "feed", "--login", "--pin", "1234",
                    "--write-object", str(key), "--type", "privkey", "--label", "repo", "--id", "07"],
                   check=True, capture_output=True, env=tool_env)  # fmt: skip
    chain = root / "chain.pem"
    chain.write_bytes(issued.chain_pem)
    add = ["repo-cert", "add", "--pkcs11-module", str(MODULE), "--pkcs11-token", "feed", "--pkcs11-key", "repo",
           "--certificate-path", str(chain), "--timestamper", feed.tsa.url]  # fmt: skip
    assert "set NUSEAL_REPOSITORY_PKCS11_PIN" in refused(feed, *add, env={"SOFTHSM2_CONF": str(conf)})
    ok(feed, *add, env=env)
    new = certs.fingerprint(issued.cert).lower()
    assert listing(feed)[new]["key"] == "pkcs11"
    ok(feed, "repo-cert", "activate", new, env=env)
    report = json.loads(ok(feed, "repo-cert", "retire", old, "--wait", "--json", env=env))["report"]
    assert (report["resigned"], report["failed"]) == (2, 0)
    assert {signatures_of(feed.served(v)[1], tmp_path).repository_cert for v in versions} == {new}
