"""Command-line options every benchmark area shares."""

from __future__ import annotations

import argparse
from pathlib import Path

MIN_RUNS = 7


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=MIN_RUNS,
                   help=f"counted runs of every command, alternated (default and recommended minimum {MIN_RUNS})")
    p.add_argument("--warmup", type=int, default=1, help="uncounted rounds first (default 1)")
    p.add_argument("--json", type=Path, help="also write the target checks to this file (bench/all reads it)")
    return p


def sizes(text: str) -> list[float]:
    return [float(s) for s in text.split(",") if s.strip()]
