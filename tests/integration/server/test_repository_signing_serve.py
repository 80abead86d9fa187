"""``nuseal serve`` in the embedded mode, over real HTTP(S): the development repository certificate and TSA made at
first start (with the loud warning), the RepositorySignatures resource as NuGet reads it (GET/HEAD only, https
only unless the development flag), and the worker inside ``serve`` retiring the development certificate."""

from __future__ import annotations

import hashlib
import json
import os
import ssl
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from cryptography import x509
from tests.support.pki import TEST_PASSWORD, TestPki
from tests.support.repository_signing import KEY_SECRET, LoopbackTsa, SigningFeed, signatures_of, write_trust_roots
from tests.support.server_fixtures import FakeClock, TlsFiles, start_serve

from nuseal.enums import HashAlgorithmName
from nuseal.protocol.repository_signatures import read_repository_signatures
from nuseal.server.db.session import Database
from nuseal.server.jobs.runtime import make_runtime
from nuseal.server.services import dev_signing
from nuseal.server.services.context import ServiceContext
from nuseal.server.settings import load_settings
from nuseal.server.storage.filesystem import FilesystemBlobStore
from nuseal.x509 import certs

NUSEAL = str(Path(sys.executable).with_name("nuseal"))
PUBLIC = "https://feed.example.test"


