"""A feed that repository-signs, for server tests: settings that trust the test PKI, a TSA over HTTP on loopback
with the test's clock, repository certificates issued by the PKI, and *published* versions.

The push path does not create repository-signed ``available`` versions on this branch yet, so
:meth:`SigningFeed.publish` does what the validation pipeline will: build a package (optionally author-signed
with the PKI's leaf), repository-sign it with the library (``sign_for_feed``), store the blob under its
content-addressed key and insert the registration, owner and version rows, exactly as the pipeline will leave
them. :func:`signatures_of` reads back what a served package carries.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import secrets
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from nuseal.cms.parse import load_primary_signature
from nuseal.enums import SignatureKind
from nuseal.package import hashing, zipformat
from nuseal.server.db.models import PackageOwner, PackageVersion, SignatureKindColumn, VersionStatus
from nuseal.server.db.session import Database
from nuseal.server.jobs.runtime import WorkerRuntime
from nuseal.server.services import accounts, packages, repository_certificates
from nuseal.server.services.context import ServiceContext
from nuseal.server.services.errors import NotFoundError
from nuseal.server.services.permissions import Operator
from nuseal.server.services.repository_keys import Keyring
from nuseal.server.services.repository_signing import sign_for_feed
from nuseal.server.services.rotation import package_blob_key
from nuseal.server.settings import ServerSettings, load_settings
from nuseal.server.storage import BlobStore, open_blob_store
from nuseal.sign.author import AuthorSignRequest, sign_package
from nuseal.sign.repository import read_signature
from nuseal.timestamp.client import InProcessTimestamper
from nuseal.timestamp.tsa import TimestampAuthority, make_server
from nuseal.x509 import certs
from tests.support.pki import IssuedCert, TestPki
from tests.support.processes import terminate
from tests.support.s3 import S3Bucket
from tests.support.server_fixtures import FakeClock
from tests.unit.sign.helpers import signer_for

FEED_URL = "https://feed.example.test"
SERVICE_INDEX = f"{FEED_URL}/v3/index.json"
OPERATOR = Operator()
#: A fixed key-encryption secret for tests (the embedded default generates one into the data folder).
KEY_SECRET = "test-key-encryption-secret-0123456789"


def nuspec(package_id: str, version: str) -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<package xmlns="http://schemas.microsoft.com/packaging/'
            f'2013/05/nuspec.xsd"><metadata><id>{package_id}</id><version>{version}</version><authors>nuseal'
            f"</authors><description>test</description></metadata></package>").encode()  # fmt: skip


def make_nupkg(path: Path, package_id: str, version: str, *, payload: bytes = b"") -> Path:
    """A small unsigned package with its nuspec and one file (``payload`` makes packages differ)."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{package_id}.nuspec", nuspec(package_id, version), compress_type=zipfile.ZIP_DEFLATED)
        archive.writestr("lib/net8.0/readme.txt", b"hello " + package_id.encode() + payload)
    return path


class LoopbackTsa:
    """An RFC 3161 TSA over HTTP on 127.0.0.1 with the PKI's TSA certificate and a given clock."""

    def __init__(self, pki: TestPki, clock: FakeClock) -> None:
        self.authority = TimestampAuthority(pki.tsa.cert, pki.tsa.key, pki.tsa.chain[1:], clock=clock)
        self._server = make_server(self.authority)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def write_trust_roots(pki: TestPki, folder: Path) -> Path:
    path = folder / "pki-root.pem"
    path.write_bytes(pki.root.cert.public_bytes(serialization.Encoding.PEM))
    return path


def feed_settings(data_dir: Path, database_url: str, roots: Path, **extra: object) -> ServerSettings:
    """Settings of a signing feed: https public URL, the PKI root trusted for code signing and timestamping."""
    values: dict[str, object] = {"data_dir": data_dir, "database_url": database_url, "public_url": FEED_URL,
                                 "trust_roots": roots, "timestamp_roots": roots, "revocation_mode": "offline",
                                 "repository_key_secret": KEY_SECRET, **extra}  # fmt: skip
    return load_settings(values)


