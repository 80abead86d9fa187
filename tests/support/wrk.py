"""``wrk`` (Debian's ``wrk`` 4.1): the loopback HTTP load generator for the read-throughput benchmark.

Command used by the benchmark (loopback only, bounded in time)::

    wrk -t2 -c32 -d10s --latency http://127.0.0.1:PORT/v3/flatcontainer/x/1.0.0/x.1.0.0.nupkg

:func:`run_wrk` runs it and parses the summary; a benchmark must check ``errors`` and ``non_2xx`` before
trusting ``requests_per_sec``.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

from tests.support.processes import RealPartError, find_binary

_SUMMARY = re.compile(r"(\d+) requests in ([\d.]+)(us|ms|s|m)")
_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
_ERRORS = re.compile(r"Socket errors: (.*)")
_SECONDS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    requests_per_sec: float
    non_2xx: int
    errors: str | None
    output: str


def wrk_binary() -> str:
    return find_binary("wrk", "/usr/bin/wrk", package="wrk")


def wrk_version() -> str:
    """wrk's first output line, e.g. ``wrk debian/4.1.0-3+b2 [epoll] ...`` (``--version`` exits 1: wrk's way)."""
    done = subprocess.run([wrk_binary(), "--version"], capture_output=True, text=True, timeout=10, check=False)
    return (done.stdout or done.stderr).splitlines()[0]


def run_wrk(url: str, *, threads: int = 1, connections: int = 4, seconds: int = 1,
            timeout: int | None = None) -> WrkResult:
    """Load ``url`` (a loopback URL) for ``seconds`` and return wrk's summary; ``timeout``: seconds before wrk
    counts a request as timed out (wrk's default: 2)."""
    if not url.startswith(("http://127.", "http://localhost", "http://[::1]")):
        raise RealPartError(f"wrk: refusing a non-loopback target {url}")
    argv = [wrk_binary(), f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if timeout is not None:
        argv[-1:-1] = [f"--timeout={timeout}s"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=False)
    summary, rps = _SUMMARY.search(done.stdout), _RPS.search(done.stdout)
    if done.returncode != 0 or summary is None or rps is None:
        raise RealPartError(f"wrk failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-500:]}")
    non_2xx, errors = _NON_2XX.search(done.stdout), _ERRORS.search(done.stdout)
    return WrkResult(
        requests=int(summary.group(1)),
        seconds=float(summary.group(2)) * _SECONDS[summary.group(3)],
        requests_per_sec=float(rps.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        errors=errors.group(1).strip() if errors else None,
        output=done.stdout,
    )
