"""bench/sign: ``nuseal sign`` of one package to a new file against the two limits of that job, at several sizes.

Signing a large package is one read of it, a hash, and one write of almost the same bytes: the limit is the larger
of ``openssl dgst -sha256`` (hashing the input) and ``dd oflag=direct conv=fsync`` (writing that many bytes to the
same folder and making them durable, as ``nuseal sign`` does by default). Outputs are deleted before every run
(untimed), so every run writes a new file; no timestamp (bench/timestamp measures that). ``--no-fsync`` is shown
for information.

Targets (issue 12): 200 MB in <= 1.5x max(openssl dgst, dd); peak RSS < 100 MB at every size.
"""

from __future__ import annotations

import shutil
from functools import partial

from benchlib import fixtures, options, report
from benchlib.measure import Command, alternate, round_ratios, scratch_dir

AREA = "sign"


def main(argv: list[str]) -> int:
    p = options.parser(__doc__ or "")
    p.add_argument("--sizes", type=options.sizes, default=options.sizes("1,10,100,200,400"),
                   help="package sizes in MB (default 1,10,100,200,400)")
    args = p.parse_args(argv)
    report.machine_header("bench/sign: nuseal sign vs max(openssl dgst -sha256, dd oflag=direct conv=fsync)")
    work = scratch_dir("nuseal-bench-sign-")
    checks: list[report.Check] = []
    try:
        pki = fixtures.make_pki(work)
        out = work / "out"
        out.mkdir()
        for size in args.sizes:
            package = fixtures.make_package(work / f"Bench.Package.{size:g}MB.nupkg", size)
            fixtures.warm_cache(package)
            signed, copied, unsynced = out / package.name, out / "dd.bin", out / "nofsync" / package.name
            unsynced.parent.mkdir(exist_ok=True)
            sign = [fixtures.nuseal(), "sign", package, *fixtures.sign_args(pki)]
            commands = [
                Command("nuseal sign (new file)", [*sign, "-o", out], before=partial(fixtures.drop, signed)),
                Command("openssl dgst -sha256", ["openssl", "dgst", "-sha256", package]),
                Command("dd oflag=direct conv=fsync", ["dd", f"if={package}", f"of={copied}", "bs=4M",
                                                       "oflag=direct", "conv=fsync", "status=none"],
                        before=partial(fixtures.drop, copied)),
                Command("nuseal sign --no-fsync (info)", [*sign, "-o", unsynced.parent, "--no-fsync"],
                        before=partial(fixtures.drop, unsynced)),
            ]
            print(f"\n{package.stat().st_size / 1e6:.1f} MB package ({args.runs} runs each, alternated):")
            series = alternate(commands, runs=args.runs, warmup=args.warmup)
            report.print_series(series)
            limit = series[1:3]
            size_checks = [
                report.ratio_check(AREA, f"sign {size:g} MB / max(openssl dgst, dd)",
                                   round_ratios(series[0], limit), *(("<=", 1.5) if size == 200 else ())),
                report.ratio_check(AREA, f"sign {size:g} MB --no-fsync / max(openssl dgst, dd)",
                                   round_ratios(series[3], limit)),
                report.value_check(AREA, f"sign {size:g} MB peak RSS", [r.peak_mb for r in series[0].runs],
                                   "MB", "<", 100),
            ]
            report.print_checks(size_checks)
            checks += size_checks
            fixtures.drop(package)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report.write_json(args.json, checks)
    return 0
