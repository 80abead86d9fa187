"""bench/feed: the feed server's read throughput against nginx serving the same bytes, and its push rate.

For 1 and 2 HTTP worker processes (``nuseal serve --workers N``, embedded defaults: SQLite + a folder, revocation
offline) it pushes the packages below, copies the bytes the feed serves into a folder that nginx (Debian's,
``worker_processes`` N, sendfile, access log off) serves under the same paths on 127.0.0.1, then measures with
``wrk`` (keep-alive, ``-t2 -c32``) GETs per second of

- a ``.nupkg`` of about 100 KB from the flat container (``/v3/flatcontainer/{id}/{version}/{id}.{version}.nupkg``),
- a registration index of 20 versions (``/v3/registration/{id}/index.json``, not compressed, as wrk asks),

alternating nuseal and nginx round by round, ratios taken per round. Each wrk run must have no socket error and
no non-2xx answer. Pushes per second: pushes of small (~4 KB) new packages from 4 keep-alive clients at once,
timed from the first request to the last answer.

Like for like: nginx runs with ``access_log off``, so the judged reads run nuseal with its access log off too
(``NUSEAL_ACCESS_LOG=false``); the same reads with nuseal's default access log (one JSON line per request on
stderr, about 90 us of CPU per request on this machine) are printed for information (``--no-log-variant`` skips
them).

For context, each worker count also measures the smallest ASGI application serving the same bytes from memory
under the same uvicorn (:mod:`benchlib.bare_asgi`): the ceiling of a Python server here (info).

Target (issue 9): reads >= 0.5x nginx. The machine's load average is printed with the figures: on a shared
2-core machine wrk, the server and nginx compete for the same cores.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import httpx

from benchlib import fixtures, options, report
from benchlib.measure import child_env, load_average, median_min_max, scratch_dir

sys.path.insert(0, str(fixtures.REPO))  # tests.support holds the real parts (nginx, wrk) the tests use too
from tests.support.nginx import running_nginx
from tests.support.processes import free_port
from tests.support.wrk import run_wrk, wrk_version

AREA = "feed"
BIG_ID, BIG_VERSION = "Bench.Big", "1.0.0"
REGISTRATION_ID = "Bench.Versions"
REGISTRATION_VERSIONS = [f"1.0.{patch}" for patch in range(20)]


def _fail(message: str) -> NoReturn:
    report.fail(message)  # exits
    raise SystemExit(2)


def package_bytes(package_id: str, version: str, payload: int) -> bytes:
    """An unsigned package with ``payload`` incompressible bytes (stored, so the size is what it says)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{package_id}.nuspec",
                    '<?xml version="1.0"?><package xmlns="http://schemas.microsoft.com/packaging/2013/05/nuspec.xsd">'
                    f"<metadata><id>{package_id}</id><version>{version}</version><authors>bench</authors>"
                    "<description>benchmark package</description></metadata></package>")
        zf.writestr("lib/net8.0/Bench.dll", os.urandom(payload))
    return buffer.getvalue()


def multipart(data: bytes) -> tuple[bytes, str]:
    boundary = "nuseal-bench-boundary"
    body = (f"--{boundary}\r\nContent-Type: application/octet-stream\r\n"
            'Content-Disposition: form-data; name="package"; filename="package.nupkg"\r\n\r\n').encode() + data + \
        f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


@dataclass
class Feed:
    url: str
    process: subprocess.Popen[str]