@dataclass
class SigningFeed:
    """A service context on a real database with repository certificates and published versions."""

    ctx: ServiceContext
    pki: TestPki
    clock: FakeClock
    tsa: LoopbackTsa
    keyring: Keyring
    workdir: Path
    _owners_made: set[str] = field(default_factory=set)

    @property
    def runtime(self) -> WorkerRuntime:
        return WorkerRuntime(self.ctx, self.keyring, SERVICE_INDEX, name="test")

    def issue(self, name: str | None = None, **kwargs: object) -> IssuedCert:
        """A fresh repository (code-signing) certificate under the PKI's intermediate (names get a unique suffix:
        the PKI is shared by the whole session)."""
        return self.pki.issue_leaf(f"{name or 'repo'}-{secrets.token_hex(4)}", **kwargs)  # type: ignore[arg-type]

    def add_certificate(self, issued: IssuedCert | None = None, *, activate: bool = True) -> str:
        """Add (and activate) a repository certificate; returns its lower-case SHA-256."""
        issued = issued or self.issue()
        signer = signer_for(issued)
        added = repository_certificates.add_certificate(self.ctx, OPERATOR, signer, timestamper_url=self.tsa.url)
        if activate:
            repository_certificates.activate(self.ctx, OPERATOR, added.info.sha256)
        return added.info.sha256

    def _owner(self, name: str) -> None:
        if name in self._owners_made:
            return
        with self.ctx.db.reading() as session:
            try:
                accounts.find_account(session, name)
                found = True
            except NotFoundError:
                found = False
        if not found:
            accounts.add_user(self.ctx, OPERATOR, name)
        self._owners_made.add(name)

    def build(self, package_id: str, version: str, *, author_signed: bool, payload: bytes = b"") -> Path:
        """An unsigned or author-signed package file (author: the PKI's leaf, timestamped by the loopback TSA)."""
        path = make_nupkg(self.workdir / f"{package_id}.{version}.{secrets.token_hex(3)}.nupkg", package_id, version,
                          payload=payload)  # fmt: skip
        if author_signed:
            stamper = InProcessTimestamper(self.tsa.authority, clock=self.clock)
            sign_package(path, path, AuthorSignRequest(signer_for(self.pki.leaf)), timestamper=stamper,
                         now=self.clock())  # fmt: skip
        return path

    def publish(self, package_id: str, version: str, *, owners: tuple[str, ...] = ("alice",),
                author_signed: bool = False, repo_cert: str | None = None, source: Path | None = None) -> int:
        """Repository-sign and publish a version as the validation pipeline will; returns its row id.

        ``repo_cert`` (default: the active certificate) must have been added. ``source`` publishes a given file
        (e.g. one carrying a foreign repository signature) instead of building one.
        """
        for owner in owners:
            self._owner(owner)
        src = source or self.build(package_id, version, author_signed=author_signed)
        with self.ctx.db.reading() as session:
            row = (repository_certificates.find_certificate(session, repo_cert) if repo_cert
                   else repository_certificates.active_certificate(session))  # fmt: skip
            assert row is not None, "add a repository certificate first"
            cert = self.keyring.certificate(row)
        dst = src.with_suffix(".signed.nupkg")
        result = sign_for_feed(src, dst, owners=owners, service_index_url=SERVICE_INDEX, repo_cert=cert,
                               timestamper=self.keyring.timestamper(cert), now=self.clock())  # fmt: skip
        return self.insert(package_id, version, dst, owners=owners, repo_cert=result.cert_sha256,
                           author_signed=result.author_signed)  # fmt: skip

    def insert(self, package_id: str, version: str, path: Path, *, owners: tuple[str, ...], repo_cert: str | None,
               author_signed: bool) -> int:  # fmt: skip
        """Store ``path`` as the served bytes of an available version (creating the registration if needed)."""
        for owner in owners:
            self._owner(owner)
        with path.open("rb") as data:
            staged = self.ctx.blobs.stage(data)
        lower_id, lower = package_id.lower(), packages.lower_version(version)
        key = package_blob_key(lower_id, lower, staged.sha256)
        self.ctx.blobs.publish(staged, key)
        now = self.clock()
        with self.ctx.db.transaction() as session:
            try:
                registration = packages.find_registration(session, package_id)
            except NotFoundError:
                registration = packages.register(session, package_id, accounts.find_account(session, owners[0]),
                                                 at=now)  # fmt: skip
                for other in owners[1:]:
                    session.add(PackageOwner(registration_id=registration.id,
                                             account_id=accounts.find_account(session, other).id))
            kind = (SignatureKindColumn.REPOSITORY if repo_cert else
                    SignatureKindColumn.AUTHOR if author_signed else SignatureKindColumn.UNSIGNED)  # fmt: skip
            row = PackageVersion(
                registration_id=registration.id, version=version, lower_version=lower, full_version=version,
                is_prerelease="-" in version, is_semver2=False, listed=True, status=VersionStatus.AVAILABLE.value,
                pushed_at=now, package_blob=key, package_sha512=staged.sha512, package_size=staged.size,
                signature_kind=kind.value, repo_cert_sha256=repo_cert, published_at=now,
                author_cert_sha256=certs.fingerprint(self.pki.leaf.cert).lower() if author_signed else None,
            )  # fmt: skip
            session.add(row)
            session.flush()
            return row.id

    def served(self, version_id: int) -> tuple[PackageVersion, bytes]:
        """The row and the served bytes of a version."""
        with self.ctx.db.reading() as session:
            row = session.get(PackageVersion, version_id)
            assert row is not None and row.package_blob is not None
        with self.ctx.blobs.open(row.package_blob) as reader:
            return row, reader.read()


