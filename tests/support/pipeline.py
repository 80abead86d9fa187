"""A ``nuseal serve`` that repository-signs what it is pushed, for the push pipeline's tests over real HTTPS.

:func:`start_signing_server` starts the feed on a backend with TLS (the test PKI's server certificate), the PKI root
trusted for code signing and timestamping, a fixed key-encryption secret, and a repository certificate issued by
the PKI (timestamped by a loopback TSA on the real clock) added and activated, so its signatures verify against
the PKI root like any other. :func:`served_bytes` downloads what the flat container serves.
"""

from __future__ import annotations

import secrets
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from nuseal.server.services import certificates, repository_certificates
from nuseal.server.services.permissions import Operator
from nuseal.x509 import certs
from tests.support.feed_http import TIMEOUT, api_key
from tests.support.pki import IssuedCert, TestPki
from tests.support.repository_signing import KEY_SECRET, LoopbackTsa, WorkerProcess, start_worker, write_trust_roots
from tests.support.server_factories import user
from tests.support.server_fixtures import DatabaseFactory, FeedServer, TlsFiles, start_feed_server
from tests.unit.sign.helpers import signer_for

OPERATOR = Operator()


@dataclass
class SigningServer:
    feed: FeedServer
    tsa: LoopbackTsa
    roots: Path  # the PKI root (PEM): what clients trust for the feed's and authors' signatures
    tls: TlsFiles
    pki: TestPki
    certificate: str  # the repository certificate added at start (active until another is activated)
    public_url: str | None = None  # the feed's public URL when it is not where it listens
    worker: WorkerProcess | None = None  # the `nuseal worker` running the jobs (None: the server's own threads)

    @property
    def url(self) -> str:
        return self.feed.url

    @property
    def service_index(self) -> str:
        """What the feed's repository signatures name."""
        return f"{self.public_url or self.feed.url}/v3/index.json"

    @property
    def verify(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.tls.ca_bundle))

    def add_certificate(self, *, activate: bool = True) -> str:
        """Another repository certificate from the PKI (activated unless told not to); its SHA-256."""
        return _add(self.feed, self.tsa, self.pki.issue_leaf(f"feed-repo-{secrets.token_hex(4)}"), activate=activate)

    def worker_env(self, folder: Path, **extra: str) -> dict[str, str]:
        """The settings of a ``nuseal worker`` for this feed (same database, store, queue, public URL, roots)."""
        feed = self.feed
        settings = feed.ctx.settings
        env = {
            "NUSEAL_DATA": str(folder / f"worker-{secrets.token_hex(3)}"),
            "NUSEAL_DATABASE_URL": feed.database_url, "NUSEAL_STORAGE": feed.storage.url,
            "NUSEAL_QUEUE_URL": f"sqlite:///{feed.data_dir / 'queue.db'}",
            "NUSEAL_PUBLIC_URL": self.public_url or self.feed.url,
            "NUSEAL_TRUST_ROOTS": str(settings.trust_roots), "NUSEAL_TIMESTAMP_ROOTS": str(settings.timestamp_roots),
            "NUSEAL_REVOCATION_MODE": "offline", "NUSEAL_REPOSITORY_KEY_SECRET": KEY_SECRET,
            "NUSEAL_JOB_LEASE_SECONDS": "3",
        }  # fmt: skip
        return env | feed.storage.env | extra

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        self.feed.stop()
        self.tsa.close()


def _add(feed: FeedServer, tsa: LoopbackTsa, issued: IssuedCert, *, activate: bool) -> str:
    added = repository_certificates.add_certificate(feed.ctx, OPERATOR, signer_for(issued), timestamper_url=tsa.url)
    if activate:
        repository_certificates.activate(feed.ctx, OPERATOR, added.info.sha256)
    return added.info.sha256


def server_environment(**extra: str) -> dict[str, str]:
    """What every signing server of these tests gets (fast lease expiry, so a killed job is taken up again soon)."""
    return {"NUSEAL_REPOSITORY_KEY_SECRET": KEY_SECRET, "NUSEAL_JOB_LEASE_SECONDS": "3", **extra}


def start_signing_server(factory: DatabaseFactory, backend: str, folder: Path, pki: TestPki, tls: TlsFiles,
                         *, env: dict[str, str] | None = None, public_url: str | None = None,
                         worker: bool = True) -> SigningServer:
    """The signing feed on ``backend``; ``public_url`` pins the URL its signatures name (so that restarts on other
    ports keep it); ``worker``: the jobs run in one ``nuseal worker`` process (the server runs none), else in the
    server's own threads."""
    folder.mkdir(parents=True, exist_ok=True)
    env = (env or {}) | ({"NUSEAL_PUBLIC_URL": public_url} if public_url else {})
    if worker:
        env["NUSEAL_SERVE_WORKER"] = "false"
    roots = write_trust_roots(pki, folder)
    feed = start_feed_server(factory, backend, folder, roots=roots, env=server_environment(**(env or {})),
                             extra_args=("--tls-cert", str(tls.chain), "--tls-key", str(tls.key)),
                             settings={"repository_key_secret": KEY_SECRET, "job_lease_seconds": 3})  # fmt: skip
    tsa = LoopbackTsa(pki, lambda: datetime.now(UTC))  # type: ignore[arg-type]
    try:
        sha256 = _add(feed, tsa, pki.issue_leaf(f"feed-repo-{secrets.token_hex(4)}"), activate=True)
    except BaseException:
        feed.stop()
        tsa.close()
        raise
    server = SigningServer(feed, tsa, roots, tls, pki, sha256, public_url)
    if worker:
        server.worker = start_worker(server.worker_env(folder), folder / "worker.log")
    return server


def author(server: SigningServer, pki: TestPki, name: str = "alice") -> str:
    """An account whose registered certificate is the PKI's leaf (so its author-signed pushes are accepted);
    returns an API key for it."""
    user(server.feed.ctx, name)
    certificates.register(server.feed.ctx, OPERATOR, name, pki.leaf.der, "leaf.cer")
    return api_key(server.feed.ctx, name)


def served_bytes(server: SigningServer, package_id: str, version: str) -> bytes:
    lower_id, lower = package_id.lower(), version.lower()
    response = httpx.get(f"{server.url}/v3/flatcontainer/{lower_id}/{lower}/{lower_id}.{lower}.nupkg",
                         timeout=TIMEOUT, verify=server.verify)  # fmt: skip
    assert response.status_code == 200, f"{package_id} {version}: {response.status_code} {response.text}"
    return response.content


def fingerprint_of(der: bytes) -> str:
    from cryptography import x509

    return certs.fingerprint(x509.load_der_x509_certificate(der)).lower()
