"""bench/timestamp: ``nuseal sign`` of 200 small packages with timestamps from ``nuseal tsa serve`` on 127.0.0.1,
against 200 keep-alive POSTs of a timestamp request to the same TSA in the same run.

The POSTs (``curl`` with the TSA's URL 200 times: one connection, requests one after the other) are what the
TSA itself can do for one client; nuseal signs, timestamps and writes every package within the same call, start-up
included. Packages are ~150 KB; outputs go to a folder emptied before every run (untimed). ``--parallel 1`` and
``--no-fsync`` are shown for information.

Target (issue 12): >= 300 signatures/s with the default options (durable outputs, one worker per core).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from functools import partial
from pathlib import Path

from benchlib import fixtures, options, report
from benchlib.measure import Command, alternate, round_ratios, scratch_dir

AREA = "timestamp"


def small_packages(folder: Path, count: int, size: int) -> list[Path]:
    folder.mkdir()
    packages = []
    for index in range(count):
        path = folder / f"Bench.Small{index:03d}.1.0.0.nupkg"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr(f"Bench.Small{index:03d}.nuspec", f"<package><metadata><id>Bench.Small{index:03d}</id>"
                        "<version>1.0.0</version></metadata></package>")
            zf.writestr("lib/net8.0/Bench.dll", os.urandom(size), compress_type=zipfile.ZIP_STORED)
        packages.append(path)
    return packages


def main(argv: list[str]) -> int:
    p = options.parser(__doc__ or "")
    p.add_argument("--count", type=int, default=200, help="packages per call (default 200)")
    p.add_argument("--size-kb", type=int, default=150, help="size of each package in KB (default 150)")
    args = p.parse_args(argv)
    report.machine_header("bench/timestamp: timestamped signing vs keep-alive POSTs to the same TSA")
    work = scratch_dir("nuseal-bench-timestamp-")
    checks: list[report.Check] = []
    try:
        pki = fixtures.make_pki(work)
        packages = small_packages(work / "in", args.count, args.size_kb * 1024)
        query = work / "request.tsq"
        fixtures.run_checked(["openssl", "ts", "-query", "-data", str(packages[0]), "-sha256", "-cert",
                              "-out", str(query)])
        with fixtures.tsa_server(pki, work / "tsa.log") as url:
            reply = work / "reply.tsr"
            fixtures.run_checked(["curl", "-sf", "-H", "Content-Type: application/timestamp-query",
                                  "--data-binary", f"@{query}", "-o", str(reply), url])
            status = subprocess.run(["openssl", "ts", "-reply", "-in", str(reply), "-text"], capture_output=True,
                                    text=True).stdout
            if "Granted" not in status:
                report.fail(f"the TSA at {url} did not grant the request:\n{status}")
            out = work / "out"
            sign = [fixtures.nuseal(), "sign", *packages, *fixtures.sign_args(pki), "--timestamper", url, "-o", out]
            commands = [
                Command(f"nuseal sign {args.count} packages --timestamper", sign, before=partial(fixtures.clear, out)),
                Command(f"curl: {args.count} keep-alive POSTs",
                        ["curl", "-s", "-H", "Content-Type: application/timestamp-query", "--data-binary", f"@{query}",
                         *[url] * args.count]),
                Command("nuseal sign ... --parallel 1 (info)", [*sign, "--parallel", "1"],
                        before=partial(fixtures.clear, out)),
                Command("nuseal sign ... --no-fsync (info)", [*sign, "--no-fsync"],
                        before=partial(fixtures.clear, out)),
            ]
            print(f"\n{args.count} packages of {args.size_kb} KB, TSA {url} ({args.runs} runs each, alternated):")
            series = alternate(commands, runs=args.runs, warmup=args.warmup)
        report.print_series(series)
        rates = {s.command.label: [args.count / r.wall for r in s.runs] for s in series}
        labels = [s.command.label for s in series]
        checks = [
            report.value_check(AREA, f"timestamped signing, {args.count} packages", rates[labels[0]], "/s", ">=",
                               300),
            report.ratio_check(AREA, "timestamped signing / keep-alive POSTs (rate)",
                               round_ratios(series[0], [series[1]], invert=True)),
            report.value_check(AREA, "keep-alive POSTs to the TSA", rates[labels[1]], "/s", "info", 0),
            report.value_check(AREA, "timestamped signing --parallel 1", rates[labels[2]], "/s", "info", 0),
            report.value_check(AREA, "timestamped signing --no-fsync", rates[labels[3]], "/s", "info", 0),
        ]
        report.print_checks(checks)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report.write_json(args.json, checks)
    return 0