def nuget_content_hash(data: bytes, workdir: Path) -> str:
    """NuGet's content hash of a package (what ``packages.lock.json`` pins): the SHA-512 of the package without its
    signature entry for a signed package (``SignedPackageArchiveUtility.GetPackageContentHash``), of the file
    otherwise."""
    path = workdir / f"hash-{secrets.token_hex(4)}.nupkg"
    path.write_bytes(data)
    try:
        with path.open("rb") as f:
            layout = zipformat.read_layout(f)
            if not zipformat.has_signature_entry(layout):
                return hashing.content_hash(path)
            entry = zipformat.find_signature_entry(f, layout)
            (digest,) = hashing.plan_digests(f, hashing.unsigned_view_plan(f, layout, entry), ("sha512",))
            return base64.b64encode(digest).decode("ascii")
    finally:
        path.unlink()


@dataclass(frozen=True)
class Signatures:
    """What a package carries: its primary kind, the repository signature's certificate and how many there are."""

    primary: SignatureKind | None
    repository_cert: str | None  # lower-case sha256
    repository_signatures: int  # a primary repository signature counts 1, plus repository countersignatures
    author_signature_value: bytes | None
    owners: tuple[str, ...]
    service_index_url: str | None


def signatures_of(data: bytes, workdir: Path) -> Signatures:
    path = workdir / f"inspect-{secrets.token_hex(4)}.nupkg"
    path.write_bytes(data)
    raw = read_signature(path)
    path.unlink()
    if raw is None:
        return Signatures(None, None, 0, None, (), None)
    primary = load_primary_signature(raw)
    if primary.kind is SignatureKind.REPOSITORY:
        cert = primary.signer_certificate
        return Signatures(primary.kind, certs.fingerprint(cert).lower() if cert else None, 1, None,
                          primary.owners, primary.service_index_url)  # fmt: skip
    from nuseal.cms import build

    counter = primary.countersignature()
    count = build.repository_countersigner_count(raw)
    cert = counter.signer_certificate if counter else None
    return Signatures(primary.kind, certs.fingerprint(cert).lower() if cert else None, count,
                      primary.signature_value, counter.owners if counter else (),
                      counter.service_index_url if counter else None)  # fmt: skip


def s3_storage(bucket: S3Bucket) -> dict[str, object]:
    """The settings of an S3 blob store for ``bucket`` (endpoint, region and credentials)."""
    return {"storage": f"s3://{bucket.name}?endpoint={bucket.endpoint_url}&region={bucket.region}",
            "s3_access_key_id": bucket.access_key, "s3_secret_access_key": bucket.secret_key}  # fmt: skip


