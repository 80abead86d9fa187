"""bench/resign: re-signing a feed's packages after a rotation, with 1 and with 2 ``nuseal worker`` processes, on
SQLite + a blob folder (embedded) and on PostgreSQL + S3 (+ Redis as the queue when ``redis-server`` is there).

Set-up (not timed): a throw-away PKI (root, three repository certificates, a TSA), ``nuseal tsa serve`` on
127.0.0.1 as the feed's TSA, and N small packages (default 10,000; ``--packages``), half author-signed, each
repository-signed with the first certificate (timestamped, by the library in this process, once for both
backends), then stored straight into the database and the blob store as the validation pipeline leaves them
(bulk inserts, not through HTTP; each blob written once to its content-addressed key, as a re-sign writes it). The
certificates are added and activated with ``nuseal admin repo-cert``. ``--worker-threads N`` runs each ``nuseal
worker`` with ``NUSEAL_WORKERS=N`` (batches one process works on at once; default 1, the product's default).

Measured, per backend: rotation 1 (active = certificate 2, ``nuseal admin repo-cert retire`` certificate 1) with one
``nuseal worker``, then rotation 2 (certificate 3 retires certificate 2: the packages now carry the signatures the
first rotation made) with two. The workers are started and ready (their "signing ready" log line: key unsealed,
trial signature made) before the retire command; the clock runs from the retire command to the run's completion
(the run's finished_at, watched with one single-row SELECT every 0.2 s). Packages/s = re-signed packages / that
time; the ratio is the 2-worker rate over the 1-worker rate. Also printed: the *steady* rate (from the run's first
batch commit to its last, read from the per-package audit events: what a long run approaches, without the fixed
costs that dominate a short one), worker and TSA CPU per package, how many cores they kept busy, and the CPU the
bench spent watching the run. A run still going after ``--time-limit`` seconds is
stopped there and its rate is what it did so far (marked "incomplete").

Targets (issue 11): >= 100 packages/s per worker, >= 1.8x with 2 workers. The workers and the TSA share the
machine's cores: on a 2-core machine two workers plus a TSA cannot reach 2x.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing import Pool
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID

from benchlib import fixtures, options, report
from benchlib.measure import child_env, load_average, scratch_dir

sys.path.insert(0, str(fixtures.REPO))  # tests.support: the process helpers and the real parts the tests use too
from tests.support.processes import terminate

AREA = "resign"
FEED_URL = "https://feed.bench.invalid"
OWNERS = ("alice", "Bob")
KEY_SECRET = "bench-resign-key-encryption-secret"
BACKENDS = ("sqlite", "postgres")

Issued = tuple[x509.Certificate, rsa.RSAPrivateKey]


@dataclass(frozen=True)
class Pki:
    root_pem: Path
    repository: tuple[Path, Path, Path]  # PFX files of the three repository certificates
    fingerprints: tuple[str, str, str]
    tsa_pfx: Path
    first: Issued  # the first repository certificate (it signs the set-up packages)
    root: x509.Certificate
    tsa: Issued
    author: Issued


def make_pki(folder: Path) -> Pki:
    folder.mkdir(parents=True, exist_ok=True)
    code, stamp = ExtendedKeyUsageOID.CODE_SIGNING, ExtendedKeyUsageOID.TIME_STAMPING
    root = fixtures._issue("nuseal bench resign root", code, None, ca=True)
    repos = [fixtures._issue(f"nuseal bench repository {i}", code, root) for i in (1, 2, 3)]
    tsa = fixtures._issue("nuseal bench resign tsa", stamp, root)
    author = fixtures._issue("nuseal bench author", code, root)
    root_pem = folder / "root.pem"
    root_pem.write_bytes(root[0].public_bytes(serialization.Encoding.PEM))
    encryption = serialization.BestAvailableEncryption(fixtures.PASSWORD.encode())

    def pfx(name: str, issued: Issued) -> Path:
        path = folder / name
        path.write_bytes(pkcs12.serialize_key_and_certificates(b"bench", issued[1], issued[0], [root[0]],
                                                               encryption))  # fmt: skip
        return path

    paths = tuple(pfx(f"repo{i}.pfx", cert) for i, cert in enumerate(repos, 1))
    from nuseal.x509 import certs

    prints = tuple(certs.fingerprint(cert).lower() for cert, _ in repos)
    return Pki(root_pem, paths, prints, pfx("tsa.pfx", tsa), repos[0], root[0], tsa, author)  # type: ignore[arg-type]


# --- the packages (signed once, stored into each backend) ---------------------------------------------------------


def _package_id(index: int) -> str:
    return f"Bench.Resign{index:05d}"


def _build(folder: Path, index: int) -> Path:
    package_id = _package_id(index)
    path = folder / f"{package_id}.1.0.0.unsigned.nupkg"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{package_id}.nuspec",
                    '<?xml version="1.0"?><package xmlns="http://schemas.microsoft.com/packaging/2013/05/nuspec.xsd">'
                    f"<metadata><id>{package_id}</id><version>1.0.0</version><authors>bench</authors>"
                    "<description>re-sign benchmark</description></metadata></package>")
        zf.writestr("lib/net8.0/Bench.dll", os.urandom(4096) + bytes(8192), compress_type=zipfile.ZIP_DEFLATED)
    return path


_SIGNING: dict[str, Any] = {}


def _signing_init(pki: Pki) -> None:
    from nuseal.sign.signers import KeySigner
    from nuseal.timestamp.client import InProcessTimestamper
    from nuseal.timestamp.tsa import TimestampAuthority

    now = datetime.now(UTC)
    authority = TimestampAuthority(pki.tsa[0], pki.tsa[1], [pki.root], clock=lambda: datetime.now(UTC))
    _SIGNING.update(
        author=KeySigner(pki.author[1], pki.author[0], (pki.author[0], pki.root)),
        repository=KeySigner(pki.first[1], pki.first[0], (pki.first[0], pki.root)),
        stamper=InProcessTimestamper(authority, clock=lambda: datetime.now(UTC)), now=now,
    )  # fmt: skip


def _sign(job: tuple[Path, int]) -> str:
    """Build package ``index``, author-sign every other one, repository-sign it with the first certificate."""
    from nuseal.sign.author import AuthorSignRequest, sign_package
    from nuseal.sign.common import SignOptions
    from nuseal.sign.repository import RepositorySignRequest, repo_sign_package

    folder, index = job
    path = _build(folder, index)
    options = SignOptions(durable=False)
    now, stamper = _SIGNING["now"], _SIGNING["stamper"]
    if index % 2 == 0:
        sign_package(path, path, AuthorSignRequest(_SIGNING["author"], options=options), timestamper=stamper, now=now)
    out = folder / f"{_package_id(index)}.1.0.0.nupkg"
    request = RepositorySignRequest(_SIGNING["repository"], f"{FEED_URL}/v3/index.json", OWNERS, options)
    repo_sign_package(path, out, request, timestamper=stamper, now=now)
    path.unlink()
    return out.name


def sign_packages(pki: Pki, folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with Pool(os.cpu_count() or 1, initializer=_signing_init, initargs=(pki,)) as pool:
        names = pool.map(_sign, [(folder, i) for i in range(count)], chunksize=50)
    print(f"  set-up: {count} packages signed with certificate 1 in {time.monotonic() - started:.1f} s", flush=True)
    return [folder / name for name in names]


# --- one backend -----------------------------------------------------------------------------------------------


@dataclass
class Feed:
    name: str
    env: dict[str, str]
    data: Path


def _nuseal(feed: Feed, *args: str, stdin: str | None = None) -> str:
    base = {k: v for k, v in child_env().items() if not k.startswith("NUSEAL_")}
    done = subprocess.run([fixtures.nuseal(), *args], input=stdin, capture_output=True, text=True,
                          env=base | feed.env)  # fmt: skip
    if done.returncode != 0:
        report.fail(f"nuseal {' '.join(args)} failed ({done.returncode}): {done.stdout}{done.stderr}")
    return done.stdout


def _settings(feed: Feed) -> Any:
    from nuseal.server.settings import load_settings

    return load_settings({}, environ=feed.env)


def store_packages(feed: Feed, packages: Sequence[Path], fingerprint: str, author_sha256: str) -> None:
    """Insert accounts, registrations, owners and available versions in bulk; blobs through the blob store."""
    from sqlalchemy import insert, select

    from nuseal.server.db.models import Account, PackageOwner, PackageRegistration, PackageVersion
    from nuseal.server.db.session import Database
    from nuseal.server.services.rotation import package_blob_key
    from nuseal.server.storage import digests_of, open_blob_store

    settings = _settings(feed)
    blobs = open_blob_store(settings.storage, s3_access_key_id=settings.s3_access_key_id,
                            s3_secret_access_key=settings.s3_secret_access_key)  # fmt: skip
    started = time.monotonic()

    def put(path: Path) -> tuple[str, str, int]:
        # As the re-sign writes a small package: one write to its content-addressed key (on S3 one PutObject where
        # stage + publish made four requests: 10,000 packages stored in ~84 s that way on the 2-core VM).
        data = path.read_bytes()
        digests = digests_of(data)
        key = package_blob_key(path.name.rsplit(".1.0.0", 1)[0].lower(), "1.0.0", digests.sha256)
        blobs.put_new(key, data, digests)
        return key, digests.sha512, digests.size

    with ThreadPoolExecutor(8) as pool:
        stored = list(pool.map(put, packages))
    now = datetime.now(UTC)
    db = Database(settings.database_url)
    try:
        with db.transaction() as session:
            session.execute(insert(Account), [{"name": n, "lower_name": n.lower(), "kind": "user",
                                               "is_site_admin": False, "created_at": now} for n in OWNERS])
            owner_ids = list(session.scalars(select(Account.id).where(Account.lower_name.in_([o.lower()
                                                                                              for o in OWNERS]))))
            ids = [_package_id(i) for i in range(len(packages))]
            session.execute(insert(PackageRegistration), [{"package_id": p, "lower_id": p.lower(), "created_at": now}
                                                          for p in ids])  # fmt: skip
            registrations = {str(k): int(v) for k, v in session.execute(select(PackageRegistration.lower_id,
                                                                                         PackageRegistration.id))}
            session.execute(insert(PackageOwner), [{"registration_id": registrations[p.lower()], "account_id": o}
                                                   for p in ids for o in owner_ids])  # fmt: skip
            session.execute(insert(PackageVersion), [{
                "registration_id": registrations[p.lower()], "version": "1.0.0", "lower_version": "1.0.0",
                "full_version": "1.0.0", "is_prerelease": False, "is_semver2": False, "listed": True,
                "status": "available", "pushed_at": now, "pushed_by_id": owner_ids[0], "pushed_for_id": owner_ids[0],
                "package_blob": key, "package_sha512": sha512, "package_size": size, "package_metadata": {},
                "findings": [], "author_cert_sha256": author_sha256 if i % 2 == 0 else None,
                "repo_cert_sha256": fingerprint, "signature_kind": "repository", "published_at": now,
            } for i, (p, (key, sha512, size)) in enumerate(zip(ids, stored, strict=True))])  # fmt: skip
    finally:
        db.dispose()
    print(f"  {feed.name}: {len(packages)} packages stored in {time.monotonic() - started:.1f} s", flush=True)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (``/proc/PID/stat``; 0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_pid(marker: bytes) -> int:
    """The pid of this process's child whose command line contains ``marker`` (0 when there is none)."""
    me = str(os.getpid())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
            if parent == me and marker in (entry / "cmdline").read_bytes():
                return int(entry.name)
        except OSError:
            continue
    return 0