@contextlib.contextmanager
def running_feed(data: Path, workers: int, log: Path, *, access_log: bool = True) -> Iterator[Feed]:
    """``nuseal serve --workers N`` on a free loopback port until the block ends (stopped by its pid)."""
    env = child_env({"NUSEAL_ACCESS_LOG": "true" if access_log else "false"})
    with open(log, "ab") as err:
        process = subprocess.Popen(
            [fixtures.nuseal(), "serve", "--data", str(data), "--port", "0", "--workers", str(workers),
             "--revocation-mode", "offline"], stdout=subprocess.PIPE, stderr=err, text=True, env=env)  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.match(r"nuseal feed listening on (\S+)/ ", line)
        if match is None:
            _fail(f"nuseal serve did not start: {line!r} (see {log})")
        url = match.group(1)
        deadline = time.monotonic() + 60
        while True:  # the worker processes start after the "listening" line
            try:
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                _fail(f"nuseal serve at {url} never answered /health (see {log})")
            time.sleep(0.2)
        yield Feed(url, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def push_all(url: str, key: str, packages: list[bytes], clients: int = 4) -> float:
    """Push every package (4 keep-alive clients at once); returns the wall seconds. Any answer but 201 fails."""
    pool_clients = [httpx.Client(timeout=120) for _ in range(clients)]

    def send(index: int) -> int:
        body, content_type = multipart(packages[index])
        answer = pool_clients[index % clients].put(f"{url}/api/v2/package/", content=body,
                                                   headers={"X-NuGet-ApiKey": key, "Content-Type": content_type})
        return answer.status_code

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        statuses = list(pool.map(send, range(len(packages))))
    elapsed = time.perf_counter() - started
    for client in pool_clients:
        client.close()
    if any(status != 201 for status in statuses):
        _fail(f"pushes answered {sorted(set(statuses))}, expected 201 only")
    return elapsed


def admin(data: Path, *args: str) -> str:
    return fixtures.run_checked([fixtures.nuseal(), "admin", "--data", str(data), *args]).stdout.strip()


@dataclass(frozen=True)
class Target:
    label: str
    path: str


TARGETS = (
    Target(".nupkg 100 KB", f"v3/flatcontainer/{BIG_ID.lower()}/{BIG_VERSION}/{BIG_ID.lower()}.{BIG_VERSION}.nupkg"),
    Target(f"registration index ({len(REGISTRATION_VERSIONS)} versions)",
           f"v3/registration/{REGISTRATION_ID.lower()}/index.json"),
)


def copy_for_nginx(feed_url: str, root: Path) -> None:
    """The bytes the feed serves, under the same paths, for nginx."""
    for target in TARGETS:
        answer = httpx.get(f"{feed_url}/{target.path}", timeout=30)
        if answer.status_code != 200:
            _fail(f"GET {target.path} answered {answer.status_code}")
        path = root / target.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(answer.content)


def wrk_rate(url: str, seconds: int) -> float:
    # A request slower than 10 s is a failure; wrk's 2 s default is hit on a shared, loaded machine.
    result = run_wrk(url, threads=2, connections=32, seconds=seconds, timeout=10)
    if result.errors or result.non_2xx:
        _fail(f"wrk {url}: {result.non_2xx} non-2xx answers, socket errors: {result.errors}")
    return result.requests_per_sec


def measure_reads(bases: list[str], runs: int, warmup: int, seconds: int) -> dict[str, list[list[float]]]:
    """Per target: the rates of each base URL (nuseal, nginx[, bare uvicorn]), alternated round by round (order
    rotated each round)."""
    rates: dict[str, list[list[float]]] = {t.label: [[] for _ in bases] for t in TARGETS}
    for round_index in range(warmup + runs):
        for target in TARGETS:
            order = list(enumerate(bases))
            shift = round_index % len(order)
            for side, base in order[shift:] + order[:shift]:
                rate = wrk_rate(f"{base}/{target.path}", 1 if round_index < warmup else seconds)
                if round_index >= warmup:
                    rates[target.label][side].append(rate)
    return rates


@contextlib.contextmanager
def running_bare_uvicorn(root: Path, workers: int, log: Path) -> Iterator[str]:
    """:mod:`benchlib.bare_asgi` under uvicorn (``--workers N``) on a free loopback port; its base URL."""
    port = free_port()
    env = child_env({"BENCH_BARE_ROOT": str(root)})
    with open(log, "ab") as err:
        process = subprocess.Popen(
            [fixtures.nuseal_python(), "-m", "uvicorn", "--app-dir", str(Path(__file__).resolve().parents[1]),
             "benchlib.bare_asgi:app", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
             "--no-access-log", "--log-level", "warning"], stdout=err, stderr=err, env=env)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/{TARGETS[0].path}", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                _fail(f"bare uvicorn never answered (see {log})")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main(argv: list[str]) -> int:
    p = options.parser(__doc__ or "")
    p.add_argument("--seconds", type=int, default=3, help="length of each wrk run (default 3)")
    p.add_argument("--workers", default="1,2", help="HTTP worker processes to measure (default 1,2)")
    p.add_argument("--pushes", type=int, default=40, help="small packages pushed per push run (default 40)")
    p.add_argument("--no-log-variant", action="store_true",
                   help="skip the reads with nuseal's access log on (information)")
    args = p.parse_args(argv)
    report.machine_header("bench/feed: nuseal serve reads vs nginx on the same bytes; pushes per second")
    print(f"{wrk_version()}; wrk -t2 -c32 -d{args.seconds}s per run, {args.runs} runs each, alternated")
    work = scratch_dir("nuseal-bench-feed-")
    checks: list[report.Check] = []
    try:
        data = work / "data"
        admin(data, "user", "add", "bench")
        key = admin(data, "apikey", "create", "bench").splitlines()[-1]
        seeded = False
        for workers in (int(w) for w in args.workers.split(",")):
            log = work / f"serve-{workers}.log"
            # Judged like for like: nginx runs with its access log off, so does nuseal; its default (one JSON line
            # per request on stderr) is measured too, for information.
            variants = [(False, "")] + ([] if args.no_log_variant else [(True, ", access log on (info)")])
            for access_log, suffix in variants:
                with running_feed(data, workers, log, access_log=access_log) as feed:
                    if not seeded:
                        seed = [package_bytes(BIG_ID, BIG_VERSION, 100 * 1024)]
                        seed += [package_bytes(REGISTRATION_ID, v, 2048) for v in REGISTRATION_VERSIONS]
                        push_all(feed.url, key, seed)
                        seeded = True
                    if not access_log:
                        rates = []
                        for run in range(args.runs):
                            batch = [package_bytes(f"Bench.Push.W{workers}.R{run}.P{index}", "1.0.0", 4096)
                                     for index in range(args.pushes)]
                            rates.append(args.pushes / push_all(feed.url, key, batch))
                        checks.append(report.value_check(
                            AREA, f"pushes of 4 KB packages, {workers} worker(s), 4 clients", rates, "/s", "info", 0))
                        print(f"  pushes/s with {workers} worker(s): {median_min_max(rates)[0]:.1f} "
                              f"(load {load_average()})", flush=True)
                    root = work / f"nginx-root-{workers}"
                    copy_for_nginx(feed.url, root)
                    with contextlib.ExitStack() as stack:
                        nginx = stack.enter_context(running_nginx(root, worker_processes=workers))
                        bases = [feed.url, nginx.base_url]
                        if not suffix:  # the ceiling, once per worker count
                            bases.append(stack.enter_context(running_bare_uvicorn(root, workers, log)))
                        reads = measure_reads(bases, args.runs, args.warmup, args.seconds)
                for target in TARGETS:
                    ours, theirs, *bare = reads[target.label]
                    name = f"{target.label}, {workers} worker(s){suffix}"
                    ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
                    checks.append(report.value_check(AREA, f"GET {name}: nuseal", ours, "/s", "info", 0))
                    checks.append(report.value_check(AREA, f"GET {name}: nginx", theirs, "/s", "info", 0))
                    checks.append(report.ratio_check(AREA, f"GET {name}: nuseal / nginx", ratios,
                                                     "info" if suffix else ">=", 0.5))
                    line = (f"  {name}: nuseal {median_min_max(ours)[0]:.0f}/s, "
                            f"nginx {median_min_max(theirs)[0]:.0f}/s, ratio {median_min_max(ratios)[0]:.2f}")
                    if bare:
                        ceiling = [a / b for a, b in zip(ours, bare[0], strict=True)]
                        checks.append(report.value_check(AREA, f"GET {name}: bare uvicorn", bare[0], "/s", "info", 0))
                        checks.append(report.ratio_check(AREA, f"GET {name}: nuseal / bare uvicorn", ceiling))
                        line += (f"; bare uvicorn {median_min_max(bare[0])[0]:.0f}/s, nuseal at "
                                 f"{median_min_max(ceiling)[0]:.2f} of it")
                    print(f"{line} (load {load_average()})", flush=True)
        print()
        report.print_checks(checks)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report.write_json(args.json, checks)
    return 0
