"""``nuseal sign`` / ``repo-sign`` / ``remove-signature``: the signing commands (spec §7.1).

Output follows ``dotnet nuget sign`` ("Signing package(s) with certificate:", certificate details,
"Package(s) signed successfully."), plus one line per package saying which signature was added. Errors print
as ``error: NUxxxx: message (package)`` and make the exit code 1; the other packages are still signed.
This module is the only place in signing that reads the clock or prints. The library is imported inside the
commands: ``--help`` and usage errors never load cryptography or the signers (start-up, docs/performance.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from nuseal.cli.base import OptionGroup, app, command, fail
from nuseal.cli.options import (
    JSON,
    VERBOSITY,
    check_fingerprint,
    existing_file,
    parse_hash_algorithm,
    parse_http_url,
    roots_option,
    url_parser,
)
from nuseal.cli.paths import expand_all
from nuseal.cli.progress import batch_progress
from nuseal.enums import HashAlgorithmName
from nuseal.errors import NusealError
from nuseal.parallel import default_workers
from nuseal.render.text import Verbosity, format_time

if TYPE_CHECKING:
    from cryptography import x509

    from nuseal.sign.author import AuthorSignRequest
    from nuseal.sign.batch import SignJob, SignOutcome
    from nuseal.sign.common import SignOptions, SignResult
    from nuseal.sign.repository import RepositorySignRequest
    from nuseal.sign.signers import Signer
    from nuseal.timestamp.client import HttpTimestamper

    MakeRequest = Callable[[Signer, SignOptions], AuthorSignRequest | RepositorySignRequest]


def _signing_fingerprint(text: str) -> str:
    # NuGet selects the hash by the length; SHA-1 still selects (with NU3043 as a warning) in NuGet 6.12.
    return check_fingerprint(text, ("SHA1", "SHA256", "SHA384", "SHA512"))


@dataclass(frozen=True)
class SigningArgs:
    """The options ``sign`` and ``repo-sign`` share: key, hashes, timestamper, output, roots, verbosity."""

    certificate_path: Path | None
    key_path: Path | None
    certificate_password: str | None
    certificate_fingerprint: str | None
    hash_algorithm: HashAlgorithmName
    timestamper: str | None
    timestamp_hash_algorithm: HashAlgorithmName
    output: Path | None
    overwrite: bool
    trust_roots: Path | None
    timestamp_roots: Path | None
    pkcs11_module: Path | None
    pkcs11_token: str | None
    pkcs11_key: str | None
    pkcs11_pin: str | None
    verbosity: Verbosity
    as_json: bool
    parallel: int | None
    no_fsync: bool


#: The typer declaration of each ``SigningArgs`` field, in help order.
_SIGNING_OPTIONS: dict[str, Any] = {
    "certificate_path": typer.Option(
        None, "--certificate-path", metavar="FILE", help="PFX/P12 file, or PEM with key and certificates."),
    "key_path": typer.Option(
        None, "--key-path", metavar="FILE", help="PEM private key when --certificate-path has only certificates."),
    "certificate_password": typer.Option(
        None, "--certificate-password", metavar="PASSWORD", help="Password of the PFX file or of the PEM key."),
    "certificate_fingerprint": typer.Option(
        None, "--certificate-fingerprint", metavar="HEX", parser=_signing_fingerprint,
        help="SHA-256/384/512 fingerprint of the certificate to use, when the file holds several."),
    "hash_algorithm": typer.Option(
        "SHA256", "--hash-algorithm", metavar="SHA256|SHA384|SHA512", parser=parse_hash_algorithm,
        help="Hash algorithm of the signature."),
    "timestamper": typer.Option(
        None, "--timestamper", metavar="URL", parser=parse_http_url, help="RFC 3161 timestamp server."),
    "timestamp_hash_algorithm": typer.Option(
        "SHA256", "--timestamp-hash-algorithm", metavar="SHA256|SHA384|SHA512", parser=parse_hash_algorithm,
        help="Hash algorithm of the timestamp request."),
    "output": typer.Option(
        None, "-o", "--output", metavar="FOLDER", help="Write the signed packages here (default: sign in place)."),
    "overwrite": typer.Option(False, "--overwrite", help="Replace an existing signature."),
    "trust_roots": roots_option("--trust-roots", "code-signing", "to build the signing chain before signing"),
    "timestamp_roots": roots_option("--timestamp-roots", "timestamping", "to build the TSA chain after timestamping"),
    "pkcs11_module": typer.Option(None, "--pkcs11-module", metavar="FILE", help="PKCS#11 module (.so)."),
    "pkcs11_token": typer.Option(None, "--pkcs11-token", metavar="LABEL", help="PKCS#11 token label."),
    "pkcs11_key": typer.Option(None, "--pkcs11-key", metavar="LABEL", help="Key label, or id:HEX for a key id."),
    "pkcs11_pin": typer.Option(None, "--pkcs11-pin", metavar="PIN", help="User PIN of the token."),
    "verbosity": VERBOSITY,
    "as_json": JSON,
    "parallel": typer.Option(
        None, "--parallel", metavar="N", min=1,
        help="Worker processes (default: one per core; 1 signs in this process)."),
    "no_fsync": typer.Option(
        False, "--no-fsync",
        help="Do not fsync outputs (still written atomically). Only where something else makes them durable."),
}  # fmt: skip


SIGNING = OptionGroup(SigningArgs, _SIGNING_OPTIONS, "signing")


def _local_now() -> datetime:
    # NuGet writes the zip entry's DOS time in local time; the signing time itself is stored as UTC.
    return datetime.now().astimezone().replace(microsecond=0)


def _load_signer(args: SigningArgs) -> Signer:
    from cryptography import x509

    from nuseal.sign.signers import PemSigner, PfxSigner, Pkcs11Config, Pkcs11Signer

    if args.pkcs11_module is not None:
        if args.pkcs11_token is None or args.pkcs11_key is None or args.pkcs11_pin is None:
            raise typer.BadParameter("needs --pkcs11-token, --pkcs11-key and --pkcs11-pin",
                                     param_hint=["--pkcs11-module"])
        certificates: list[x509.Certificate] = []
        if args.certificate_path is not None:
            try:
                certificates = x509.load_pem_x509_certificates(existing_file(args.certificate_path).read_bytes())
            except ValueError:
                fail(f"No PEM certificate could be read ({args.certificate_path})")
        key = args.pkcs11_key
        key_label, key_id = (None, _key_id(key[3:])) if key.startswith("id:") else (key, None)
        config = Pkcs11Config(args.pkcs11_module, args.pkcs11_token, args.pkcs11_pin, key_label=key_label,
                              key_id=key_id)
        return Pkcs11Signer(config, certificates=certificates, fingerprint=args.certificate_fingerprint)
    if args.certificate_path is None:
        raise typer.BadParameter("give a certificate file (or the --pkcs11-* options)",
                                 param_hint=["--certificate-path"])
    existing_file(args.certificate_path, "Certificate file")
    if args.key_path is not None:
        existing_file(args.key_path, "Key file")
    if args.key_path is not None or _looks_like_pem(args.certificate_path):
        paths = [args.certificate_path] + ([args.key_path] if args.key_path is not None else [])
        return PemSigner.load(paths, args.certificate_password, fingerprint=args.certificate_fingerprint)
    return PfxSigner.load(args.certificate_path, args.certificate_password, fingerprint=args.certificate_fingerprint)


def _key_id(text: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise typer.BadParameter(f"'id:{text}' is not id: followed by hexadecimal",
                                 param_hint=["--pkcs11-key"]) from None


def _looks_like_pem(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return b"-----BEGIN" in f.read(4096)
    except OSError:
        return False  # PfxSigner reports the unreadable file with NU3001


def _sign_options(args: SigningArgs) -> SignOptions:
    """Chains are built at sign time (as NuGet does) only when roots are given: nuseal has no machine store."""
    from nuseal.sign.common import SignOptions

    store = None
    if args.trust_roots is not None or args.timestamp_roots is not None:
        from nuseal.x509.roots import trust_store_from_files  # the root bundle's modules: only when asked for

        store = trust_store_from_files(args.trust_roots, args.timestamp_roots)
    return SignOptions(args.hash_algorithm, args.timestamp_hash_algorithm, args.overwrite, trust_store=store,
                       durable=not args.no_fsync)


def _describe(cert: x509.Certificate) -> list[str]:
    from nuseal.sign.signers import fingerprint

    return [
        f"  Subject Name: {cert.subject.rfc4514_string()}",
        f"  SHA256 hash: {fingerprint(cert)}",
        f"  Issued by: {cert.issuer.rfc4514_string()}",
        f"  Valid from: {format_time(cert.not_valid_before_utc)} to {format_time(cert.not_valid_after_utc)}",
    ]


_ADDED = {
    "author": "an author primary signature",
    "repository": "a repository primary signature",
    "repository-countersignature": "a repository countersignature",
}


def _run_signing(patterns: list[str], args: SigningArgs, make_request: MakeRequest) -> None:
    """Check every argument, load the key, then sign each package (a failed one does not stop the others)."""
    from nuseal.sign.batch import SignJob

    packages = expand_all(patterns)
    if args.output is not None and args.output.exists() and not args.output.is_dir():
        fail(f"The output path is not a folder ({args.output})")
    options = _sign_options(args)
    signer = _load_signer(args)
    timestamper: HttpTimestamper | None = None
    try:
        job = SignJob(make_request(signer, options), _local_now, args.timestamper)
        if args.timestamper is not None:
            from nuseal.timestamp.client import HttpTimestamper

            # The clock makes NU3025 (TSA certificate not yet / no longer valid) a judgement about now.
            timestamper = HttpTimestamper(args.timestamper, clock=lambda: datetime.now(UTC))
        _sign_all(packages, signer, timestamper, args, job)
    finally:
        _close(signer)
        if timestamper is not None:
            timestamper.close()


def _located(message: str, path: Path) -> str:
    """``message (path)``, unless the message already names the path."""
    return message if str(path) in message else f"{message.rstrip('.')} ({path})"


def _sign_all(
    packages: list[Path], signer: Signer, timestamper: HttpTimestamper | None, args: SigningArgs, job: SignJob
) -> None:
    from nuseal.sign.batch import sign_batch
    from nuseal.sign.signers import fingerprint

    text = not args.as_json
    level = args.verbosity
    if args.output is not None:
        args.output.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "schema": 1,
        "certificate": {
            "subject": signer.certificate.subject.rfc4514_string(),
            "sha256": fingerprint(signer.certificate),
        },
        "timestamper": args.timestamper,
        "packages": [],
    }
    if text and level >= Verbosity.NORMAL:
        typer.echo("Signing package(s) with certificate:")
        for line in _describe(signer.certificate):
            typer.echo(line)
        if args.timestamper is not None:
            typer.echo(f"\nTimestamping package(s) with:\n{args.timestamper}")
        if args.output is not None:
            typer.echo(f"\nSigned package(s) output path:\n{args.output}")
        typer.echo("")
    failed = False
    pairs = [(package, args.output / package.name if args.output is not None else package) for package in packages]
    with batch_progress(len(packages), "Signing", enabled=text) as advance:

        def show(outcome: SignOutcome) -> None:
            nonlocal failed
            package, dst, exc = outcome.src, outcome.dst, outcome.error
            entry: dict[str, Any] = {"path": str(package), "output": str(dst)}
            if isinstance(exc, NusealError):
                failed = True
                entry["error"] = {"code": exc.code.value if exc.code else None, "message": exc.message}
                if text:
                    typer.echo(f"error: {_located(str(exc), package)}", err=True)
            elif exc is not None:
                # Unreadable input, unwritable output folder, disk full: nothing was written (temp + rename).
                failed = True
                message = f"Could not sign '{package}' to '{dst}': {exc.strerror or exc}."
                entry["error"] = {"code": None, "message": message}
                if text:
                    typer.echo(f"error: {message}", err=True)
            elif outcome.result is not None:
                result = outcome.result
                entry.update(kind=result.kind, timestamped=result.timestamped,
                             warnings=[{"code": w.code.value, "message": w.message} for w in result.warnings])
                if text:
                    _report_signed(package, dst, result, level)
            report["packages"].append(entry)
            advance(package.name)

        sign_batch(pairs, job, parallel=args.parallel if args.parallel is not None else default_workers(),
                   on_outcome=show, timestamper=timestamper)
    report["ok"] = not failed
    if not text:
        typer.echo(json.dumps(report, indent=2))
    elif not failed and level >= Verbosity.MINIMAL:
        typer.echo("Package(s) signed successfully.")
    if failed:
        raise typer.Exit(1)


def _report_signed(package: Path, dst: Path, result: SignResult, level: Verbosity) -> None:
    for warning in result.warnings:
        typer.echo(f"warn : {warning.code.value}: {warning.message}", err=True)
    if level >= Verbosity.NORMAL:
        where = f"'{dst}'" if dst == package else f"'{dst}' (from '{package}')"
        stamped = ", timestamped" if result.timestamped else ", not timestamped"
        details = f", {len(result.signature)} bytes" if level >= Verbosity.DETAILED else ""
        typer.echo(f"Added {_ADDED.get(result.kind, result.kind)} to {where}{stamped}{details}.")


@command(app, "sign", SIGNING)
def sign_command(
    packages: list[str] = typer.Argument(..., metavar="PACKAGE...", help="Packages to author-sign: paths or globs."),
    *,
    signing: SigningArgs,
) -> None:
    """Author-sign NuGet packages (like 'dotnet nuget sign')."""

    from nuseal.sign.author import AuthorSignRequest

    def make_request(signer: Signer, options: SignOptions) -> AuthorSignRequest:
        return AuthorSignRequest(signer, options)

    _run_signing(packages, signing, make_request)


@command(app, "repo-sign", SIGNING)
def repo_sign_command(
    packages: list[str] = typer.Argument(
        ..., metavar="PACKAGE...", help="Packages to repository-sign or countersign: paths or globs."),
    service_index_url: str = typer.Option(
        ..., "--service-index-url", metavar="URL", parser=url_parser("https"), help="The feed's V3 index (https)."),
    owners: str | None = typer.Option(None, "--owners", metavar="OWNER;...", help="Package owners, separated by ';'."),
    *,
    signing: SigningArgs,
) -> None:
    """Repository-sign packages (like 'nuget reposign').

    A primary signature if the package is unsigned, a countersignature if it is author-signed.
    """
    # nuget.exe reposign splits -PackageOwners on ';'; empty items are dropped, blank ones are an error.
    owner_list = tuple(o for o in (owners or "").split(";") if o != "")
    from nuseal.sign.repository import RepositorySignRequest

    def make_request(signer: Signer, options: SignOptions) -> RepositorySignRequest:
        return RepositorySignRequest(signer, service_index_url, owner_list, options).checked()

    _run_signing(packages, signing, make_request)




@command(app, "remove-signature")
def remove_signature_command(
    packages: list[str] = typer.Argument(..., metavar="PACKAGE...", help="Signed packages to strip: paths or globs."),
    repository_only: bool = typer.Option(
        False, "--repository-only", help="Remove only a repository signature or repository countersignatures."),
    verbosity: Verbosity = VERBOSITY,
) -> None:
    """Remove package signatures, byte-exact.

    With --repository-only, only a repository signature or repository countersignatures.
    """
    from nuseal.sign.removal import Removal, remove_signature

    said = {
        Removal.SIGNATURE_REMOVED: "The package signature was removed",
        Removal.COUNTERSIGNATURES_REMOVED: "The repository countersignature was removed",
        Removal.NOTHING_TO_REMOVE: "The package has no repository signature; nothing was removed",
    }
    failed = False
    for package in expand_all(packages):
        try:
            outcome = remove_signature(package, repository_only=repository_only, now=_local_now())
        except (NusealError, OSError) as exc:
            failed = True
            reason = str(exc) if isinstance(exc, NusealError) else (exc.strerror or str(exc))
            typer.echo(f"error: {_located(reason, package)}", err=True)
            continue
        if verbosity >= Verbosity.MINIMAL:
            typer.echo(f"{said[outcome]} ({package}).")
    if failed:
        raise typer.Exit(1)


def _close(signer: Signer) -> None:
    close = getattr(signer, "close", None)
    if close is not None:
        close()
