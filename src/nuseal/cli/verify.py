"""``nuseal verify`` and ``nuseal inspect``: parse options, call the engine, render, exit (spec §6.8, §7.2)."""

from __future__ import annotations

import glob
import sys
from dataclasses import replace
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
from nuseal.codes import Messages
from nuseal.errors import NusealError
from nuseal.render import json as render_json
from nuseal.render import text as render_text
from nuseal.render.inspect import inspect_lines
from nuseal.trust.nuget_config import NuGetSettings
from nuseal.trust.trusted_signers import policy_from_config
from nuseal.verify.engine import TrustContext, verify_package
from nuseal.verify.policy import (
    AllowList,
    AllowListEntry,
    HashAlgorithmName,
    Placement,
    RevocationMode,
    SignatureKind,
    VerificationPolicy,
)
from nuseal.verify.result import PackageVerdict
from nuseal.x509.revocation import RevocationChecker


def resolve_packages(patterns: list[str]) -> tuple[list[Path], list[str]]:
    """Paths and globs → existing files (sorted per pattern) and the patterns that matched nothing."""
    found: list[Path] = []
    missing: list[str] = []
    for pattern in patterns:
        if glob.has_magic(pattern):
            matches = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
        else:
            matches = [Path(pattern)] if Path(pattern).is_file() else []
        if not matches:
            missing.append(pattern)
        found.extend(matches)
    return found, missing


def build_policy(configfile: Path | None, fingerprints: list[str], mode: RevocationMode) -> VerificationPolicy:
    """The verify-command preset, trustedSigners from nuget.config, then the ``--certificate-fingerprint`` list."""
    settings = NuGetSettings.load(configfile=configfile, cwd=Path.cwd(), home=Path.home())
    policy = policy_from_config(settings, VerificationPolicy.verify_command())
    lists = list(policy.allow_lists)
    if fingerprints:
        entries = tuple(
            AllowListEntry(fp.strip(), HashAlgorithmName.SHA256,
                           frozenset({SignatureKind.AUTHOR, SignatureKind.REPOSITORY}), Placement.PRIMARY)
            for fp in fingerprints)
        lists.append(AllowList(entries, False, "", Messages.NOT_IN_FINGERPRINT_LIST, "--certificate-fingerprint"))
    return replace(policy, allow_lists=tuple(lists), revocation_mode=mode)


def exit_code(verdicts: list[PackageVerdict]) -> int:
    """0 only when every package is valid and no error was reported (NuGet's exit-0-on-bad-zip quirk not copied)."""
    return 0 if verdicts and all(v.valid and not v.errors for v in verdicts) else 1


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
) -> None:
    """Verify package signatures exactly as `dotnet nuget verify` does."""
    level = render_text.Verbosity.parse(verbosity)
    mode = revocation_mode(revocation)
    try:
        policy = build_policy(configfile, certificate_fingerprint, mode)
    except NusealError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    store = trust_store_or_exit(trust_roots, timestamp_roots)
    paths, missing = resolve_packages(packages)
    verdicts: list[PackageVerdict] = []
    now = datetime.now(UTC)
    with RevocationChecker(mode, timeout=revocation_timeout) as checker:
        trust = TrustContext(store, checker)
        with batch_progress(len(paths), "Verifying") as advance:
            for path in paths:
                verdict = verify_package(path, policy=policy, trust=trust, now=now)
                verdicts.append(verdict)
                if not as_json:
                    for line in render_text.package_lines(verdict, level):
                        typer.echo(line)
                advance(path.name)
    for pattern in missing:
        verdicts.append(PackageVerdict(pattern, None, None, False, (), error=f"File does not exist ({pattern})."))
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
