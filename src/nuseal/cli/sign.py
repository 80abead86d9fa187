"""``nuseal sign`` / ``repo-sign`` / ``remove-signature``: the signing commands (spec §7.1).

Output follows ``dotnet nuget sign`` ("Signing package(s) with certificate:", certificate details,
"Package(s) signed successfully."); errors print as ``NUxxxx: message`` and make the exit code 1.
This module is the only place in signing that reads the clock or prints.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from cryptography import x509

from nuseal.cli.base import app
from nuseal.cli.options import JSON, trust_store_or_exit
from nuseal.cli.progress import batch_progress
from nuseal.enums import HashAlgorithmName
from nuseal.errors import NusealError
from nuseal.findings import Finding
from nuseal.parallel import default_workers
from nuseal.sign.author import AuthorSignRequest
from nuseal.sign.batch import SignJob, SignOutcome, sign_batch
from nuseal.sign.common import SignOptions
from nuseal.sign.removal import Removal, remove_signature
from nuseal.sign.repository import RepositorySignRequest
from nuseal.sign.signers import PemSigner, PfxSigner, Pkcs11Config, Pkcs11Signer, Signer, fingerprint

if TYPE_CHECKING:
    from nuseal.timestamp.client import HttpTimestamper

CERT_PATH = typer.Option(None, "--certificate-path", help="PFX/P12 file, or PEM with key and certificates.")
KEY_PATH = typer.Option(None, "--key-path", help="PEM private key when --certificate-path has only certificates.")
PASSWORD = typer.Option(None, "--certificate-password", help="Password of the PFX file or of the PEM key.")
FINGERPRINT = typer.Option(None, "--certificate-fingerprint", help="SHA-256/384/512 hex fingerprint to select.")
HASH = typer.Option("SHA256", "--hash-algorithm", help="SHA256, SHA384 or SHA512.")
TIMESTAMPER = typer.Option(None, "--timestamper", help="RFC 3161 timestamp server URL.")
TS_HASH = typer.Option("SHA256", "--timestamp-hash-algorithm", help="SHA256, SHA384 or SHA512.")
OUTPUT = typer.Option(None, "-o", "--output", help="Output directory (default: sign in place).")
OVERWRITE = typer.Option(False, "--overwrite", help="Replace an existing signature.")
P11_MODULE = typer.Option(None, "--pkcs11-module", help="PKCS#11 module (.so) path.")
P11_TOKEN = typer.Option(None, "--pkcs11-token", help="PKCS#11 token label.")
P11_KEY = typer.Option(None, "--pkcs11-key", help="Key label, or id:<hex> for a key id.")
P11_PIN = typer.Option(None, "--pkcs11-pin", help="User PIN of the token.")
VERBOSE = typer.Option(False, "-v", "--verbose", help="Print more details.")
PARALLEL = typer.Option(
    None, "--parallel", min=1, help="Worker processes (default: one per core; 1 signs in this process).")
NO_FSYNC = typer.Option(
    False, "--no-fsync",
    help="Do not fsync outputs (still written atomically). Only where something else makes them durable.",
)  # fmt: skip
SIGN_TRUST_ROOTS = typer.Option(
    None, "--trust-roots",
    help="PEM bundle of trusted code-signing roots: build the signing chain against them (NU3018) before signing.",
)  # fmt: skip
SIGN_TIMESTAMP_ROOTS = typer.Option(
    None, "--timestamp-roots",
    help="PEM bundle of trusted timestamping roots: build the TSA chain against them (NU3028) after timestamping.",
)  # fmt: skip


def _local_now() -> datetime:
    # NuGet writes the zip entry's DOS time in local time; the signing time itself is stored as UTC.
    return datetime.now().astimezone().replace(microsecond=0)


def _load_signer(
    certificate_path: Path | None,
    key_path: Path | None,
    password: str | None,
    certificate_fingerprint: str | None,
    pkcs11: tuple[Path | None, str | None, str | None, str | None],
) -> Signer:
    module, token, key, pin = pkcs11
    if module is not None:
        if token is None or key is None or pin is None:
            raise typer.BadParameter("--pkcs11-module needs --pkcs11-token, --pkcs11-key and --pkcs11-pin")
        certificates: list[x509.Certificate] = []
        if certificate_path is not None:
            certificates = x509.load_pem_x509_certificates(certificate_path.read_bytes())
        key_label, key_id = (None, bytes.fromhex(key[3:])) if key.startswith("id:") else (key, None)
        config = Pkcs11Config(module, token, pin, key_label=key_label, key_id=key_id)
        return Pkcs11Signer(config, certificates=certificates, fingerprint=certificate_fingerprint)
    if certificate_path is None:
        raise typer.BadParameter("give --certificate-path (or the --pkcs11-* options)")
    if key_path is not None or _looks_like_pem(certificate_path):
        paths = [certificate_path] + ([key_path] if key_path is not None else [])
        return PemSigner.load(paths, password, fingerprint=certificate_fingerprint)
    return PfxSigner.load(certificate_path, password, fingerprint=certificate_fingerprint)


def _looks_like_pem(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return b"-----BEGIN" in f.read(4096)
    except OSError:
        return False  # PfxSigner reports the missing/unreadable file with NU3001


def _sign_options(
    hash_algorithm: str,
    timestamp_hash_algorithm: str,
    overwrite: bool,
    trust_roots: Path | None,
    timestamp_roots: Path | None,
    no_fsync: bool = False,
) -> SignOptions:
    """Chains are built at sign time (as NuGet does) only when roots are given: nuseal has no machine store."""
    store = None
    if trust_roots is not None or timestamp_roots is not None:
        store = trust_store_or_exit(trust_roots, timestamp_roots)
    return SignOptions(
        _hash(hash_algorithm, "--hash-algorithm"),
        _hash(timestamp_hash_algorithm, "--timestamp-hash-algorithm"),
        overwrite,
        trust_store=store,
        durable=not no_fsync,
    )


def _hash(text: str, option: str) -> HashAlgorithmName:
    try:
        return HashAlgorithmName.parse(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from exc


def _describe(cert: x509.Certificate) -> list[str]:
    return [
        f"  Subject Name: {cert.subject.rfc4514_string()}",
        f"  SHA256 hash: {fingerprint(cert)}",
        f"  Issued by: {cert.issuer.rfc4514_string()}",
        f"  Valid from: {cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S}Z "
        f"to {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S}Z",
    ]


def _warnings(findings: Sequence[Finding]) -> list[dict[str, str]]:
    return [{"code": f.code.value, "message": f.message} for f in findings]


def _run_signing(
    packages: list[Path],
    signer: Signer,
    output: Path | None,
    timestamper_url: str | None,
    as_json: bool,
    verbose: bool,
    request: AuthorSignRequest | RepositorySignRequest,
    parallel: int | None,
) -> None:
    timestamper: HttpTimestamper | None = None
    try:
        if timestamper_url is not None:
            from nuseal.timestamp.client import HttpTimestamper

            try:
                # The clock makes NU3025 (TSA certificate not yet / no longer valid) a judgement about now.
                timestamper = HttpTimestamper(timestamper_url, clock=lambda: datetime.now(UTC))
            except NusealError as exc:
                typer.echo(str(exc), err=True)
                raise typer.Exit(1) from None
        job = SignJob(request, _local_now, timestamper_url)
        _sign_all(packages, signer, output, timestamper, as_json, verbose, job,
                  parallel if parallel is not None else default_workers())
    finally:
        _close(signer)
        if timestamper is not None:
            timestamper.close()


def _sign_all(
    packages: list[Path],
    signer: Signer,
    output: Path | None,
    timestamper: HttpTimestamper | None,
    as_json: bool,
    verbose: bool,
    job: SignJob,
    parallel: int,
) -> None:
    timestamper_url = timestamper.url if timestamper is not None else None
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "schema": 1,
        "certificate": {
            "subject": signer.certificate.subject.rfc4514_string(),
            "sha256": fingerprint(signer.certificate),
        },
        "timestamper": timestamper_url,
        "packages": [],
    }
    if not as_json:
        typer.echo("Signing package(s) with certificate:")
        for line in _describe(signer.certificate):
            typer.echo(line)
        if timestamper_url is not None:
            typer.echo(f"\nTimestamping package(s) with:\n{timestamper_url}")
        if output is not None:
            typer.echo(f"\nSigned package(s) output path:\n{output}")
        typer.echo("")
    failed = False
    pairs = [(package, output / package.name if output is not None else package) for package in packages]
    with batch_progress(len(packages), "Signing") as advance:

        def show(outcome: SignOutcome) -> None:
            nonlocal failed
            package, dst = outcome.src, outcome.dst
            entry: dict[str, Any] = {"path": str(package), "output": str(dst)}
            exc = outcome.error
            if isinstance(exc, NusealError):
                failed = True
                entry["error"] = {"code": exc.code.value if exc.code else None, "message": exc.message}
                if not as_json:
                    typer.echo(f"{exc} ({package})" if str(package) not in exc.message else str(exc), err=True)
            elif exc is not None:
                # Unreadable input, unwritable output folder, disk full: nothing was written (temp + rename).
                failed = True
                message = f"Could not sign '{package}' to '{dst}': {exc.strerror or exc}."
                entry["error"] = {"code": None, "message": message}
                if not as_json:
                    typer.echo(message, err=True)
            elif outcome.result is not None:
                result = outcome.result
                entry.update(kind=result.kind, timestamped=result.timestamped, warnings=_warnings(result.warnings))
                if not as_json:
                    for warning in result.warnings:
                        typer.echo(f"warn : {warning.code.value}: {warning.message}", err=True)
                    if verbose:
                        typer.echo(f"Signed {package} -> {dst} ({result.kind}, {len(result.signature)} bytes)")
            report["packages"].append(entry)
            advance(package.name)

        sign_batch(pairs, job, parallel=parallel, on_outcome=show, timestamper=timestamper)
    report["ok"] = not failed
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    elif not failed:
        typer.echo("Package(s) signed successfully.")
    if failed:
        raise typer.Exit(1)


@app.command("sign")
def sign_command(
    packages: list[Path] = typer.Argument(..., help="Packages to author-sign."),
    certificate_path: Path | None = CERT_PATH,
    key_path: Path | None = KEY_PATH,
    certificate_password: str | None = PASSWORD,
    certificate_fingerprint: str | None = FINGERPRINT,
    hash_algorithm: str = HASH,
    timestamper: str | None = TIMESTAMPER,
    timestamp_hash_algorithm: str = TS_HASH,
    output: Path | None = OUTPUT,
    overwrite: bool = OVERWRITE,
    trust_roots: Path | None = SIGN_TRUST_ROOTS,
    timestamp_roots: Path | None = SIGN_TIMESTAMP_ROOTS,
    pkcs11_module: Path | None = P11_MODULE,
    pkcs11_token: str | None = P11_TOKEN,
    pkcs11_key: str | None = P11_KEY,
    pkcs11_pin: str | None = P11_PIN,
    verbose: bool = VERBOSE,
    as_json: bool = JSON,
    parallel: int | None = PARALLEL,
    no_fsync: bool = NO_FSYNC,
) -> None:
    """Author-sign NuGet packages (like 'dotnet nuget sign')."""
    options = _sign_options(hash_algorithm, timestamp_hash_algorithm, overwrite, trust_roots, timestamp_roots,
                            no_fsync)
    signer = _signer_or_exit(
        certificate_path, key_path, certificate_password, certificate_fingerprint,
        (pkcs11_module, pkcs11_token, pkcs11_key, pkcs11_pin),
    )  # fmt: skip
    request = AuthorSignRequest(signer, options)
    _run_signing(packages, signer, output, timestamper, as_json, verbose, request, parallel)


@app.command("repo-sign")
def repo_sign_command(
    packages: list[Path] = typer.Argument(..., help="Packages to repository-sign or countersign."),
    service_index_url: str = typer.Option(..., "--service-index-url", help="The feed's v3 index (https)."),
    owners: str | None = typer.Option(None, "--owners", help="Package owners, separated by ';'."),
    certificate_path: Path | None = CERT_PATH,
    key_path: Path | None = KEY_PATH,
    certificate_password: str | None = PASSWORD,
    certificate_fingerprint: str | None = FINGERPRINT,
    hash_algorithm: str = HASH,
    timestamper: str | None = TIMESTAMPER,
    timestamp_hash_algorithm: str = TS_HASH,
    output: Path | None = OUTPUT,
    overwrite: bool = OVERWRITE,
    trust_roots: Path | None = SIGN_TRUST_ROOTS,
    timestamp_roots: Path | None = SIGN_TIMESTAMP_ROOTS,
    pkcs11_module: Path | None = P11_MODULE,
    pkcs11_token: str | None = P11_TOKEN,
    pkcs11_key: str | None = P11_KEY,
    pkcs11_pin: str | None = P11_PIN,
    verbose: bool = VERBOSE,
    as_json: bool = JSON,
    parallel: int | None = PARALLEL,
    no_fsync: bool = NO_FSYNC,
) -> None:
    """Repository-sign packages: primary signature if unsigned, countersignature if author-signed."""
    options = _sign_options(hash_algorithm, timestamp_hash_algorithm, overwrite, trust_roots, timestamp_roots,
                            no_fsync)
    # nuget.exe reposign splits -PackageOwners on ';'; empty items are dropped, blank ones are an error later.
    owner_list = tuple(o for o in (owners or "").split(";") if o != "")
    signer = _signer_or_exit(
        certificate_path, key_path, certificate_password, certificate_fingerprint,
        (pkcs11_module, pkcs11_token, pkcs11_key, pkcs11_pin),
    )  # fmt: skip
    request = RepositorySignRequest(signer, service_index_url, owner_list, options)
    _run_signing(packages, signer, output, timestamper, as_json, verbose, request, parallel)


@app.command("remove-signature")
def remove_signature_command(
    package: Path = typer.Argument(..., help="Signed package to strip."),
    repository_only: bool = typer.Option(
        False, "--repository-only", help="Remove only a repository signature or repository countersignatures."
    ),
) -> None:
    """Remove the signature of a package (or only its repository signatures)."""
    try:
        outcome = remove_signature(package, repository_only=repository_only, now=_local_now())
    except NusealError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    messages = {
        Removal.SIGNATURE_REMOVED: "The package signature was removed.",
        Removal.COUNTERSIGNATURES_REMOVED: "The repository countersignature was removed.",
        Removal.NOTHING_TO_REMOVE: "The package has no repository signature; nothing was removed.",
    }
    typer.echo(f"{messages[outcome]} ({package})")


def _signer_or_exit(
    certificate_path: Path | None,
    key_path: Path | None,
    password: str | None,
    certificate_fingerprint: str | None,
    pkcs11: tuple[Path | None, str | None, str | None, str | None],
) -> Signer:
    try:
        signer = _load_signer(certificate_path, key_path, password, certificate_fingerprint, pkcs11)
    except NusealError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    return signer  # its warnings (NU3043) come back with each package's result


def _close(signer: Signer) -> None:
    close = getattr(signer, "close", None)
    if close is not None:
        close()
