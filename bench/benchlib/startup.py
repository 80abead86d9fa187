"""bench/startup: how long ``nuseal`` takes before it does anything, against ``python -c pass`` on the same
interpreter (the console script's own Python).

Every nuseal command pays this once; for a small package it is most of the call (bench/verify, 1 MB). Bytecode
caching is on for the measured commands (see ``measure.child_env``), as it is for users.

Target (issue 12): ``nuseal verify --help`` <= 0.12 s. On a loaded machine every process is slower, so the same
target is also printed as a ratio: 0.12 s against the 0.011 s that ``python -c pass`` took on the idle machine of
the issue, i.e. ``verify --help`` <= 10.9x ``python -c pass`` measured round by round in the same run.
"""

from __future__ import annotations

from benchlib import fixtures, options, report
from benchlib.measure import Command, alternate, round_ratios

AREA = "startup"
#: The 0.12 s target as a multiple of ``python -c pass`` (0.011 s on the idle machine that issue 12 measured).
IDLE_RATIO_TARGET = round(0.12 / 0.011, 1)


def main(argv: list[str]) -> int:
    args = options.parser(__doc__ or "").parse_args(argv)
    report.machine_header("bench/startup: nuseal --help vs python -c pass")
    nuseal, python = fixtures.nuseal(), fixtures.nuseal_python()
    commands = [
        Command("nuseal --help", [nuseal, "--help"]),
        Command("nuseal verify --help", [nuseal, "verify", "--help"]),
        Command("nuseal sign --help", [nuseal, "sign", "--help"]),
        Command("python -c pass", [python, "-c", "pass"]),
    ]
    print(f"\n({args.runs} runs each, alternated; python: {python})")
    series = alternate(commands, runs=args.runs, warmup=args.warmup)
    report.print_series(series)
    baseline = series[3]
    checks = [
        report.value_check(AREA, "start-up: nuseal verify --help", [r.wall for r in series[1].runs], "s", "<=", 0.12),
        report.ratio_check(AREA, "start-up: nuseal --help / python -c pass", round_ratios(series[0], [baseline])),
        report.ratio_check(AREA, "start-up: nuseal verify --help / python -c pass",
                           round_ratios(series[1], [baseline]), "<=", IDLE_RATIO_TARGET,
                           "0.12 s / 0.011 s idle python -c pass"),
        report.ratio_check(AREA, "start-up: nuseal sign --help / python -c pass", round_ratios(series[2], [baseline])),
    ]
    report.print_checks(checks)
    report.write_json(args.json, checks)
    return 0