def _admin(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NUSEAL_")}
    result = subprocess.run([NUSEAL, "admin", *args], input=stdin, capture_output=True, text=True, timeout=300,
                            check=False, env=clean | env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_https_feed_with_the_development_certificate(tls_files: TlsFiles, pki: TestPki, tmp_path: Path) -> None:
    data = tmp_path / "feed"
    roots = write_trust_roots(pki, tmp_path)
    args = ["--data", str(data), "--port", "0", "--tls-cert", str(tls_files.chain), "--tls-key", str(tls_files.key),
            "--public-url", PUBLIC, "--trust-roots", str(roots), "--revocation-mode", "offline"]  # fmt: skip
    server = start_serve(args, tmp_path / "serve.log")
    try:
        stderr = server.log_path.read_text()
        assert "DEVELOPMENT certificate that NO CLIENT TRUSTS" in stderr and "repo-cert retire" in stderr
        assert any(line.get("level") == "WARNING" and "DEVELOPMENT" in str(line.get("message"))
                   for line in server.log_lines())  # fmt: skip
        with httpx.Client(verify=ssl.create_default_context(cafile=str(tls_files.ca_bundle)), base_url=server.url,
                          timeout=30) as client:
            base = "/v3/repository-signatures"
            response = client.get(f"{base}/5.0.0/index.json")
            assert response.status_code == 200 and response.headers["cache-control"] == "no-cache"
            latest = read_repository_signatures(response.content, source=f"{PUBLIC}{base}/5.0.0/index.json",
                                                resource_type="RepositorySignatures/5.0.0")  # fmt: skip
            (entry,) = latest.signing_certificates
            assert latest.all_repository_signed is True  # one listed certificate, nothing served unsigned
            assert entry.content_url.startswith(f"{PUBLIC}{base}/certificates/")
            der = client.get(entry.content_url.removeprefix(PUBLIC))
            assert der.status_code == 200 and der.headers["content-type"] == "application/pkix-cert"
            assert hashlib.sha256(der.content).hexdigest() == entry.fingerprint(HashAlgorithmName.SHA256)
            development = x509.load_der_x509_certificate(der.content)
            root = x509.load_pem_x509_certificate((data / "dev-repository-signing" / "root.crt").read_bytes())
            assert development.issuer == root.subject and "NOT TRUSTED" in certs.subject_string(development)
            for old in ("4.7.0", "4.9.0"):
                older = client.get(f"{base}/{old}/index.json")
                assert json.loads(older.content)["allRepositorySigned"] is False
            head = client.head(f"{base}/5.0.0/index.json")
            assert head.status_code == 200 and head.content == b""
            posted = client.post(f"{base}/5.0.0/index.json", content=b"{}")
            assert posted.status_code == 405 and set(posted.headers["allow"].split(", ")) == {"GET", "HEAD"}
            assert client.delete(entry.content_url.removeprefix(PUBLIC)).status_code == 405
            assert client.get(f"{base}/1.0.0/index.json").status_code == 404
            assert client.get(f"{base}/certificates/{'0' * 64}.crt").status_code == 404
            unchanged = client.get(f"{base}/5.0.0/index.json", headers={"If-None-Match": response.headers["etag"]})
            assert unchanged.status_code == 304
    finally:
        server.stop()
    again = start_serve(args, tmp_path / "serve2.log")  # a second start keeps the same certificate
    again.stop()
    env = {"NUSEAL_DATA": str(data)}
    listed = json.loads(_admin(env, "repo-cert", "list", "--json"))["certificates"]
    assert [(c["state"], c["development"], c["timestamper"]) for c in listed] == [("active", True, None)]


def test_the_worker_inside_serve_retires_the_development_certificate(tls_files: TlsFiles, pki: TestPki,
                                                                      tmp_path: Path) -> None:  # fmt: skip
    data = tmp_path / "feed"
    roots = write_trust_roots(pki, tmp_path)
    env = {"NUSEAL_DATA": str(data), "NUSEAL_PUBLIC_URL": PUBLIC, "NUSEAL_TRUST_ROOTS": str(roots),
           "NUSEAL_TIMESTAMP_ROOTS": str(roots), "NUSEAL_REVOCATION_MODE": "offline"}  # fmt: skip
    server = start_serve(["--port", "0", "--tls-cert", str(tls_files.chain), "--tls-key", str(tls_files.key)],
                         tmp_path / "serve.log", env=env)  # fmt: skip
    tsa = LoopbackTsa(pki, lambda: datetime.now(UTC))  # type: ignore[arg-type]
    try:
        (dev,) = [c["sha256"] for c in json.loads(_admin(env, "repo-cert", "list", "--json"))["certificates"]]
        published = _publish_with_development_certificate(data, env, pki, tmp_path)
        issued = pki.issue_leaf(f"serve-repo-{os.getpid()}-{time.monotonic_ns()}")
        pfx = issued.write_pfx(tmp_path / "real.pfx")
        _admin(env, "repo-cert", "add", str(pfx), "--password-stdin", "--timestamper", tsa.url, stdin=TEST_PASSWORD)
        new = certs.fingerprint(issued.cert).lower()
        _admin(env, "repo-cert", "activate", new)
        out = _admin(env, "repo-cert", "retire", dev)  # no --wait: the worker inside `serve` does it
        assert f"{len(published)} package(s) to re-sign" in out
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            found = {c["sha256"]: c for c in json.loads(_admin(env, "repo-cert", "list", "--json"))["certificates"]}
            if not found[dev]["listed"]:
                break
            time.sleep(0.5)
        assert (found[dev]["state"], found[dev]["listed"], found[new]["served_packages"]) == ("retired", False,
                                                                                             len(published))
    finally:
        server.stop()
        tsa.close()
    messages = [line.get("message") for line in server.log_lines()]
    assert "re-signing batch" in messages
    assert "workers stopped" in messages  # stopped during uvicorn's graceful shutdown, before the process ends


def _publish_with_development_certificate(data: Path, env: dict[str, str], pki: TestPki,
                                          tmp_path: Path) -> list[int]:  # fmt: skip
    """Versions served with the development certificate's signature, as the validation job will leave them."""

    settings = load_settings({"data_dir": data, "public_url": PUBLIC, "revocation_mode": "offline",
                              "trust_roots": Path(env["NUSEAL_TRUST_ROOTS"]),
                              "timestamp_roots": Path(env["NUSEAL_TIMESTAMP_ROOTS"])})  # fmt: skip
    db = Database(settings.database_url)
    clock = FakeClock(datetime.now(UTC))
    ctx = ServiceContext(db=db, blobs=FilesystemBlobStore(data / "blobs"), settings=settings, clock=clock)
    runtime = make_runtime(ctx, PUBLIC)
    try:
        feed = SigningFeed(ctx, pki, clock, None, runtime.keyring, tmp_path)  # type: ignore[arg-type]
        versions = [feed.publish(f"Dev.Lib{i}", "1.0.0", author_signed=False) for i in range(3)]
        for version in versions:
            assert signatures_of(feed.served(version)[1], tmp_path).repository_signatures == 1
        return versions
    finally:
        runtime.close()
        dev_signing.stop_local_tsas()
        db.dispose()


def test_plain_http_serves_repository_signatures_only_with_the_development_flag(tmp_path: Path) -> None:
    data = tmp_path / "feed"
    server = start_serve(["--data", str(data), "--port", "0"], tmp_path / "serve.log")
    try:
        response = httpx.get(f"{server.url}/v3/repository-signatures/5.0.0/index.json", timeout=30)
        assert response.status_code == 404 and "only over https" in response.json()["detail"]
        assert "this feed cannot repository-sign packages" in server.log_path.read_text()
    finally:
        server.stop()
    flagged = start_serve(["--data", str(data), "--port", "0"], tmp_path / "serve2.log",
                          env={"NUSEAL_DEV_ALLOW_HTTP_REPOSITORY_SIGNATURES": "true"})  # fmt: skip
    try:
        response = httpx.get(f"{flagged.url}/v3/repository-signatures/5.0.0/index.json", timeout=30)
        assert response.status_code == 200
        (entry,) = response.json()["signingCertificates"]
        assert entry["contentUrl"].startswith(f"{flagged.url}/v3/repository-signatures/certificates/")
        assert "NuGet clients refuse" in flagged.log_path.read_text()
    finally:
        flagged.stop()


def test_key_secret_file_is_private(tmp_path: Path) -> None:
    data = tmp_path / "feed"
    server = start_serve(["--data", str(data), "--port", "0"], tmp_path / "serve.log")
    server.stop()
    secret = data / "repository-key.secret"
    assert secret.stat().st_mode & 0o077 == 0 and len(secret.read_text().strip()) >= 32
    assert secret.read_text().strip() != KEY_SECRET
