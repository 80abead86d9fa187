"""bench/batch: ``nuseal verify`` of the real signed vectors in one call, on one core and on two, against
``openssl cms -verify`` run once per signature.

The limit for per-signature work (parse the CMS, check the signature, build the signer's chain to a known root)
is OpenSSL doing just that in a process per file: ``openssl cms -verify -no-CAfile -no-CApath -no-CAstore -CAfile
ROOTS -purpose any -no_check_time``, where ROOTS are the bundled code-signing roots these vectors chain to (found
once, untimed, from ``nuseal verify --json``), and ``-no_check_time`` because the vectors' certificates expired
(nuseal judges time through their timestamps). The signatures are extracted beforehand (untimed), so the baseline
skips the zip and the package hash that nuseal does. nuseal verifies offline (``--revocation-mode offline``).

Throughput is compared: the ratio is openssl's time / nuseal's time for the same files (higher is better). "One
core" pins both commands to CPU 0 with ``taskset`` and uses ``--parallel 1``; "2 cores" is ``--parallel 2``
unpinned, against the same one-core baseline. A larger batch (every vector 8 times) shows the rate once start-up
no longer dominates (information).

Targets (issue 12): 18 vectors in one call >= 1x the baseline on one core, >= 1.7x with 2 cores.

The floor of any verifier written in Python (information, the 18 vectors only): the same interpreter started on CPU 0
that only imports ``cryptography.x509`` the way ``nuseal verify`` does (``nuseal.cli.x509_import``, without
``email.utils``), then also SHA-256s each package file with ``hashlib``, work that a verification cannot skip and that
openssl's baseline does not do. No verifier that starts a fresh interpreter and uses the library can be faster than
that; the best ratio it could reach is printed as a "ceiling": openssl's time over the floor with the hashing on one
core, and over the import alone on two (the interpreter start and the import are on every worker's critical path,
whether the workers are forked before or after it; the hashing could at best all run on the other core meanwhile).
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import shutil
import subprocess
import zipfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from benchlib import fixtures, options, report
from benchlib.measure import Command, alternate, child_env, round_ratios, scratch_dir

AREA = "batch"
OPENSSL_LOOP = ('for f in "$@"; do openssl cms -verify -inform DER -in "$f" -no-CAfile -no-CApath -no-CAstore '
                '-CAfile "$ROOTS" -purpose any -no_check_time -out /dev/null 2>/dev/null; done')
COPIES = 8
FLOOR_IMPORT = "import nuseal.cli.x509_import as x509_import; x509_import.load()"
FLOOR_HASH = FLOOR_IMPORT + """
import hashlib, sys
for name in sys.argv[1:]:
    with open(name, "rb") as package:
        hashlib.file_digest(package, "sha256")
"""


def signed_vectors() -> list[Path]:
    found = []
    for path in sorted((fixtures.VECTORS / "real").glob("*.nupkg")):
        try:
            with zipfile.ZipFile(path) as zf:
                if ".signature.p7s" in zf.namelist():
                    found.append(path)
        except zipfile.BadZipFile:
            continue
    return found


def extract_signatures(packages: list[Path], folder: Path) -> list[Path]:
    folder.mkdir()
    signatures = []
    for package in packages:
        with zipfile.ZipFile(package) as zf:
            target = folder / f"{package.name}.p7s"
            target.write_bytes(zf.read(".signature.p7s"))
            signatures.append(target)
    return signatures


def anchor_roots(packages: list[Path], target: Path) -> int:
    """Write the bundled roots that the vectors' primary signatures chain to; returns how many."""
    done = subprocess.run([fixtures.nuseal(), "verify", "--json", "--revocation-mode", "offline", "--parallel", "1",
                           *map(str, packages)], capture_output=True, text=True, env=child_env())
    wanted = {s["chain"][-1]["sha256"].lower() for p in json.loads(done.stdout)["packages"]
              for s in p["signatures"] if s["placement"] == "primary" and s["chain"]}
    bundle = (importlib.resources.files("nuseal.x509") / "roots" / "codesignctl.pem").read_bytes()
    roots = [c for c in x509.load_pem_x509_certificates(bundle)
             if hashlib.sha256(c.public_bytes(serialization.Encoding.DER)).hexdigest() in wanted]
    target.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in roots))
    return len(roots)


