"""Printing measurements and target checks, and handing the checks to ``bench/all`` as JSON."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from benchlib.measure import Series, load_average, median_min_max


@dataclass(frozen=True)
class Check:
    """One line of figures: ``value`` (a median) against ``target`` with ``op`` ("<=", "<", ">=", ">"), or
    ``op == "info"``: a figure shown for context, with no target."""

    area: str
    name: str
    value: float
    unit: str
    op: str
    target: float
    spread: str  # "min .. max" of the same figure, to show how noisy it was
    note: str = ""

    @property
    def ok(self) -> bool:
        compare = {"<=": float.__le__, "<": float.__lt__, ">=": float.__ge__, ">": float.__gt__}.get(self.op)
        return True if compare is None else compare(float(self.value), float(self.target))

    @property
    def verdict(self) -> str:
        return "info" if self.op == "info" else ("PASS" if self.ok else "FAIL")

    def target_text(self) -> str:
        return "" if self.op == "info" else f"{self.op} {self.target:g} {self.unit}"

    def line(self) -> str:
        return (f"{self.name:<62} {self.value:>9.3f} {self.unit:<3} ({self.spread:>13})  {self.target_text():<12} "
                f"{self.verdict}{'  ' + self.note if self.note else ''}")


def machine_header(title: str) -> None:
    """What the figures were measured on: date, cores, load, versions."""
    openssl = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
    print(f"== {title} ==")
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M:%SZ}  {platform.node()}  {os.cpu_count()} cores  "
          f"load {load_average()}  Python {platform.python_version()}  {openssl}")


def print_series(series: Sequence[Series]) -> None:
    print(f"  {'command':<46} {'wall median':>11} {'min':>8} {'max':>8} {'cpu med':>8} {'peak RSS':>10}")
    for s in series:
        median, low, high = s.stat("wall")
        cpu = s.stat("cpu")[0]
        peak = s.stat("peak_mb")[2]
        print(f"  {s.command.label:<46} {median:>10.3f}s {low:>7.3f}s {high:>7.3f}s {cpu:>7.3f}s {peak:>8.1f}MB")


def ratio_check(area: str, name: str, ratios: Sequence[float], op: str = "info", target: float = 0.0,
                note: str = "") -> Check:
    median, low, high = median_min_max(ratios)
    return Check(area, name, median, "x", op, target, f"{low:.2f}..{high:.2f}", note)


def value_check(area: str, name: str, values: Sequence[float], unit: str, op: str, target: float,
                note: str = "") -> Check:
    median, low, high = median_min_max(values)
    return Check(area, name, median, unit, op, target, f"{low:.3g}..{high:.3g}", note)


def print_checks(checks: Sequence[Check]) -> None:
    for check in checks:
        print("  " + check.line())


def write_json(path: Path | None, checks: Sequence[Check]) -> None:
    if path is not None:
        path.write_text(json.dumps([asdict(c) for c in checks], indent=1))


def load_json(path: Path) -> list[Check]:
    return [Check(**item) for item in json.loads(path.read_text())]


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)
