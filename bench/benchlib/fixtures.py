"""What the benchmarks measure on: the installed ``nuseal`` console script, a throw-away PKI, packages of a given
size, and ``nuseal tsa serve`` on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

REPO = Path(__file__).resolve().parents[2]
VECTORS = Path(os.environ.get("NUSEAL_VECTORS", REPO.parent / "shared" / "vectors"))
PASSWORD = "bench"
ENTRY_MB = 8


def nuseal() -> str:
    """The installed console script (what users run): on PATH, else the repository's virtual environment."""
    found = shutil.which("nuseal") or str(REPO / ".venv" / "bin" / "nuseal")
    if not Path(found).is_file():
        sys.exit("error: the nuseal console script is not installed (run scripts/install)")
    return found


def nuseal_python() -> str:
    """The interpreter the console script runs on (its shebang), for the ``python -c pass`` baseline."""
    first = Path(nuseal()).read_text(errors="replace").splitlines()[0]
    return first[2:].strip() if first.startswith("#!") else sys.executable


@dataclass(frozen=True)
class Pki:
    """A root, a code-signing leaf (PFX) and a TSA certificate (PFX), all issued now for 30 days."""

    root_pem: Path
    signer_pfx: Path
    tsa_pfx: Path


def _issue(name: str, eku: x509.ObjectIdentifier, issuer: tuple[x509.Certificate, rsa.RSAPrivateKey] | None,
           ca: bool = False) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.now(UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name, issuer_key = (issuer[0].subject, issuer[1]) if issuer else (subject, key)
    builder = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )  # fmt: skip
    if not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage([eku]), critical=eku == ExtendedKeyUsageOID.TIME_STAMPING)
    return builder.sign(issuer_key, hashes.SHA256()), key


def make_pki(folder: Path) -> Pki:
    root = _issue("nuseal bench root", ExtendedKeyUsageOID.CODE_SIGNING, None, ca=True)
    signer = _issue("nuseal bench signer", ExtendedKeyUsageOID.CODE_SIGNING, root)
    tsa = _issue("nuseal bench tsa", ExtendedKeyUsageOID.TIME_STAMPING, root)
    pki = Pki(folder / "root.pem", folder / "signer.pfx", folder / "tsa.pfx")
    pki.root_pem.write_bytes(root[0].public_bytes(serialization.Encoding.PEM))
    encryption = serialization.BestAvailableEncryption(PASSWORD.encode())
    for path, (cert, key) in ((pki.signer_pfx, signer), (pki.tsa_pfx, tsa)):
        path.write_bytes(pkcs12.serialize_key_and_certificates(b"bench", key, cert, [root[0]], encryption))
    return pki


def make_package(path: Path, size_mb: float, package_id: str = "Bench.Package") -> Path:
    """An unsigned package of about ``size_mb`` MB: a nuspec and incompressible stored entries of 8 MiB."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{package_id}.nuspec",
                    '<?xml version="1.0"?><package xmlns="http://schemas.microsoft.com/packaging/2013/05/nuspec.xsd">'
                    f"<metadata><id>{package_id}</id><version>1.0.0</version><authors>bench</authors>"
                    "<description>benchmark</description></metadata></package>")
        remaining = int(size_mb * 1024 * 1024)
        index = 0
        while remaining > 0:
            size = min(remaining, ENTRY_MB << 20)
            with zf.open(f"lib/data{index:03d}.bin", "w") as out:
                for offset in range(0, size, 1 << 20):
                    out.write(os.urandom(min(1 << 20, size - offset)))
            remaining -= size
            index += 1
    return path


def sign_args(pki: Pki) -> list[str]:
    return ["--certificate-path", str(pki.signer_pfx), "--certificate-password", PASSWORD]


@contextlib.contextmanager
def tsa_server(pki: Pki, log: Path) -> Iterator[str]:
    """``nuseal tsa serve`` on 127.0.0.1 with an OS-chosen port; yields its URL, stops it (by its pid) after."""
    from benchlib.measure import child_env

    with open(log, "wb") as err:
        process = subprocess.Popen(
            [nuseal(), "tsa", "serve", "--certificate-path", str(pki.tsa_pfx), "--certificate-password", PASSWORD,
             "--host", "127.0.0.1", "--port", "0"],
            stdout=subprocess.PIPE, stderr=err, text=True, env=child_env(),
        )  # fmt: skip
        try:
            assert process.stdout is not None
            deadline = time.monotonic() + 60
            url = None
            while url is None and time.monotonic() < deadline:
                line = process.stdout.readline()
                if "listening on" in line:
                    url = line.strip().split()[-1]
                elif not line and process.poll() is not None:
                    break
            if url is None:
                sys.exit(f"error: nuseal tsa serve did not start (see {log})")
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def run_checked(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a set-up command (not measured); exit with its output if it fails."""
    from benchlib.measure import child_env

    done = subprocess.run(argv, capture_output=True, text=True, env=child_env())
    if done.returncode != 0:
        sys.exit(f"error: set-up command failed ({done.returncode}): {' '.join(argv)}\n{done.stdout}{done.stderr}")
    return done


def warm_cache(path: Path) -> None:
    """Read ``path`` once so that the measured commands all read it from the page cache."""
    with open(path, "rb", buffering=0) as f:
        while f.read(8 << 20):
            pass


def drop(path: Path) -> None:
    """Delete ``path`` if it exists (an output, before a run that must write a new file)."""
    path.unlink(missing_ok=True)


def clear(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