@contextmanager
def signing_feed(db: Database, pki: TestPki, workdir: Path, **settings: object) -> Iterator[SigningFeed]:
    """A :class:`SigningFeed` on ``db`` (any backend), the blobs where the settings say (a folder by default), the
    clock a minute after the PKI's now."""
    clock = FakeClock(pki.now + timedelta(minutes=1))
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "data"
    config = feed_settings(data, db.url, write_trust_roots(pki, workdir), **settings)
    blobs: BlobStore = open_blob_store(config.storage, s3_access_key_id=config.s3_access_key_id,
                                       s3_secret_access_key=config.s3_secret_access_key)  # fmt: skip
    blobs.check()
    ctx = ServiceContext(db=db, blobs=blobs, settings=config, clock=clock)
    tsa = LoopbackTsa(pki, clock)
    keyring = Keyring(config, clock=clock)
    try:
        yield SigningFeed(ctx, pki, clock, tsa, keyring, workdir)
    finally:
        keyring.close()
        tsa.close()



# --- `nuseal worker` processes ----------------------------------------------------------------------------------


def worker_environment(feed: SigningFeed, **extra: str) -> dict[str, str]:
    """The ``NUSEAL_*`` variables that give a ``nuseal worker`` process the same feed as ``feed``'s context."""
    settings = feed.ctx.settings
    env = {
        "NUSEAL_DATA": str(settings.data_dir), "NUSEAL_DATABASE_URL": settings.database_url,
        "NUSEAL_STORAGE": settings.storage, "NUSEAL_QUEUE_URL": settings.queue_url, "NUSEAL_PUBLIC_URL": FEED_URL,
        "NUSEAL_TRUST_ROOTS": str(settings.trust_roots), "NUSEAL_TIMESTAMP_ROOTS": str(settings.timestamp_roots),
        "NUSEAL_REVOCATION_MODE": "offline", "NUSEAL_REPOSITORY_KEY_SECRET": KEY_SECRET,
        "NUSEAL_JOB_LEASE_SECONDS": str(settings.job_lease_seconds),
        "NUSEAL_RESIGN_BATCH_SIZE": str(settings.resign_batch_size),
    }  # fmt: skip
    if settings.s3_access_key_id and settings.s3_secret_access_key:
        env["NUSEAL_S3_ACCESS_KEY_ID"] = settings.s3_access_key_id
        env["NUSEAL_S3_SECRET_ACCESS_KEY"] = settings.s3_secret_access_key
    return env | extra


@dataclass
class WorkerProcess:
    """A running ``nuseal worker``; its stderr (JSON log lines) goes to ``log_path``."""

    process: subprocess.Popen[str]
    log_path: Path

    def stop(self) -> int | None:
        terminate(self.process)
        return self.process.returncode

    def log_lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.startswith("{")]

    def resigned(self) -> int:
        """Packages this worker re-signed, from its batch log lines."""
        return sum(int(str(line.get("resigned", 0))) for line in self.log_lines()
                   if line.get("message") == "re-signing batch")  # fmt: skip


def start_worker(env: dict[str, str], log_path: Path, *, timeout: float = 60.0) -> WorkerProcess:
    """Start ``nuseal worker`` with exactly ``env`` as its ``NUSEAL_*`` settings and wait for its "running" line."""
    nuseal = str(Path(sys.executable).with_name("nuseal"))
    log = log_path.open("w")
    base = {k: v for k, v in os.environ.items() if not k.startswith("NUSEAL_")}
    process = subprocess.Popen([nuseal, "worker"], stdout=subprocess.PIPE, stderr=log, text=True, env=base | env)
    log.close()
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=timeout)
    except queue.Empty:
        process.kill()
        raise AssertionError(f"nuseal worker printed nothing in {timeout} s; log:\n{log_path.read_text()}") from None
    if not line.startswith("nuseal worker running"):
        process.wait(timeout=30)
        raise AssertionError(f"nuseal worker did not start (exit {process.returncode}): {line!r}\n"
                             f"{log_path.read_text()}")  # fmt: skip
    return WorkerProcess(process, log_path)