@dataclass
class Worker:
    process: subprocess.Popen[str]
    log: Path

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait for the worker's "signing ready" log line (key unsealed, trial signature made): its start-up CPU
        is then left out of the per-package figure, as a long run would amortize it."""
        deadline = time.monotonic() + timeout
        while b"signing ready" not in self.log.read_bytes():
            if time.monotonic() > deadline or self.process.poll() is not None:
                report.fail(f"nuseal worker did not get ready to sign in {timeout:.0f} s (see {self.log})")
            time.sleep(0.05)

    def cpu(self) -> float:
        return cpu_seconds(self.process.pid)

    def stop(self) -> None:
        terminate(self.process)


def start_worker(feed: Feed, log: Path) -> Worker:
    base = {k: v for k, v in child_env().items() if not k.startswith("NUSEAL_")}
    with log.open("w") as err:
        process = subprocess.Popen([fixtures.nuseal(), "worker"], stdout=subprocess.PIPE, stderr=err, text=True,
                                   env=base | feed.env)  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    stdout = process.stdout
    assert stdout is not None
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=120)
    except queue.Empty:
        process.kill()
        report.fail(f"nuseal worker printed nothing in 120 s (see {log})")
    if not line.startswith("nuseal worker running"):
        process.wait(timeout=30)
        report.fail(f"nuseal worker did not start ({process.returncode}): {line!r} (see {log})")
    return Worker(process, log)


@dataclass(frozen=True)
class Measured:
    workers: int
    resigned: int
    failed: int
    seconds: float
    complete: bool
    worker_cpu: float  # CPU seconds the workers spent during the run (all of them)
    tsa_cpu: float  # and the TSA
    steady: float = 0.0  # packages/s between the first and the last batch commit (fixed costs left out)
    polling: float = 0.0  # CPU seconds this bench process spent watching the run

    @property
    def cpu_share(self) -> float:
        """Cores the workers and the TSA kept busy on average (the machine has ``os.cpu_count()``)."""
        return (self.worker_cpu + self.tsa_cpu) / self.seconds if self.seconds > 0 else 0.0

    @property
    def rate(self) -> float:
        return self.resigned / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_ms(self) -> float:
        """Worker CPU per package: the cost that does not depend on how loaded the machine is."""
        return 1000 * self.worker_cpu / self.resigned if self.resigned else 0.0


def rotate(feed: Feed, pki: Pki, old: int, new: int, workers: int, time_limit: float, logs: Path) -> Measured:
    """Activate certificate ``new``, start the workers, retire certificate ``old`` and time the run."""
    from nuseal.server.db.session import Database
    from nuseal.server.services import rotation
    from nuseal.server.services.context import ServiceContext
    from nuseal.server.storage import open_blob_store

    _nuseal(feed, "admin", "repo-cert", "add", str(pki.repository[new]), "--password-stdin", "--timestamper",
            feed.env["BENCH_TSA_URL"], stdin=fixtures.PASSWORD + "\n")  # fmt: skip
    _nuseal(feed, "admin", "repo-cert", "activate", pki.fingerprints[new])
    running = [start_worker(feed, logs / f"worker-{feed.name}-{workers}-{i}.log") for i in range(workers)]
    for worker in running:
        worker.wait_ready()
    settings = _settings(feed)
    db = Database(settings.database_url)
    ctx = ServiceContext(db, open_blob_store(settings.storage, s3_access_key_id=settings.s3_access_key_id,
                                             s3_secret_access_key=settings.s3_secret_access_key), settings)
    tsa_pid = int(feed.env["BENCH_TSA_PID"])
    try:
        cpu_before = sum(w.cpu() for w in running)
        tsa_before = cpu_seconds(tsa_pid)
        started, since = time.monotonic(), datetime.now(UTC)
        out = _nuseal(feed, "admin", "repo-cert", "retire", pki.fingerprints[old], "--json")
        import json

        run_id = int(json.loads(out)["report"]["run"])
        polling = time.process_time()
        finished = _wait_for_run(ctx, run_id, running, started, time_limit, logs)
        polling = time.process_time() - polling
        # The end is the run's own finished_at (the worker's clock, as `since`), not the poll that saw it: the poll
        # interval then costs no accuracy.
        elapsed = (finished - since).total_seconds() if finished is not None else time.monotonic() - started
        run = rotation.run_report(ctx, run_id)
        return Measured(workers, run.resigned, run.failed, elapsed, run.completed,
                        sum(w.cpu() for w in running) - cpu_before, cpu_seconds(tsa_pid) - tsa_before,
                        steady_rate(ctx, since), polling)
    finally:
        for worker in running:
            worker.stop()
        db.dispose()


#: Seconds between two looks at the run: its end time is read from the database, so this only bounds how long an
#: idle worker is counted after the run (its CPU then is a few huey queue polls).
POLL_SECONDS = 0.2


def _wait_for_run(ctx: Any, run_id: int, running: Sequence[Worker], started: float, time_limit: float,
                  logs: Path) -> datetime | None:  # fmt: skip
    """Wait until the run is completed (its ``finished_at``) or ``time_limit`` passes (None). Each look is one
    single-row SELECT on a kept connection, so the bench takes next to nothing of the CPU it measures (it used
    to build the full run report, with its count of the versions left, five times a second)."""
    from sqlalchemy import select

    from nuseal.server.db.models import ResignRun, ResignRunState

    query = select(ResignRun.state, ResignRun.finished_at).where(ResignRun.id == run_id)
    with ctx.db.engine.connect() as connection:
        while True:
            state, finished = connection.execute(query).one()
            connection.rollback()  # end the read transaction: the next look sees the workers' commits
            if state == ResignRunState.COMPLETED.value:
                return finished  # type: ignore[no-any-return]
            if time.monotonic() - started > time_limit:
                return None
            if any(w.process.poll() is not None for w in running):
                report.fail(f"a nuseal worker exited during the run (see {logs})")
            time.sleep(POLL_SECONDS)


def steady_rate(ctx: Any, since: datetime) -> float:
    """Packages/s from the first batch commit of the run to its last (from the per-package audit events, which a
    batch writes with one time): the throughput of a long run, without the fixed costs a short one is dominated by
    (the retire command's start, the first batch's claim and signing, the last batch's tail)."""
    from sqlalchemy import func, select

    from nuseal.server.db.models import AuditEvent
    from nuseal.server.services.rotation import VERSION_RESIGN

    with ctx.db.reading() as session:
        rows = sorted(session.execute(
            select(AuditEvent.at, func.count()).where(AuditEvent.action == VERSION_RESIGN, AuditEvent.at >= since)
            .group_by(AuditEvent.at)
        ).all())  # fmt: skip
    if len(rows) < 2:
        return 0.0
    seconds = (rows[-1][0] - rows[0][0]).total_seconds()
    return sum(int(n) for _, n in rows[1:]) / seconds if seconds > 0 else 0.0


@contextlib.contextmanager
def backend(name: str, work: Path, tsa_url: str, pki: Pki, batch_size: int, threads: int) -> Iterator[Feed]:
    data = work / f"data-{name}"
    env = {
        "NUSEAL_DATA": str(data), "NUSEAL_PUBLIC_URL": FEED_URL, "NUSEAL_TRUST_ROOTS": str(pki.root_pem),
        "NUSEAL_TIMESTAMP_ROOTS": str(pki.root_pem), "NUSEAL_REVOCATION_MODE": "offline",
        "NUSEAL_REPOSITORY_KEY_SECRET": KEY_SECRET, "NUSEAL_RESIGN_BATCH_SIZE": str(batch_size),
        "NUSEAL_WORKERS": str(threads),
        "BENCH_TSA_URL": tsa_url, "BENCH_TSA_PID": str(child_pid(b"tsa\0serve")),
    }  # fmt: skip
    with contextlib.ExitStack() as stack:
        if name == "postgres":
            try:
                from tests.support.postgres import running_postgres
                from tests.support.s3 import running_s3
            except ImportError as exc:
                report.fail(f"the postgres backend needs the test support (scripts/install --test): {exc}")
            pg = stack.enter_context(running_postgres())
            s3 = stack.enter_context(running_s3())
            bucket = s3.create_bucket()
            env |= {"NUSEAL_DATABASE_URL": pg.create_database(),
                    "NUSEAL_STORAGE": f"s3://{bucket}?endpoint={s3.endpoint_url}&region={s3.region}",
                    "NUSEAL_S3_ACCESS_KEY_ID": s3.access_key, "NUSEAL_S3_SECRET_ACCESS_KEY": s3.secret_key}
            if shutil.which("redis-server"):
                from tests.support.redis_server import running_redis

                redis = stack.enter_context(running_redis())
                env["NUSEAL_QUEUE_URL"] = redis.url(0)
            label = "postgres+s3" + ("+redis" if "NUSEAL_QUEUE_URL" in env else "")
        else:
            label = "sqlite+files"
        feed = Feed(label, env, data)
        _nuseal(feed, "admin", "migrate")
        yield feed


def main(argv: list[str]) -> int:
    p = options.parser(__doc__ or "")
    p.add_argument("--packages", type=int, default=10_000, help="packages to re-sign (default 10000)")
    p.add_argument("--backends", default=",".join(BACKENDS), help=f"comma-separated subset of {','.join(BACKENDS)}")
    p.add_argument("--batch-size", type=int, default=50, help="NUSEAL_RESIGN_BATCH_SIZE of the workers (default 50)")
    p.add_argument("--worker-threads", type=int, default=1,
                   help="NUSEAL_WORKERS of each worker process: batches it runs at once (default 1)")
    p.add_argument("--time-limit", type=float, default=600.0,
                   help="seconds after which a run is stopped and its partial rate reported (default 600)")
    args = p.parse_args(argv)
    names = [b.strip() for b in args.backends.split(",") if b.strip()]
    if unknown := [b for b in names if b not in BACKENDS]:
        report.fail(f"unknown backend(s) {', '.join(unknown)}: expected {', '.join(BACKENDS)}")
    if args.packages < 1:
        report.fail("--packages must be 1 or more")
    report.machine_header(f"bench/resign: re-signing {args.packages} packages after a rotation, 1 and 2 workers")
    print("  (--runs/--warmup do not apply: each figure is one run that re-signs every package)")
    work = scratch_dir("nuseal-bench-resign-")
    checks: list[report.Check] = []
    try:
        pki = make_pki(work / "pki")
        packages = sign_packages(pki, work / "packages", args.packages)
        from nuseal.x509 import certs

        author = certs.fingerprint(pki.author[0]).lower()
        with fixtures.tsa_server(fixtures.Pki(pki.root_pem, pki.repository[0], pki.tsa_pfx), work / "tsa.log") as url:
            for name in names:
                with backend(name, work, url, pki, args.batch_size, args.worker_threads) as feed:
                    _nuseal(feed, "admin", "repo-cert", "add", str(pki.repository[0]), "--password-stdin",
                            "--timestamper", url, stdin=fixtures.PASSWORD + "\n")  # fmt: skip
                    _nuseal(feed, "admin", "repo-cert", "activate", pki.fingerprints[0])
                    store_packages(feed, packages, pki.fingerprints[0], author)
                    results = []
                    for workers, old, new in ((1, 0, 1), (2, 1, 2)):
                        print(f"  {feed.name}: rotation {old + 1} -> {new + 1} with {workers} worker(s) of "
                              f"{args.worker_threads} thread(s), load "
                              f"{load_average()} ...", flush=True)  # fmt: skip
                        measured = rotate(feed, pki, old, new, workers, args.time_limit, work)
                        results.append(measured)
                        print(f"    re-signed {measured.resigned} (failed {measured.failed}) in "
                              f"{measured.seconds:.1f} s: {measured.rate:.1f} packages/s (steady "
                              f"{measured.steady:.1f}/s); worker CPU {measured.worker_cpu:.1f} s "
                              f"({measured.cpu_ms:.1f} ms/package), TSA CPU {measured.tsa_cpu:.1f} s; "
                              f"{measured.cpu_share:.2f} of {os.cpu_count()} cores busy with them; the bench's "
                              f"polling {1000 * measured.polling:.0f} ms CPU"
                              f"{'' if measured.complete else ' (incomplete: --time-limit)'}",
                              flush=True)  # fmt: skip
                    checks += _checks(feed.name, results)
        report.print_checks(checks)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report.write_json(args.json, checks)
    return 0


def _checks(name: str, results: Sequence[Measured]) -> list[report.Check]:
    one, two = results
    note = "" if one.complete and two.complete else "incomplete run(s): --time-limit"
    ratio = two.rate / one.rate if one.rate else 0.0
    return [
        report.value_check(AREA, f"{name}: 1 worker, packages/s", [one.rate], "/s", ">=", 100, note),
        report.value_check(AREA, f"{name}: 2 workers, packages/s per worker", [two.rate / 2], "/s", ">=", 100, note),
        report.value_check(AREA, f"{name}: 2 workers, packages/s (info)", [two.rate], "/s", "info", 0, note),
        report.ratio_check(AREA, f"{name}: 2 workers / 1 worker", [ratio], ">=", 1.8, note),
        report.value_check(AREA, f"{name}: steady packages/s, 1 worker (info)", [one.steady], "/s", "info", 0),
        report.value_check(AREA, f"{name}: steady packages/s, 2 workers (info)", [two.steady], "/s", "info", 0),
        report.value_check(AREA, f"{name}: TSA CPU per package (info)",
                           [1000 * (one.tsa_cpu + two.tsa_cpu) / max(1, one.resigned + two.resigned)], "ms", "info", 0),
        report.value_check(AREA, f"{name}: worker CPU per package, 1 worker (info)", [one.cpu_ms], "ms", "info", 0),
        report.value_check(AREA, f"{name}: worker CPU per package, 2 workers (info)", [two.cpu_ms], "ms", "info", 0),
        report.value_check(AREA, f"{name}: packages per worker CPU-second (info)",
                           [1000 / one.cpu_ms if one.cpu_ms else 0.0], "/s", "info", 0),
    ]

