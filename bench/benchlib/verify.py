"""bench/verify: ``nuseal verify`` of one signed, timestamped package against ``openssl dgst -sha256`` of the same
file, at several sizes; wall time and peak RSS of every run.

Hashing is the whole irreducible work of verifying a large package: a process that only hashes it with the CPU's SHA
instructions (``openssl dgst``; ``sha256sum`` in coreutils 9.1 does not use them) is the limit. The package is
signed once with a timestamp from ``nuseal tsa serve`` and verified against its own root (``--trust-roots``,
``--timestamp-roots``, revocation offline). The file is read once first, so both commands hash from the page cache.

Targets (issue 12): a 1 MB package verifies in <= 0.2 s; 200 MB in <= 1.3x ``openssl dgst``; peak RSS < 100 MB
at every size.
"""

from __future__ import annotations

import shutil

from benchlib import fixtures, options, report
from benchlib.measure import Command, alternate, round_ratios, scratch_dir

AREA = "verify"


def main(argv: list[str]) -> int:
    p = options.parser(__doc__ or "")
    p.add_argument("--sizes", type=options.sizes, default=options.sizes("1,10,100,200,400"),
                   help="package sizes in MB (default 1,10,100,200,400)")
    args = p.parse_args(argv)
    report.machine_header("bench/verify: nuseal verify vs openssl dgst -sha256")
    work = scratch_dir("nuseal-bench-verify-")
    checks: list[report.Check] = []
    try:
        pki = fixtures.make_pki(work)
        packages = {}
        with fixtures.tsa_server(pki, work / "tsa.log") as url:
            for size in args.sizes:
                package = fixtures.make_package(work / f"Bench.Package.{size:g}MB.nupkg", size)
                fixtures.run_checked([fixtures.nuseal(), "sign", str(package), *fixtures.sign_args(pki),
                                      "--timestamper", url, "--overwrite"])
                packages[size] = package
        for size, package in packages.items():
            fixtures.warm_cache(package)
            ours = Command("nuseal verify", [fixtures.nuseal(), "verify", package, "--trust-roots", pki.root_pem,
                                             "--timestamp-roots", pki.root_pem, "--revocation-mode", "offline",
                                             "-v", "q"])
            limit = Command("openssl dgst -sha256", ["openssl", "dgst", "-sha256", package])
            mb = package.stat().st_size / 1e6
            print(f"\n{mb:.1f} MB package ({args.runs} runs each, alternated):")
            series = alternate([ours, limit], runs=args.runs, warmup=args.warmup)
            report.print_series(series)
            ratios = round_ratios(series[0], [series[1]])
            size_checks = [
                report.ratio_check(AREA, f"verify {size:g} MB / openssl dgst -sha256", ratios,
                                   *(("<=", 1.3) if size == 200 else ())),
                report.value_check(AREA, f"verify {size:g} MB peak RSS", [r.peak_mb for r in series[0].runs],
                                   "MB", "<", 100),
            ]
            if size == 1:
                size_checks.append(report.value_check(AREA, "verify 1 MB wall", [r.wall for r in series[0].runs],
                                                      "s", "<=", 0.2))
            report.print_checks(size_checks)
            checks += size_checks
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report.write_json(args.json, checks)
    return 0
