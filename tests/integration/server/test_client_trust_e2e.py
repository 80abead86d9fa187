"""The client end to end against a repository-signing feed over real HTTPS, on both backends (issue 11 item 6).

Everything on the client side runs through the installed ``nuseal`` console script in subprocesses, with HOME
and the working folder in tmp and one nuget.config in ``require`` mode (signatureValidationMode require) whose
only trust is what ``nuseal trust source`` reads from the feed's RepositorySignatures resource. The server side
runs ``nuseal serve`` + ``nuseal worker`` (tests/support/pipeline.py), rotated through ``nuseal admin repo-cert``.

The feed is pinned to the public URL ``https://feed.example.test`` (what its signatures and documents name).
The client reaches it under that name through a loopback CONNECT proxy that only tunnels feed.example.test:443
to the server's real port (HTTPS_PROXY, tests/support/public_name.py): TLS is end to end, the feed's TLS
certificate names feed.example.test and the client trusts the test PKI root for TLS (SSL_CERT_FILE). So the
service index URL the client trusts, syncs and installs from is the one in the repository signatures, as in
production; nothing is rewritten.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from tests.support.feed_http import TIMEOUT, api_key, push, wait_available
from tests.support.feed_packages import build_package
from tests.support.pipeline import SigningServer, served_bytes, start_signing_server
from tests.support.pki import TEST_PASSWORD, TestPki
from tests.support.public_name import ConnectProxy
from tests.support.repository_signing import signatures_of
from tests.support.server_factories import user
from tests.support.server_fixtures import BACKENDS, DatabaseFactory, tls_for

from nuseal.codes import Messages
from nuseal.enums import HashAlgorithmName
from nuseal.trust.nuget_config import NuGetSettings
from nuseal.x509 import certs

NUSEAL = str(Path(sys.executable).with_name("nuseal"))
HOST = "feed.example.test"
PUBLIC = f"https://{HOST}"
SOURCE = f"{PUBLIC}/v3/index.json"
#: The client's nuget.config: the feed as a source, require mode, no trusted signers until `trust source`.
CONFIG = ('<?xml version="1.0" encoding="utf-8"?>\n<configuration>\n'
          '  <config><add key="signatureValidationMode" value="require" /></config>\n'
          f'  <packageSources><clear /><add key="feed" value="{SOURCE}" /></packageSources>\n'
          '</configuration>\n')  # fmt: skip


@dataclass
class Feed:
    server: SigningServer
    proxy: ConnectProxy
    folder: Path
    key: str  # API key of an account without certificates (unsigned pushes, repository-signed by the feed)

    def publish(self, package_id: str, version: str) -> bytes:
        pushed = build_package(self.folder / f"{package_id}.{version}.nupkg", package_id, version)
        assert push(self.server.url, self.key, pushed, verify=self.server.verify).status_code == 201
        wait_available(self.server.url, package_id, version, verify=self.server.verify)
        return served_bytes(self.server, package_id, version)

    def listed(self) -> set[str]:
        """The SHA-256 fingerprints the feed's RepositorySignatures/5.0.0 lists now (on the embedded backend that
        includes the development certificate the first start made, which nobody retired here)."""
        response = httpx.get(f"{self.server.url}/v3/repository-signatures/5.0.0/index.json", timeout=TIMEOUT,
                             verify=self.server.verify)  # fmt: skip
        assert response.status_code == 200, response.text
        return {c["fingerprints"]["2.16.840.1.101.3.4.2.1"] for c in response.json()["signingCertificates"]}

    def admin(self, *args: str, stdin: str | None = None) -> str:
        """``nuseal admin ARGS`` with the server's database, store, queue and key settings."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("NUSEAL_")}
        done = subprocess.run([NUSEAL, "admin", *args], input=stdin, capture_output=True, text=True, timeout=300,
                              check=False, env=env | self.server.worker_env(self.folder))  # fmt: skip
        assert done.returncode == 0, f"nuseal admin {' '.join(args)}: {done.stdout}{done.stderr}"
        return done.stdout

    def new_certificate(self, name: str) -> str:
        """A second repository certificate added and activated through the admin CLI; its SHA-256."""
        issued = self.server.pki.issue_leaf(f"{name}-{secrets.token_hex(4)}")  # one PKI per session
        pfx = issued.write_pfx(self.folder / f"{name}.pfx")
        self.admin("repo-cert", "add", str(pfx), "--password-stdin", "--timestamper", self.server.tsa.url,
                   stdin=TEST_PASSWORD + "\n")  # fmt: skip
        sha256 = certs.fingerprint(issued.cert).lower()
        self.admin("repo-cert", "activate", sha256)
        return sha256


