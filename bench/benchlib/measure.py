"""Timing whole processes: wall time and peak RSS of each run, commands alternated round by round, medians.

Each measured command is a child process started with ``subprocess.Popen`` and reaped with ``os.wait4``, which
returns the resource usage of that child alone. Its peak resident set is read through GNU ``time -f %M`` (a small
C program that forks the command): a child forked straight from this Python process would report at least this
process's own RSS, since Linux counts the memory a process had before ``exec``.

Commands of one measurement run in turn (A B C, then B C A, ...) so that a machine whose speed drifts (it is shared)
slows all of them alike, and ratios are taken round by round, from runs that were next to each other in time.
"""

from __future__ import annotations

import os
import shlex
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Command:
    """One command to time. ``before`` runs untimed before every run (delete an output, for example)."""

    label: str
    argv: Sequence[str]
    before: Callable[[], None] | None = None
    ok_exit: frozenset[int] = frozenset({0})
    env: Mapping[str, str] | None = None

    def shell_text(self) -> str:
        return shlex.join(str(a) for a in self.argv)


@dataclass(frozen=True)
class Run:
    wall: float
    cpu: float
    peak_mb: float


@dataclass
class Series:
    """The counted runs of one command."""

    command: Command
    runs: list[Run] = field(default_factory=list)

    def stat(self, name: str) -> tuple[float, float, float]:
        """(median, min, max) of ``wall``, ``cpu`` or ``peak_mb``."""
        values = [getattr(r, name) for r in self.runs]
        return statistics.median(values), min(values), max(values)


class CommandFailed(Exception):
    pass


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for measured commands: bytecode caching on (users have ``.pyc`` files; a shell that sets
    PYTHONDONTWRITEBYTECODE would make every run compile nuseal and its libraries from source)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(extra or {})
    return env


GNU_TIME = "/usr/bin/time"


def run_once(command: Command) -> Run:
    """Run ``command`` once: wall seconds, user+system CPU seconds and peak RSS (MB) of that child."""
    if command.before is not None:
        command.before()
    argv = list(map(str, command.argv))
    with tempfile.TemporaryFile() as output, tempfile.NamedTemporaryFile("r") as peak:
        launcher = [GNU_TIME, "-f", "%M", "-o", peak.name] if os.access(GNU_TIME, os.X_OK) else []
        env = child_env(command.env)
        start = time.perf_counter()
        process = subprocess.Popen([*launcher, *argv], stdin=subprocess.DEVNULL, stdout=output,
                                   stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode not in command.ok_exit:
            output.seek(0)
            tail = output.read()[-3000:].decode(errors="replace")
            raise CommandFailed(f"{command.label}: exit {process.returncode}: {command.shell_text()}\n{tail}")
        reported = peak.read().strip().splitlines() if launcher else []
        peak_kb = int(reported[-1]) if reported and reported[-1].isdigit() else usage.ru_maxrss
    return Run(wall, usage.ru_utime + usage.ru_stime, peak_kb / 1024)


def alternate(commands: Sequence[Command], *, runs: int, warmup: int = 1) -> list[Series]:
    """``warmup`` uncounted rounds, then ``runs`` rounds; each round runs every command once, rotating the order."""
    series = [Series(c) for c in commands]
    for round_index in range(warmup + runs):
        shift = round_index % len(commands)
        for index in list(range(len(commands)))[shift:] + list(range(len(commands)))[:shift]:
            run = run_once(commands[index])
            if round_index >= warmup:
                series[index].runs.append(run)
    return series


def round_ratios(numerator: Series, denominators: Sequence[Series], *, invert: bool = False) -> list[float]:
    """Per round: numerator wall / the largest denominator wall of the same round (``invert``: the reverse)."""
    ratios = []
    for index, run in enumerate(numerator.runs):
        base = max(d.runs[index].wall for d in denominators)
        ratios.append(base / run.wall if invert else run.wall / base)
    return ratios


def median_min_max(values: Sequence[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def scratch_dir(prefix: str) -> Path:
    """A scratch folder on the disk the benchmark should measure (TMPDIR, default /tmp): tmpfs refuses O_DIRECT."""
    return Path(tempfile.mkdtemp(prefix=prefix))
