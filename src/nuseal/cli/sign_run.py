"""What ``nuseal sign`` and ``repo-sign`` do once their command line is parsed, without the CLI framework: check the
arguments, load the key, sign each package, print, and return the exit code (spec §7.1).

Output follows ``dotnet nuget sign`` ("Signing package(s) with certificate:", certificate details,
"Package(s) signed successfully."), plus one line per package saying which signature was added. Errors print
as ``error: NUxxxx: message (package)`` and make the exit code 1; the other packages are still signed.
This module is the only place in signing that reads the clock or prints.

The typer commands (``nuseal.cli.sign``: help, usage errors, ``repo-sign``) and the lean path (``nuseal.cli.lean``:
an ordinary ``sign`` command line, parsed from the same declarations) both call it. A usage error found here
(``--pkcs11-module`` without its companions) is a ``BadOption``, which each front door words as click does. The
library is imported inside the functions: a command line that does not parse never loads cryptography.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nuseal.cli import collector, x509_import
from nuseal.cli.declare import SignArgs, SigningArgs
from nuseal.cli.guard import BadOption, echo, existing_file, fail
from nuseal.cli.paths import expand_all
from nuseal.cli.progress import batch_progress
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


def sign(args: SignArgs, signing: SigningArgs) -> int:
    """Author-sign ``args.packages``; the exit code is 1 when any package failed."""

    def make_request(signer: Signer, options: SignOptions) -> AuthorSignRequest:
        from nuseal.sign.author import AuthorSignRequest  # imported by run_signing already (start-up, no collection)

        return AuthorSignRequest(signer, options)

    return run_signing(args.packages, signing, make_request)


def local_now() -> datetime:
    # NuGet writes the zip entry's DOS time in local time; the signing time itself is stored as UTC.
    return datetime.now().astimezone().replace(microsecond=0)


def _load_signer(args: SigningArgs) -> Signer:
    from cryptography import x509

    from nuseal.sign.signers import PemSigner, PfxSigner, Pkcs11Config, Pkcs11Signer

    if args.pkcs11_module is not None:
        if args.pkcs11_token is None or args.pkcs11_key is None or args.pkcs11_pin is None:
            raise BadOption("--pkcs11-module", "needs --pkcs11-token, --pkcs11-key and --pkcs11-pin")
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
        raise BadOption("--certificate-path", "give a certificate file (or the --pkcs11-* options)")
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
        raise BadOption("--pkcs11-key", f"'id:{text}' is not id: followed by hexadecimal") from None


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


def run_signing(patterns: list[str], args: SigningArgs, make_request: MakeRequest) -> int:
    """Check every argument, load the key, then sign each package (a failed one does not stop the others)."""
    with collector.after_start_up() as start_collecting:
        x509_import.load()  # first: without email.utils, which signing never uses
        from nuseal.sign.batch import SignJob

        packages = expand_all(patterns)
        if args.output is not None and args.output.exists() and not args.output.is_dir():
            fail(f"The output path is not a folder ({args.output})")
        options = _sign_options(args)
        signer = _load_signer(args)
        timestamper: HttpTimestamper | None = None
        try:
            job = SignJob(make_request(signer, options), local_now, args.timestamper)
            if args.timestamper is not None:
                from nuseal.timestamp.client import HttpTimestamper

                # The clock makes NU3025 (TSA certificate not yet / no longer valid) a judgement about now.
                timestamper = HttpTimestamper(args.timestamper, clock=lambda: datetime.now(UTC))
            return _sign_all(packages, signer, timestamper, args, job, start_collecting)
        finally:
            _close(signer)
            if timestamper is not None:
                timestamper.close()


def located(message: str, path: Path) -> str:
    """``message (path)``, unless the message already names the path."""
    return message if str(path) in message else f"{message.rstrip('.')} ({path})"


def _sign_all(
    packages: list[Path], signer: Signer, timestamper: HttpTimestamper | None, args: SigningArgs, job: SignJob,
    start_collecting: Callable[[], None],
) -> int:
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
        echo("Signing package(s) with certificate:")
        for line in _describe(signer.certificate):
            echo(line)
        if args.timestamper is not None:
            echo(f"\nTimestamping package(s) with:\n{args.timestamper}")
        if args.output is not None:
            echo(f"\nSigned package(s) output path:\n{args.output}")
        echo("")
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
                    echo(f"error: {located(str(exc), package)}", err=True)
            elif exc is not None:
                # Unreadable input, unwritable output folder, disk full: nothing was written (temp + rename).
                failed = True
                message = f"Could not sign '{package}' to '{dst}': {exc.strerror or exc}."
                entry["error"] = {"code": None, "message": message}
                if text:
                    echo(f"error: {message}", err=True)
            elif outcome.result is not None:
                result = outcome.result
                entry.update(kind=result.kind, timestamped=result.timestamped,
                             warnings=[{"code": w.code.value, "message": w.message} for w in result.warnings])
                if text:
                    _report_signed(package, dst, result, level)
            report["packages"].append(entry)
            advance(package.name)

        start_collecting()
        sign_batch(pairs, job, parallel=args.parallel if args.parallel is not None else default_workers(),
                   on_outcome=show, timestamper=timestamper)
    report["ok"] = not failed
    if not text:
        import json  # only for --json (~2 ms of every other signing command's start-up)

        echo(json.dumps(report, indent=2))
    elif not failed and level >= Verbosity.MINIMAL:
        echo("Package(s) signed successfully.")
    return 1 if failed else 0


def _report_signed(package: Path, dst: Path, result: SignResult, level: Verbosity) -> None:
    for warning in result.warnings:
        echo(f"warn : {warning.code.value}: {warning.message}", err=True)
    if level >= Verbosity.NORMAL:
        where = f"'{dst}'" if dst == package else f"'{dst}' (from '{package}')"
        stamped = ", timestamped" if result.timestamped else ", not timestamped"
        details = f", {len(result.signature)} bytes" if level >= Verbosity.DETAILED else ""
        echo(f"Added {_ADDED.get(result.kind, result.kind)} to {where}{stamped}{details}.")


def _close(signer: Signer) -> None:
    close = getattr(signer, "close", None)
    if close is not None:
        close()
