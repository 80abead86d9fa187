"""bench/timestamp: ``nuseal sign`` of 200 small packages with timestamps from ``nuseal tsa serve`` on 127.0.0.1,
against 200 keep-alive POSTs of a timestamp request to the same TSA in the same run.

The POSTs (``curl`` with the TSA's URL 200 times: one connection, requests one after the other) are what the
TSA itself can do for one client; nuseal signs, timestamps and writes every package within the same call, start-up
included. Packages are ~150 KB; outputs go to a new, empty folder for every run (the previous one is moved
aside, untimed, and all are deleted after the last run). ``--parallel 1`` and
``--no-fsync`` are shown for information, and so are the CPU figures that decide the rate on a machine whose cores
the signer and the TSA share: the signer's CPU (user+sys of the command and its workers) per signature, with the
default workers and with ``--parallel 1``, and the TSA process's CPU per request (read from /proc between runs,
which run one at a time).

Target (issue 12): >= 300 signatures/s with the default options (durable outputs, one worker per core).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from collections.abc import Callable
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


class ProcessCpu:
    """CPU seconds (user+sys) a process used between marks, credited to the label of the earlier mark."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.used: dict[str, list[float]] = {}
        self._last: tuple[str, float] | None = None

    def _cpu(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def mark(self, label: str | None) -> None:
        now = self._cpu()
        if self._last is not None:
            self.used.setdefault(self._last[0], []).append(now - self._last[1])
        self._last = (label, now) if label is not None else None


def _tsa_pid(tsa_pfx: Path) -> int:
    found = subprocess.run(["pgrep", "-n", "-f", f"tsa serve --certificate-path {tsa_pfx}"], capture_output=True,
                           text=True).stdout.split()
    if not found:
        report.fail("cannot find the process of nuseal tsa serve")
    return int(found[0])


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
            tsa_cpu = ProcessCpu(_tsa_pid(pki.tsa_pfx))

            kept = work / "kept"
            kept.mkdir()

            def before(label: str, clear: bool = True) -> Callable[[], None]:
                def prepare() -> None:
                    if clear:
                        # Moved aside, not deleted: on ext4 without a journal (this VM) every new inode skips the
                        # inodes freed in the last 60-360 s, one buffer-cache lookup each, so deleting 200 outputs
                        # right before a run added 0.1-1 ms of kernel CPU to each file the run created. Users sign
                        # into folders they did not just empty; everything is deleted after the last run.
                        if out.exists():
                            out.rename(kept / str(len(list(kept.iterdir()))))
                        out.mkdir()
                    tsa_cpu.mark(label)
                return prepare

            sign = [fixtures.nuseal(), "sign", *packages, *fixtures.sign_args(pki), "--timestamper", url, "-o", out]
            labels = [f"nuseal sign {args.count} packages --timestamper", f"curl: {args.count} keep-alive POSTs",
                      "nuseal sign ... --parallel 1 (info)", "nuseal sign ... --no-fsync (info)"]
            commands = [
                Command(labels[0], sign, before=before(labels[0])),
                Command(labels[1],
                        ["curl", "-s", "-H", "Content-Type: application/timestamp-query", "--data-binary", f"@{query}",
                         *[url] * args.count], before=before(labels[1], clear=False)),
                Command(labels[2], [*sign, "--parallel", "1"], before=before(labels[2])),
                Command(labels[3], [*sign, "--no-fsync"], before=before(labels[3])),
            ]
            print(f"\n{args.count} packages of {args.size_kb} KB, TSA {url} ({args.runs} runs each, alternated):")
            series = alternate(commands, runs=args.runs, warmup=args.warmup)
            tsa_cpu.mark(None)
        report.print_series(series)
        rates = {s.command.label: [args.count / r.wall for r in s.runs] for s in series}
        # The warm-up runs are marked too: only the last ``runs`` of each label are the counted ones.
        tsa_ms = {label: [1000 * cpu / args.count for cpu in used[-args.runs:]] for label, used in tsa_cpu.used.items()}
        signer_ms = {s.command.label: [1000 * r.cpu / args.count for r in s.runs] for s in series}
        checks = [
            report.value_check(AREA, f"timestamped signing, {args.count} packages", rates[labels[0]], "/s", ">=",
                               300),
            report.ratio_check(AREA, "timestamped signing / keep-alive POSTs (rate)",
                               round_ratios(series[0], [series[1]], invert=True)),
            report.value_check(AREA, "keep-alive POSTs to the TSA", rates[labels[1]], "/s", "info", 0),
            report.value_check(AREA, "timestamped signing --parallel 1", rates[labels[2]], "/s", "info", 0),
            report.value_check(AREA, "timestamped signing --no-fsync", rates[labels[3]], "/s", "info", 0),
            report.value_check(AREA, "signer CPU per signature (user+sys, workers included)", signer_ms[labels[0]],
                               "ms", "info", 0),
            report.value_check(AREA, "signer CPU per signature, --parallel 1", signer_ms[labels[2]], "ms", "info", 0),
            report.value_check(AREA, "TSA CPU per request, while signing", tsa_ms[labels[0]], "ms", "info", 0),
            report.value_check(AREA, "TSA CPU per request, curl's keep-alive POSTs", tsa_ms[labels[1]], "ms", "info",
                               0),
        ]
        report.print_checks(checks)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report.write_json(args.json, checks)
    return 0
