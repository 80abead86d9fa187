"""``nuseal install`` (the console script, as users run it) against ``nuseal serve`` on both backends: a package
pushed with dependencies A -> B -> C (version ranges) installs with the lowest applicable version of each
dependency and the highest stable version of A, signatures verified as the nuget.config says: an author-signed
B (the test PKI, trusted through --trust-roots) and unsigned A and C in accept mode; in require mode the unsigned
ones are refused with NU3004 and nothing is extracted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from tests.support.feed_http import api_key, push
from tests.support.feed_packages import build_package, sign
from tests.support.pki import TestPki
from tests.support.server_factories import user
from tests.support.server_fixtures import BACKENDS, DatabaseFactory, FeedServer, start_feed_server

from nuseal.codes import Messages

ACCEPT = '<?xml version="1.0" encoding="utf-8"?>\n<configuration />\n'
#: require mode trusting the test PKI's author certificate (fingerprint filled in).
REQUIRE = ('<?xml version="1.0" encoding="utf-8"?>\n<configuration><config>'
           '<add key="signatureValidationMode" value="require" /></config><trustedSigners>'
           '<author name="test author"><certificate fingerprint="{fingerprint}" hashAlgorithm="SHA256" '
           'allowUntrustedRoot="false" /></author></trustedSigners></configuration>\n')

#: (id, version, dependencies): A's highest stable is 1.0.0 (2.0.0-beta is a prerelease); B's lowest version in
#: [1.1.0, 2.0.0) is 1.1.0; C's lowest above 1.0.0 (exclusive) is 1.0.1.
PACKAGES: list[tuple[str, str, list[tuple[str, str]]]] = [
    ("Chain.A", "0.9.0", []),
    ("Chain.A", "1.0.0", [("Chain.B", "[1.1.0, 2.0.0)")]),
    ("Chain.A", "2.0.0-beta", [("Chain.B", "2.0.0")]),
    ("Chain.B", "1.0.0", []),
    ("Chain.B", "1.1.0", [("Chain.C", "(1.0.0, )")]),
    ("Chain.B", "1.5.0", [("Chain.C", "(1.0.0, )")]),
    ("Chain.B", "2.0.0", []),
    ("Chain.C", "1.0.0", []),
    ("Chain.C", "1.0.1", []),
    ("Chain.C", "3.0.0", []),
]


@pytest.fixture(params=BACKENDS)
def feed(request: pytest.FixtureRequest, database_factory: DatabaseFactory, pki: TestPki,
         tmp_path: Path) -> Iterator[FeedServer]:
    roots = tmp_path / "roots.pem"
    roots.write_bytes(pki.root.pem)
    server = start_feed_server(database_factory, request.param, tmp_path / "feed", roots=roots)
    user(server.ctx, "alice")
    yield server
    server.stop()


def nuseal_install(feed: FeedServer, workdir: Path, config: str, *args: str) -> subprocess.CompletedProcess[str]:
    (workdir / "nuget.config").write_text(config)
    nuseal = str(Path(sys.executable).with_name("nuseal"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUGET_", "NUSEAL_"))} | {"HOME": str(workdir)}
    return subprocess.run(
        [nuseal, "install", *args, "--source", f"{feed.url}/v3/index.json", "--allow-insecure-loopback",
         "--configfile", str(workdir / "nuget.config"), "--trust-roots", str(feed.ctx.settings.trust_roots),
         "--timestamp-roots", str(feed.ctx.settings.timestamp_roots), "--revocation-mode", "offline"],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_nuseal_install_resolves_a_pushed_chain_from_the_feed(feed: FeedServer, pki: TestPki,
                                                              tmp_path: Path) -> None:
    key = api_key(feed.ctx, "alice")
    pushed: dict[tuple[str, str], bytes] = {}
    for package_id, version, dependencies in PACKAGES:
        path = build_package(tmp_path / f"{package_id}.{version}.nupkg", package_id, version,
                             dependencies=[("net8.0", dependencies)] if dependencies else [])  # fmt: skip
        if (package_id, version) == ("Chain.B", "1.1.0"):
            sign(path, pki)
        answer = push(feed.url, key, path)
        assert answer.status_code == 201, answer.text
        pushed[(package_id, version)] = path.read_bytes()

    work = tmp_path / "accept"
    work.mkdir()
    done = nuseal_install(feed, work, ACCEPT, "Chain.A", "-o", str(work / "packages"), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    installed = {(p["id"], p["version"]) for p in json.loads(done.stdout)["installed"]}
    assert installed == {("Chain.A", "1.0.0"), ("Chain.B", "1.1.0"), ("Chain.C", "1.0.1")}
    for package_id, version in installed:
        folder = work / "packages" / package_id.lower() / version
        nupkg = folder / f"{package_id.lower()}.{version}.nupkg"
        assert nupkg.read_bytes() == pushed[(package_id, version)]  # the pushed bytes, served exactly
        assert (folder / "lib/net8.0/Contoso.Lib.dll").is_file()
    assert sorted(p.name for p in (work / "packages").iterdir()) == ["chain.a", "chain.b", "chain.c"]

    # An explicit version and a prerelease: A 2.0.0-beta needs B >= 2.0.0 (lowest: 2.0.0, no dependencies).
    done = nuseal_install(feed, work, ACCEPT, "Chain.A", "--version", "2.0.0-beta", "-o", str(work / "pre"),
                          "--json")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert {(p["id"], p["version"]) for p in json.loads(done.stdout)["installed"]} == {
        ("Chain.A", "2.0.0-beta"), ("Chain.B", "2.0.0")}

    # require mode: the signed B alone passes; the unsigned A is refused and nothing is extracted.
    strict = tmp_path / "require"
    strict.mkdir()
    require = REQUIRE.format(fingerprint=pki.leaf.cert.fingerprint(hashes.SHA256()).hex().upper())
    done = nuseal_install(feed, strict, require, "Chain.B", "--version", "1.1.0", "--ignore-dependencies",
                          "-o", str(strict / "packages"))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Chain.B 1.1.0 installed" in done.stdout
    done = nuseal_install(feed, strict, require, "Chain.A", "-o", str(strict / "refused"))
    assert done.returncode == 1
    assert (f"Package 'Chain.A 1.0.0' from source '{feed.url}/v3/index.json': NU3004: "
            f"{Messages.REQUIRE_MODE_UNSIGNED}") in done.stderr
    assert not (strict / "refused").exists()