@pytest.fixture(params=BACKENDS)
def feed(request: pytest.FixtureRequest, database_factory: DatabaseFactory, pki: TestPki,
         tmp_path: Path) -> Iterator[Feed]:  # fmt: skip
    folder = tmp_path / "feed"
    tls = tls_for(pki, folder / "tls", HOST)
    server = start_signing_server(database_factory, request.param, folder, pki, tls, public_url=PUBLIC)
    port = urlsplit(server.url).port
    assert port is not None, server.url
    proxy = ConnectProxy(HOST, port)
    try:
        user(server.feed.ctx, "carol")
        yield Feed(server, proxy, folder, api_key(server.feed.ctx, "carol"))
    finally:
        proxy.close()
        server.stop()


@dataclass
class Client:
    """A user's machine: its own HOME, working folder and nuget.config; reaches the feed through the proxy."""

    home: Path
    feed: Feed

    @property
    def config(self) -> Path:
        return self.home / "nuget.config"

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("NUGET_", "NUSEAL_")) and k.lower() not in _PROXY_VARIABLES}  # fmt: skip
        env |= {"HOME": str(self.home), "HTTPS_PROXY": self.feed.proxy.url,
                "SSL_CERT_FILE": str(self.feed.server.tls.ca_bundle)}  # fmt: skip
        return subprocess.run([NUSEAL, *args], cwd=self.home, env=env, capture_output=True, text=True, timeout=180,
                              check=False)  # fmt: skip

    def ok(self, *args: str) -> str:
        done = self.run(*args)
        assert done.returncode == 0, f"nuseal {' '.join(args)}: {done.stdout}{done.stderr}"
        return done.stdout

    def trust(self, *args: str) -> str:
        return self.ok("trust", *args, "--configfile", str(self.config))

    def install(self, package_id: str, version: str, output: str) -> subprocess.CompletedProcess[str]:
        roots = str(self.feed.server.roots)
        return self.run("install", package_id, "--version", version, "--source", SOURCE, "-o",
                        str(self.home / output), "--configfile", str(self.config), "--trust-roots", roots,
                        "--timestamp-roots", roots, "--revocation-mode", "offline")  # fmt: skip

    def trusted_fingerprints(self) -> set[str]:
        """The SHA-256 fingerprints (lower case) the nuget.config trusts for the repository 'feed'."""
        signers = NuGetSettings.load(configfile=self.config).trusted_signers()
        return {c.fingerprint.lower() for s in signers if s.name == "feed" for c in s.certificates
                if c.algorithm is HashAlgorithmName.SHA256}  # fmt: skip


_PROXY_VARIABLES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


@pytest.fixture
def client(feed: Feed, tmp_path: Path) -> Client:
    home = tmp_path / "home"
    home.mkdir()
    made = Client(home, feed)
    made.config.write_text(CONFIG)
    return made


def _installed(client: Client, output: str, package_id: str, version: str) -> bytes:
    folder = client.home / output / package_id.lower() / version
    assert (folder / "lib/net8.0/Contoso.Lib.dll").is_file()
    return (folder / f"{package_id.lower()}.{version}.nupkg").read_bytes()


def _repository_cert(data: bytes, folder: Path) -> str | None:
    return signatures_of(data, folder).repository_cert


def test_trust_source_then_install_in_require_mode_verifies(feed: Feed, client: Client, tmp_path: Path) -> None:
    """(a) The client trusts what the feed's RepositorySignatures lists, and a repository-signed package installs;
    without that trust, require mode refuses the same package (so the install really depended on it)."""
    served = feed.publish("E2e.Trusted", "1.0.0")
    refused = client.install("E2e.Trusted", "1.0.0", "untrusted")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"Package 'E2e.Trusted 1.0.0' from source '{SOURCE}': NU3034: {Messages.NO_TRUSTED_SIGNERS}" in (
        refused.stderr
    ), refused.stderr
    assert not (client.home / "untrusted").exists()

    client.trust("source", "feed", "--source-url", SOURCE)
    assert feed.server.certificate in client.trusted_fingerprints() == feed.listed()
    done = client.install("E2e.Trusted", "1.0.0", "packages")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "E2e.Trusted 1.0.0 installed" in done.stdout
    assert _installed(client, "packages", "E2e.Trusted", "1.0.0") == served
    assert _repository_cert(served, tmp_path) == feed.server.certificate
    assert f"CONNECT {HOST}:443" in feed.proxy.requested  # reached under its public name, nothing rewritten


