"""``nuseal verify`` and ``nuseal inspect``: parse options, call the engine, render, exit (spec §6.8, §7.2)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import typer

from nuseal.cli.base import app
from nuseal.cli.options import (
    REVOCATION_MODE,
    REVOCATION_TIMEOUT,
    TIMESTAMP_ROOTS,
    TRUST_ROOTS,
    revocation_mode,
    trust_store_or_exit,
)
from nuseal.cli.progress import batch_progress
from nuseal.errors import NusealError
from nuseal.parallel import default_workers
from nuseal.render import json as render_json
from nuseal.render import text as render_text
from nuseal.render.inspect import inspect_lines
from nuseal.trust.nuget_config import NuGetSettings
from nuseal.trust.policy_builder import verify_command_policy
from nuseal.verify.batch import exit_code, expand_paths, missing_verdict, verify_batch
from nuseal.verify.result import PackageVerdict
from nuseal.verify.setup import VerificationSetup


@app.command("verify")
def verify_command(
    packages: list[str] = typer.Argument(..., metavar="PATH_OR_GLOB...", help="Packages to verify (paths or globs)."),
    certificate_fingerprint: list[str] = typer.Option(
        [], "--certificate-fingerprint", help="SHA-256 fingerprint the primary signer must match (repeatable)."),
    configfile: Path | None = typer.Option(None, "--configfile", help="Use only this nuget.config."),
    trust_roots: Path | None = TRUST_ROOTS,
    timestamp_roots: Path | None = TIMESTAMP_ROOTS,
    revocation: str | None = REVOCATION_MODE,
    revocation_timeout: float = REVOCATION_TIMEOUT,
    verbosity: str = typer.Option("n", "-v", "--verbosity", help="q, n or d."),
    as_json: bool = typer.Option(False, "--json", help="One JSON document for the whole run."),
    _all: bool = typer.Option(False, "--all", help="Verify everything (same as signatures)."),
    _signatures: bool = typer.Option(False, "--signatures", help="Verify signatures."),
    parallel: int | None = typer.Option(
        None, "--parallel", min=1, help="Worker processes (default: one per core; 1 verifies in this process)."),
) -> None:
    """Verify package signatures exactly as `dotnet nuget verify` does."""
    level = render_text.Verbosity.parse(verbosity)
    mode = revocation_mode(revocation)
    try:
        settings = NuGetSettings.load(configfile=configfile, cwd=Path.cwd(), home=Path.home())
        policy = verify_command_policy(settings, certificate_fingerprint)
    except NusealError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    setup = VerificationSetup(policy, trust_store_or_exit(trust_roots, timestamp_roots), mode, revocation_timeout)
    paths, missing = expand_paths(packages)
    with batch_progress(len(paths), "Verifying") as advance:

        def show(verdict: PackageVerdict) -> None:
            if not as_json:
                for line in render_text.package_lines(verdict, level):
                    typer.echo(line)
            advance(Path(verdict.path).name)

        verdicts = verify_batch(paths, setup, now=datetime.now(UTC), on_verdict=show,
                                parallel=parallel if parallel is not None else default_workers())
    for pattern in missing:
        verdicts.append(missing_verdict(pattern))
        if not as_json:
            typer.echo(f"error: File does not exist ({pattern}).", err=True)
    if as_json:
        sys.stdout.write(render_json.dumps(render_json.verify_document(verdicts)) + "\n")
    raise typer.Exit(exit_code(verdicts))


@app.command("inspect")
def inspect_command(
    package: Path = typer.Argument(..., help="A .nupkg or a .signature.p7s file."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Show everything inside a package signature: certificates, attributes, timestamps, countersignature."""
    try:
        lines, document = inspect_lines(package)
    except NusealError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except OSError as exc:
        typer.echo(f"error: cannot read '{package}': {exc.strerror}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        sys.stdout.write(render_json.dumps(document) + "\n")
    else:
        for line in lines:
            typer.echo(line)
