"""bench/pipeline: push -> available latency of the push pipeline for small packages (issue 11).

Starts ``nuseal serve`` in the embedded mode (SQLite, blobs in a folder, the job worker inside the server) over
HTTPS with a throw-away TLS certificate, so the feed repository-signs with its development certificate and its
in-process TSA. Then pushes ``--runs`` small unsigned packages one after the other and measures, per package, the
wall time from the start of the ``PUT`` to the status API answering ``available`` (polled every 20 ms on one
keep-alive connection): upload, checks, the job's lease, re-verification, repository signing with a timestamp,
publishing. ``push_latency`` is the function ``bench/resign`` may call for its report.

Target (issue 11): push -> available p50 < 0.5 s. Figures from a loaded, shared machine are indicative only.
"""

from __future__ import annotations

import datetime
import io
import ipaddress
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from benchlib import options, report

AREA = "pipeline"
NUSEAL = str(Path(sys.executable).with_name("nuseal"))


@dataclass(frozen=True)
class Latency:
    samples: tuple[float, ...]

    @property
    def p50(self) -> float:
        return statistics.median(self.samples)

    @property
    def p95(self) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def _tls(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .sign(key, hashes.SHA256()))  # fmt: skip
    cert_path, key_path = folder / "tls.pem", folder / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    return cert_path, key_path


def _package(package_id: str) -> bytes:
    nuspec = (f'<?xml version="1.0"?><package xmlns="http://schemas.microsoft.com/packaging/2013/05/nuspec.xsd">'
              f"<metadata><id>{package_id}</id><version>1.0.0</version><authors>bench</authors>"
              f"<description>bench</description></metadata></package>").encode()  # fmt: skip
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(f"{package_id}.nuspec", nuspec, compress_type=zipfile.ZIP_DEFLATED)
        archive.writestr("lib/net8.0/a.txt", secrets.token_bytes(512))
    return out.getvalue()


def _api_key(data: Path) -> str:
    from nuseal.server.bootstrap import open_context
    from nuseal.server.services import accounts, apikeys
    from nuseal.server.services.permissions import Operator
    from nuseal.server.settings import load_settings

    ctx = open_context(load_settings({"data_dir": data}))
    try:
        accounts.add_user(ctx, Operator(), "bench")
        return apikeys.create(ctx, Operator(), "bench", scopes=["package:push"], globs=["*"],
                              expires_in_days=1).token  # fmt: skip
    finally:
        ctx.db.dispose()


def _push(client: httpx.Client, key: str, data: bytes) -> None:
    boundary = secrets.token_hex(8)
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="package"; filename="p.nupkg"\r\n\r\n'.encode()
            + data + f"\r\n--{boundary}--\r\n".encode())  # fmt: skip
    response = client.put("/api/v2/package/", content=body, headers={
        "X-NuGet-ApiKey": key, "Content-Type": f"multipart/form-data; boundary={boundary}"})
    if response.status_code != 201:
        report.fail(f"push answered {response.status_code}: {response.text}")


def push_latency(runs: int, warmup: int = 1, *, time_limit: float = 300.0) -> Latency:
    """Start a feed, push ``warmup + runs`` small packages one after the other, return the counted latencies."""
    with tempfile.TemporaryDirectory(prefix="nuseal-bench-pipeline-") as folder:
        work = Path(folder)
        data = work / "data"
        key = _api_key(data)
        cert, tls_key = _tls(work)
        env = {k: v for k, v in os.environ.items() if not k.startswith("NUSEAL_")}
        log = (work / "serve.log").open("w")
        server = subprocess.Popen([NUSEAL, "serve", "--data", str(data), "--port", "0", "--tls-cert", str(cert),
                                   "--tls-key", str(tls_key)], stdout=subprocess.PIPE, stderr=log, text=True,
                                  env=env)  # fmt: skip
        try:
            assert server.stdout is not None
            match = re.match(r"nuseal feed listening on (\S+)/ ", server.stdout.readline())
            if match is None:
                report.fail(f"nuseal serve did not start: {(work / 'serve.log').read_text()[-2000:]}")
                raise SystemExit(2)  # report.fail exits; this tells the type checker
            samples: list[float] = []
            deadline = time.monotonic() + time_limit
            with httpx.Client(base_url=match.group(1), verify=False, timeout=60) as client:
                for n in range(warmup + runs):
                    package_id = f"Bench.Pipeline.P{n}"
                    data_bytes = _package(package_id)
                    start = time.perf_counter()
                    _push(client, key, data_bytes)
                    while True:
                        status = client.get(f"/api/v1/packages/{package_id}/1.0.0").json()["status"]
                        if status != "validating":
                            break
                        if time.monotonic() > deadline:
                            report.fail(f"{package_id} still validating after the time limit")
                        time.sleep(0.02)
                    elapsed = time.perf_counter() - start
                    if status != "available":
                        report.fail(f"{package_id} ended {status}")
                    if n >= warmup:
                        samples.append(elapsed)
            return Latency(tuple(samples))
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
            log.close()


def main(argv: list[str]) -> int:
    p = options.parser(__doc__ or "")
    p.set_defaults(runs=20)
    args = p.parse_args(argv)
    report.machine_header("bench/pipeline: push -> available (repository-signed), small packages, embedded mode")
    latency = push_latency(args.runs, args.warmup)
    print(f"\n{len(latency.samples)} pushes: p50 {latency.p50:.3f} s, p95 {latency.p95:.3f} s, "
          f"min {min(latency.samples):.3f} s, max {max(latency.samples):.3f} s")
    checks = [
        report.value_check(AREA, "push -> available p50 (small package, signed)", latency.samples, "s", "<=", 0.5),
        report.Check(AREA, "push -> available p95 (small package, signed)", latency.p95, "s", "info", 0.0,
                     f"{min(latency.samples):.3g}..{max(latency.samples):.3g}", ""),
    ]
    report.print_checks(checks)
    report.write_json(args.json, checks)
    return 0