def test_rotation_then_sync_keeps_installs_verified(feed: Feed, client: Client, tmp_path: Path) -> None:
    """(b) A second certificate is added and activated, the old one retired with --wait (every package re-signed);
    after `trust sync` the client trusts only the new one, and a fresh install verifies with it."""
    old = feed.server.certificate
    first = feed.publish("E2e.Rotated", "1.0.0")
    assert _repository_cert(first, tmp_path) == old
    client.trust("source", "feed")  # the source's URL from the nuget.config
    assert client.install("E2e.Rotated", "1.0.0", "before").returncode == 0

    new = feed.new_certificate("feed-repo-rotated")
    assert new not in client.trusted_fingerprints()  # the client does not know the new certificate yet
    report = feed.admin("repo-cert", "retire", old, "--wait")
    assert "re-signed 1 of 1 package(s)" in report, report
    client.trust("sync", "feed")
    assert new in client.trusted_fingerprints() == feed.listed()
    assert old not in feed.listed()  # the retired one is no longer listed

    served = served_bytes(feed.server, "E2e.Rotated", "1.0.0")
    assert served != first and _repository_cert(served, tmp_path) == new
    done = client.install("E2e.Rotated", "1.0.0", "after")
    assert done.returncode == 0, done.stdout + done.stderr
    assert _installed(client, "after", "E2e.Rotated", "1.0.0") == served
    # the content (everything but the signature) is what was served before the rotation
    with (
        zipfile.ZipFile(client.home / "after/e2e.rotated/1.0.0/e2e.rotated.1.0.0.nupkg") as after,
        zipfile.ZipFile(client.home / "before/e2e.rotated/1.0.0/e2e.rotated.1.0.0.nupkg") as before,
    ):
        names = [i.filename for i in before.infolist() if i.filename != ".signature.p7s"]
        assert names and all(after.read(n) == before.read(n) for n in names)


def test_a_package_still_carrying_a_revoked_certificate_is_refused_after_sync(
    feed: Feed, client: Client, tmp_path: Path
) -> None:
    """(c) Revocation. The client synced while the old certificate was listed. The operator adds and activates a
    new certificate, then revokes the old one WITHOUT --wait while the feed's worker is stopped: the revocation is
    committed (the old certificate leaves RepositorySignatures at once) but the re-sign run waits for a worker, so
    the feed still serves the package signed with the revoked certificate. That is the real window between a
    revocation and the end of its re-sign run (and what a mirror or cache holding older bytes looks like), not a
    forged state: the bytes are the feed's own, served over HTTPS. After `trust sync`, installing that package
    fails with NU3034 (its repository certificate is no longer in the allow list) and nothing is extracted;
    a package signed with the new certificate still installs, and ``nuseal verify`` with the synced nuget.config
    refuses the copy the client had installed before the revocation (NU3034) too."""
    old = feed.server.certificate
    feed.publish("E2e.Revoked", "1.0.0")
    client.trust("source", "feed")
    assert client.install("E2e.Revoked", "1.0.0", "before").returncode == 0

    new = feed.new_certificate("feed-repo-after-revocation")
    client.trust("sync", "feed")
    assert {old, new} <= client.trusted_fingerprints() == feed.listed()  # packages still carry the old one
    fresh = feed.publish("E2e.Fresh", "1.0.0")  # validated by the worker, signed with the new certificate
    assert _repository_cert(fresh, tmp_path) == new

    assert feed.server.worker is not None
    feed.server.worker.stop()  # the re-sign run that revoke starts waits for a worker
    out = feed.admin("repo-cert", "revoke", old)
    assert out.startswith(f"Revoking {old}: 1 package(s) to re-sign with {new}"), out
    still = served_bytes(feed.server, "E2e.Revoked", "1.0.0")
    assert _repository_cert(still, tmp_path) == old  # the feed still serves the revoked certificate's signature

    assert old not in feed.listed()  # revocation unlists at once
    client.trust("sync", "feed")
    assert new in client.trusted_fingerprints() == feed.listed()
    refused = client.install("E2e.Revoked", "1.0.0", "after")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"Package 'E2e.Revoked 1.0.0' from source '{SOURCE}': NU3034: " in refused.stderr, refused.stderr
    assert not (client.home / "after").exists()
    done = client.install("E2e.Fresh", "1.0.0", "fresh")
    assert done.returncode == 0, done.stdout + done.stderr
    # the copy this client installed before the revocation (same bytes) no longer verifies either
    roots = str(feed.server.roots)
    copy = client.home / "before/e2e.revoked/1.0.0/e2e.revoked.1.0.0.nupkg"
    assert copy.read_bytes() == still
    checked = client.run("verify", str(copy), "--all", "--configfile", str(client.config), "--trust-roots", roots,
                         "--timestamp-roots", roots, "--revocation-mode", "offline", "--parallel", "1")  # fmt: skip
    assert checked.returncode == 1 and "NU3034" in checked.stdout + checked.stderr, checked.stdout + checked.stderr
