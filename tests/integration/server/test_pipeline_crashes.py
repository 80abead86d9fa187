"""Crash safety of the push pipeline and of re-signing (issue 11 acceptance), on SQLite + files and on PostgreSQL + S3:
``nuseal serve`` and ``nuseal worker`` processes SIGKILL themselves at named points (``NUSEAL_TEST_CRASH_AT``) of
the push, of the validation job and of a re-signing run; after a restart every pushed version ends ``available``
and correctly repository-signed (one repository signature, from the certificate its row names, naming this feed,
the author signature as pushed) or ``failed`` with a reason; none is served while validating, none is lost, none
is signed twice (one ``available`` validation per version in the audit log).

One feed per backend serves over HTTPS without its own worker; each case starts a ``nuseal worker`` armed with a
kill point, waits for it to die, then a clean worker that finishes the work (leases expire after 3 s). The two
push points kill the server itself, which is then restarted.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from tests.support.feed_http import TIMEOUT, api_key, push, wait_validated
from tests.support.feed_packages import build_package, sign
from tests.support.pipeline import SigningServer, author, start_signing_server
from tests.support.pki import TestPki
from tests.support.repository_signing import WorkerProcess, signatures_of, start_worker
from tests.support.server_factories import user
from tests.support.server_fixtures import BACKENDS, DatabaseFactory, TlsFiles

from nuseal.enums import SignatureKind
from nuseal.server.db.models import AuditEvent, PackageRegistration, PackageVersion
from nuseal.server.jobs.queue import JobQueue, open_huey
from nuseal.server.services import repository_certificates, rotation
from nuseal.server.services.permissions import Operator

NUSEAL = str(Path(sys.executable).with_name("nuseal"))
#: The URL the feed's signatures name: fixed, while the server's port changes with each restart.
PUBLIC = "https://feed.example.test"
#: Each case must finish within this many seconds (the machine is shared: generous, but bounded).
CASE_TIMEOUT = 240.0


@dataclass(frozen=True)
class KillPoint:
    where: str  # "worker" or "serve"
    point: str  # NUSEAL_TEST_CRASH_AT value
    signed: bool = False  # push an author-signed package (else unsigned)
    pushes: int = 1
    resign: bool = False  # rotate the certificate and re-sign instead of pushing

    @property
    def name(self) -> str:
        return f"{self.where}-{self.point.replace(':', '-')}-{'signed' if self.signed else 'unsigned'}"


VALIDATION = ("validate.leased", "validate.judged", "validate.signed", "validate.blob_written", "validate.committed")
RESIGN = ("resign.claimed", "resign.signed", "resign.blob_written", "resign.synced", "resign.committed",
          "resign.old_blob_deleted", "resign.finalizing")
KILL_POINTS = (
    [KillPoint("worker", p) for p in VALIDATION]
    + [KillPoint("worker", p, signed=True) for p in VALIDATION]
    + [KillPoint("worker", "validate.signed:2", pushes=2), KillPoint("worker", "validate.blob_written:2", pushes=2)]
    + [KillPoint("worker", p, resign=True) for p in RESIGN]
    + [KillPoint("serve", "push.staged"), KillPoint("serve", "push.persisted")]
)
assert len(KILL_POINTS) >= 20


@dataclass
class Crashes:
    server: SigningServer
    keys: dict[str, str]
    folder: Path
    pushed: list[tuple[str, str, bytes]]  # (id, version, pushed bytes) of every accepted push

    def worker_env(self, **extra: str) -> dict[str, str]:
        return self.server.worker_env(self.folder, **extra)


@pytest.fixture(scope="module", params=BACKENDS)
def crashes(request: pytest.FixtureRequest, database_factory: DatabaseFactory, pki: TestPki, tls_files: TlsFiles,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Crashes]:  # fmt: skip
    folder = tmp_path_factory.mktemp("crashes")
    server = start_signing_server(database_factory, request.param, folder, pki, tls_files, public_url=PUBLIC,
                                  worker=False, env={"NUSEAL_SERVE_WORKER": "false"})  # each case starts its own
    user(server.feed.ctx, "carol")
    keys = {"alice": author(server, pki, "alice"), "carol": api_key(server.feed.ctx, "carol")}
    yield Crashes(server, keys, folder, [])
    server.stop()


def _wait_dead(worker: WorkerProcess, deadline: float) -> None:
    while worker.process.poll() is None:
        if time.monotonic() > deadline:
            worker.stop()
            pytest.fail(f"the worker did not reach its kill point; log:\n{worker.log_path.read_text()[-3000:]}")
        time.sleep(0.2)
    assert worker.process.returncode == -9, worker.log_path.read_text()[-3000:]


def _push(crashes: Crashes, pki: TestPki, point: KillPoint, n: int, *, wait: bool) -> tuple[str, str, bytes]:
    package_id = f"Crash.{point.name.replace('.', '-').replace('_', '-')}.{n}-{secrets.token_hex(2)}"
    path = build_package(crashes.folder / f"{package_id}.nupkg", package_id, "1.0.0")
    if point.signed:
        sign(path, pki)
    key = crashes.keys["alice" if point.signed else "carol"]
    response = push(crashes.server.url, key, path, wait=wait, verify=crashes.server.verify)
    assert response.status_code == 201, response.text
    pushed = (package_id, "1.0.0", path.read_bytes())
    crashes.pushed.append(pushed)
    return pushed


def _not_served_while_validating(crashes: Crashes) -> None:
    with crashes.server.feed.ctx.db.reading() as session:
        rows = session.execute(select(PackageRegistration.lower_id, PackageVersion.status, PackageVersion.package_blob)
                               .join(PackageVersion)).all()  # fmt: skip
    for lower_id, status, blob in rows:
        if status == "validating":
            assert blob is None
            got = httpx.get(f"{crashes.server.url}/v3/flatcontainer/{lower_id}/1.0.0/{lower_id}.1.0.0.nupkg",
                            verify=crashes.server.verify, timeout=TIMEOUT)  # fmt: skip
            assert got.status_code == 404, f"{lower_id} is served while validating"


def _clean_worker(crashes: Crashes, deadline: float) -> None:
    time.sleep(3.5)  # the killed process's leases expire (NUSEAL_JOB_LEASE_SECONDS=3)
    worker = start_worker(crashes.worker_env(), crashes.folder / f"clean-{secrets.token_hex(3)}.log")
    try:
        for package_id, version, _ in crashes.pushed:
            wait_validated(crashes.server.url, package_id, version, verify=crashes.server.verify,
                           timeout=max(5.0, deadline - time.monotonic()))  # fmt: skip
        _wait_runs_done(crashes, deadline)
    finally:
        worker.stop()


def _wait_runs_done(crashes: Crashes, deadline: float) -> None:
    ctx = crashes.server.feed.ctx
    while rotation.running_runs(ctx):
        if time.monotonic() > deadline:
            pytest.fail(f"re-signing runs still running: {rotation.running_runs(ctx)}")
        time.sleep(0.3)


def _check_invariants(crashes: Crashes) -> None:
    """Every pushed version is there, finished, and served correctly signed once (or failed with a reason)."""
    ctx = crashes.server.feed.ctx
    with ctx.db.reading() as session:
        rows = {(r.registration.package_id, r.version): (r.status, r.package_blob, r.repo_cert_sha256, r.findings)
                for r in session.scalars(select(PackageVersion))}  # fmt: skip
        validations = [e.subject for e in session.scalars(
            select(AuditEvent).where(AuditEvent.action == "package:version:validate")) if
            (e.after or {}).get("status") == "available"]  # fmt: skip
        listed = {c.sha256 for c in repository_certificates.listed_certificates(session)}
    for package_id, version, pushed in crashes.pushed:
        assert (package_id, version) in rows, f"{package_id} {version} was lost"
        status, blob, certificate, findings = rows[(package_id, version)]
        if status == "failed":
            assert findings, f"{package_id} failed without a reason"
            continue
        assert status == "available" and blob is not None, (package_id, status)
        assert validations.count(f"{package_id}/{version}") == 1, f"{package_id} validated more than once"
        with ctx.blobs.open(blob) as reader:
            served = reader.read()
        found = signatures_of(served, crashes.folder)
        assert found.repository_signatures == 1 and found.repository_cert == certificate in listed, package_id
        assert found.service_index_url == crashes.server.service_index
        before = signatures_of(pushed, crashes.folder)
        if before.primary is SignatureKind.AUTHOR:
            assert found.primary is SignatureKind.AUTHOR
            assert found.author_signature_value == before.author_signature_value
        else:
            assert found.primary is SignatureKind.REPOSITORY


@pytest.mark.parametrize("point", KILL_POINTS, ids=[p.name for p in KILL_POINTS])
def test_a_kill_point_loses_nothing_and_serves_nothing_half_signed(crashes: Crashes, pki: TestPki,
                                                                   point: KillPoint) -> None:  # fmt: skip
    deadline = time.monotonic() + CASE_TIMEOUT
    server = crashes.server
    if point.where == "serve":
        server.feed.serve.stop()
        served = server.feed.restart(crashes.folder / f"serve-{point.name}.log",
                                     env={"NUSEAL_TEST_CRASH_AT": point.point})  # fmt: skip
        package_id = f"Crash.{point.name.replace('.', '-')}-{secrets.token_hex(2)}"
        path = build_package(crashes.folder / f"{package_id}.nupkg", package_id, "1.0.0")
        with pytest.raises(httpx.HTTPError):  # the server dies mid-request
            push(server.url, crashes.keys["carol"], path, wait=False, verify=server.verify)
        served.process.wait(timeout=30)
        assert served.process.returncode == -9
        server.feed.restart(crashes.folder / f"serve-{point.name}-after.log")
        if point.point == "push.persisted":  # committed before the kill: the push happened
            crashes.pushed.append((package_id, "1.0.0", path.read_bytes()))
        else:  # killed before the commit: nothing of it exists; pushing again works
            status = httpx.get(f"{server.url}/api/v1/packages/{package_id}/1.0.0", verify=server.verify,
                               timeout=TIMEOUT)  # fmt: skip
            assert status.status_code == 404
            assert push(server.url, crashes.keys["carol"], path, wait=False, verify=server.verify).status_code == 201
            crashes.pushed.append((package_id, "1.0.0", path.read_bytes()))
        _not_served_while_validating(crashes)
    elif point.resign:
        if not crashes.pushed:
            _push(crashes, pki, point, 0, wait=False)
            _clean_worker(crashes, deadline)
        old = server.certificate
        server.certificate = server.add_certificate()
        report = rotation.retire(server.feed.ctx, Operator(), old)
        queue = JobQueue(open_huey(server.feed.ctx.settings))  # the feed's queue (its data folder)
        queue.enqueue_resign(report.run_id)
        dying = start_worker(crashes.worker_env(NUSEAL_TEST_CRASH_AT=point.point),
                             crashes.folder / f"worker-{point.name}.log")  # fmt: skip
        _wait_dead(dying, deadline)
    else:
        for n in range(point.pushes):
            _push(crashes, pki, point, n, wait=False)
        dying = start_worker(crashes.worker_env(NUSEAL_TEST_CRASH_AT=point.point),
                             crashes.folder / f"worker-{point.name}.log")  # fmt: skip
        _wait_dead(dying, deadline)
        _not_served_while_validating(crashes)
    _clean_worker(crashes, deadline)
    _check_invariants(crashes)


def test_every_served_package_verifies_with_nuseal_verify(crashes: Crashes) -> None:
    """After all the kills: the served packages verify with the console script, trusting the PKI root."""
    ctx = crashes.server.feed.ctx
    with ctx.db.reading() as session:
        blobs = [b for b in session.scalars(select(PackageVersion.package_blob)) if b is not None]
    assert blobs
    paths = []
    for n, blob in enumerate(blobs):
        path = crashes.folder / f"served-{n}.nupkg"
        with ctx.blobs.open(blob) as reader:
            path.write_bytes(reader.read())
        paths.append(str(path))
    roots = str(crashes.server.roots)
    result = subprocess.run([NUSEAL, "verify", *paths, "--trust-roots", roots, "--timestamp-roots", roots,
                             "--revocation-mode", "offline", "--parallel", "1"], capture_output=True, text=True,
                            timeout=600, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