def openssl_failures(signatures: list[Path], roots: Path) -> list[str]:
    failed = []
    for signature in signatures:
        done = subprocess.run(["openssl", "cms", "-verify", "-inform", "DER", "-in", str(signature), "-no-CAfile",
                               "-no-CApath", "-no-CAstore", "-CAfile", str(roots), "-purpose", "any",
                               "-no_check_time", "-out", "/dev/null"], capture_output=True)
        if done.returncode != 0:
            failed.append(signature.name)
    return failed


def measure(label: str, packages: list[Path], signatures: list[Path], roots: Path, runs: int, warmup: int
            ) -> list[report.Check]:
    nuseal = [fixtures.nuseal(), "verify", "--revocation-mode", "offline", "-v", "q"]
    pin = ["taskset", "-c", "0"]
    any_verdict = frozenset({0, 1})  # some vectors are invalid on purpose: exit 1 is a normal outcome
    count = len(packages)
    small = count < 50
    python = fixtures.nuseal_python()
    floors = [
        Command("floor: python + cryptography.x509 (CPU 0)", [*pin, python, "-c", FLOOR_IMPORT]),
        Command("floor: ... + SHA-256 of each package (CPU 0)", [*pin, python, "-c", FLOOR_HASH, *packages]),
    ] if small else []
    commands = [
        Command("nuseal verify --parallel 1 (CPU 0)", [*pin, *nuseal, "--parallel", "1", *packages],
                ok_exit=any_verdict),
        Command("nuseal verify --parallel 2", [*nuseal, "--parallel", "2", *packages], ok_exit=any_verdict),
        Command("openssl cms -verify per file (CPU 0)", [*pin, "sh", "-c", OPENSSL_LOOP, "sh", *signatures],
                env={"ROOTS": str(roots)}),
        *floors,
    ]
    print(f"\n{label}: {len(packages)} packages ({runs} runs each, alternated):")
    series = alternate(commands, runs=runs, warmup=warmup)
    report.print_series(series)
    for s in series[:3]:
        median = s.stat("wall")[0]
        print(f"  {s.command.label:<46} {count / median:>8.1f} packages/s")
    checks = [
        report.ratio_check(AREA, f"{label}, 1 core: throughput vs openssl", round_ratios(series[0], [series[2]],
                           invert=True), *((">=", 1.0) if small else ())),
        report.ratio_check(AREA, f"{label}, 2 cores: throughput vs openssl 1 core",
                           round_ratios(series[1], [series[2]], invert=True), *((">=", 1.7) if small else ())),
    ]
    if small:
        openssl, imported, hashed = series[2], series[3], series[4]
        checks += [
            report.ratio_check(AREA, f"{label}, 1 core: ceiling of a Python verifier (floor vs openssl)",
                               round_ratios(hashed, [openssl], invert=True)),
            report.ratio_check(AREA, f"{label}, 2 cores: ceiling of a Python verifier (floor vs openssl)",
                               round_ratios(imported, [openssl], invert=True)),
        ]
    return checks


def main(argv: list[str]) -> int:
    p = options.parser(__doc__ or "")
    p.add_argument("--no-large", action="store_true", help=f"skip the batch of every vector {COPIES} times")
    args = p.parse_args(argv)
    report.machine_header("bench/batch: nuseal verify of the real vectors vs openssl cms -verify per file")
    packages = signed_vectors()
    if not packages:
        report.fail(f"no signed vectors in {fixtures.VECTORS / 'real'}")
    work = scratch_dir("nuseal-bench-batch-")
    checks: list[report.Check] = []
    try:
        signatures = extract_signatures(packages, work / "signatures")
        roots = work / "roots.pem"
        print(f"trust anchors for openssl: {anchor_roots(packages, roots)} bundled roots")
        failures = openssl_failures(signatures, roots)
        if failures:
            print(f"note: openssl does not verify {len(failures)} of them: {', '.join(failures)}")
        checks += measure("18 real vectors" if len(packages) == 18 else f"{len(packages)} real vectors",
                          packages, signatures, roots, args.runs, args.warmup)
        if not args.no_large:
            copies = work / "copies"
            copies.mkdir()
            many, many_signatures = [], []
            for index in range(COPIES):
                for package, signature in zip(packages, signatures, strict=True):
                    link = copies / f"{index}.{package.name}"
                    link.symlink_to(package)
                    many.append(link)
                    many_signatures.append(signature)
            checks += measure(f"{len(many)} packages (vectors x{COPIES})", many, many_signatures, roots,
                              args.runs, args.warmup)
        report.print_checks(checks)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report.write_json(args.json, checks)
    return 0
