"""``nuseal verify`` and ``nuseal inspect``: parse options, call the engine, render, exit (spec §6.8, §7.2).

The library is imported inside the commands, not here: ``nuseal verify --help`` and a command line that does not
parse never load cryptography, the CMS parser or lxml (start-up, docs/performance.md).
"""

from __future__ import annotations

import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from nuseal.cli.base import app, command
from nuseal.cli.options import CONFIGFILE, JSON, TRUST, VERBOSITY, TrustArgs, existing_file, parse_sha256_fingerprint
from nuseal.cli.paths import expand, prefetch_hashes
from nuseal.cli.progress import batch_progress
from nuseal.codes import NuCode
from nuseal.parallel import default_workers
from nuseal.render import text as render_text
from nuseal.render.text import Verbosity

if TYPE_CHECKING:
    from nuseal.trust.nuget_config import NuGetSettings
    from nuseal.verify.policy import VerificationPolicy
    from nuseal.verify.result import PackageVerdict


class ConfigTrust:
    """Which nuget.config files the trusted signers come from, and whether they decided a verdict.

    They decide it when the trustedSigners allow list refused the package (NU3034) or when a signer is trusted
    only through its ``allowUntrustedRoot`` entry.
    """

    def __init__(self, settings: NuGetSettings, policy: VerificationPolicy) -> None:
        origins = [str(origin.path) for _, origin in settings.trusted_signers_with_origin()]
        self.files = list(dict.fromkeys(origins))
        # The trustedSigners list comes first (nuseal.trust.policy_builder.policy_from_config).
        config_list = policy.allow_lists[0] if policy.allow_lists else None
        self._messages = {m for m in (config_list.no_match_message, config_list.empty_message) if m} \
            if config_list is not None else set()
        self._untrusted_roots = {e.fingerprint.upper() for e in config_list.entries if e.allow_untrusted_root} \
            if config_list is not None else set()

    def note(self, verdict: PackageVerdict) -> str | None:
        """A line naming the files when their trusted signers decided ``verdict``; None otherwise."""
        if not self.files:
            return None
        refused = any(f.code is NuCode.NU3034 and f.message in self._messages for f in verdict.findings)
        rooted = any(s.certificate is not None and s.certificate.sha256.upper() in self._untrusted_roots
                     for s in verdict.signatures)
        if not (refused or rooted):
            return None
        return "Trusted signers from: " + ", ".join(self.files)


@command(app, "verify", TRUST)
def verify_command(
    packages: list[str] = typer.Argument(..., metavar="PACKAGE...", help="Packages to verify: paths or globs."),
    certificate_fingerprint: list[str] = typer.Option(
        [], "--certificate-fingerprint", metavar="SHA256", parser=parse_sha256_fingerprint,
        help="SHA-256 fingerprint the primary signer must match (repeatable)."),
    configfile: Path | None = CONFIGFILE,
    verbosity: Verbosity = VERBOSITY,
    as_json: bool = JSON,
    _all: bool = typer.Option(False, "--all", help="Verify everything (the same as --signatures)."),
    _signatures: bool = typer.Option(False, "--signatures", help="Verify signatures (the only check there is)."),
    parallel: int | None = typer.Option(
        None, "--parallel", metavar="N", min=1,
        help="Worker processes (default: one per core; 1 verifies in this process)."),
    *,
    trust: TrustArgs,
) -> None:
    """Verify package signatures as `dotnet nuget verify` does.

    The exit code is 0 only when every package is valid.
    """
    paths, unresolved = expand(packages)
    workers = parallel if parallel is not None else default_workers()
    prefetch_hashes(paths, workers)  # a large package is hashed on another core while the library loads
    from nuseal.trust.nuget_config import NuGetSettings
    from nuseal.trust.policy_builder import verify_command_policy
    from nuseal.verify.batch import exit_code, missing_verdict, verify_batch

    settings = NuGetSettings.load(configfile=configfile, cwd=Path.cwd(), home=Path.home())
    policy = verify_command_policy(settings, certificate_fingerprint)
    config_trust = ConfigTrust(settings, policy)
    setup = trust.setup(policy)
    with batch_progress(len(paths), "Verifying") as advance:

        def show(verdict: PackageVerdict) -> None:
            if not as_json:
                _print_verdict(verdict, verbosity, config_trust.note(verdict))
            advance(Path(verdict.path).name)

        verdicts = verify_batch(paths, setup, now=datetime.now(UTC), on_verdict=show,
                                parallel=workers)
    for missing in unresolved:
        verdicts.append(replace(missing_verdict(missing.pattern), error=missing.message))
        if not as_json:
            typer.echo(f"error: {missing.message}", err=True)
    if as_json:
        from nuseal.render import json as render_json

        sys.stdout.write(render_json.dumps(render_json.verify_document(verdicts)) + "\n")
    raise typer.Exit(exit_code(verdicts))


def _print_verdict(verdict: PackageVerdict, verbosity: Verbosity, config_note: str | None) -> None:
    lines = render_text.package_lines(verdict, verbosity)
    if config_note is not None and verbosity is not Verbosity.QUIET:
        lines.insert(len(lines) - 1, config_note)  # before the result line
    elif config_note is not None and not verdict.valid:
        lines.append(config_note)  # quiet: only when it explains a failure
    for line in lines:
        typer.echo(line)


@command(app, "inspect")
def inspect_command(
    package: Path = typer.Argument(..., metavar="FILE", help="A .nupkg or a .signature.p7s file."),
    as_json: bool = JSON,
) -> None:
    """Show everything inside a package signature.

    Certificates, signed attributes, timestamps and the repository countersignature.
    """
    from nuseal.render import json as render_json
    from nuseal.render.inspect import inspect_lines

    lines, document = inspect_lines(existing_file(package))
    if as_json:
        sys.stdout.write(render_json.dumps(document) + "\n")
    else:
        for line in lines:
            typer.echo(line)
