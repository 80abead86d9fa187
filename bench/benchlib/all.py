"""bench/all: every benchmark area in turn, then one summary table: each figure, its target and PASS/FAIL.

Each area runs as its own process (``bench/<area> --json FILE``) with the same ``--runs``/``--warmup``; their
detailed tables are printed as they go. The machine's load average is printed before and after: on a shared
machine the figures are only as good as that number.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import options, report
from benchlib.measure import load_average

AREAS = ("startup", "verify", "sign", "batch", "timestamp", "feed", "resign")
BENCH = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> int:
    p = options.parser(__doc__ or "")
    p.add_argument("--areas", default=",".join(AREAS), help=f"comma-separated subset of {','.join(AREAS)}")
    p.add_argument("--sizes", help="package sizes for verify and sign (default: theirs, 1,10,100,200,400)")
    p.add_argument("--packages", type=int, help="packages bench/resign re-signs (default: its own, 10000)")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = p.parse_args(argv)
    load_before = load_average()
    started = time.monotonic()
    checks: list[report.Check] = []
    with tempfile.TemporaryDirectory(prefix="nuseal-bench-all-") as tmp:
        for area in args.areas.split(","):
            out = Path(tmp) / f"{area}.json"
            command = [sys.executable, str(BENCH / area), "--runs", str(args.runs), "--warmup", str(args.warmup),
                       "--json", str(out)]
            if args.sizes and area in ("verify", "sign"):
                command += ["--sizes", args.sizes]
            if args.packages and area == "resign":
                command += ["--packages", str(args.packages)]
            print(f"\n$ bench/{area} --runs {args.runs}", flush=True)
            done = subprocess.run(command)
            if done.returncode != 0 or not out.exists():
                print(f"error: bench/{area} failed (exit {done.returncode})", file=sys.stderr)
                return 2
            checks += report.load_json(out)
    minutes = (time.monotonic() - started) / 60
    print(f"\n== summary: {args.runs} alternated runs per figure, medians (min..max); load average {load_before} "
          f"before, {load_average()} after, {minutes:.1f} min ==")
    print(f"  {'area':<10}{'figure':<62} {'median':>9} {'':<3} {'(min..max)':>15}  {'target':<12} result")
    for check in checks:
        print(f"  {check.area:<10}{check.line()}")
    missed = [c for c in checks if c.verdict == "FAIL"]
    print(f"\n{len(checks) - len(missed)} of {len(checks)} lines pass or are information; "
          f"{len(missed)} targets missed.")
    return 1 if missed and args.strict else 0
