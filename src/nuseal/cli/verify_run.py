"""What ``nuseal verify`` does once its command line is parsed, without the CLI framework: expand the arguments,
build the policy and the trust setup, verify, print, and return the exit code (spec §6.8, §7.2).

Both front doors call :func:`run`: the typer command (``nuseal.cli.verify``: help, usage errors, anything unusual)
and the lean path (``nuseal.cli.lean``: an ordinary command line, parsed from the same declarations). The library
is imported inside :func:`run`, after the first package's hash has started (``nuseal.cli.prefetch``).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from nuseal.cli import collector, prefetch, x509_import
from nuseal.cli.declare import TrustArgs, VerifyArgs
from nuseal.cli.guard import echo
from nuseal.cli.paths import expand
from nuseal.cli.progress import batch_progress
from nuseal.codes import NuCode
from nuseal.parallel import default_workers
from nuseal.record import replace
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


def run(args: VerifyArgs, trust: TrustArgs) -> int:
    """Verify ``args.packages``; the exit code is 0 only when every package is valid."""
    with collector.after_start_up() as start_collecting:
        paths, unresolved = expand(args.packages)
        workers = args.parallel if args.parallel is not None else default_workers()
        prefetch.for_paths(paths, workers)  # a large package is hashed on another core while the library loads
        x509_import.load()  # first: without email.utils, which a verification never uses
        from nuseal.trust.nuget_config import NuGetSettings
        from nuseal.trust.policy_builder import verify_command_policy
        from nuseal.verify.batch import exit_code, missing_verdict, verify_batch

        settings = NuGetSettings.load(configfile=args.configfile, cwd=Path.cwd(), home=Path.home())
        policy = verify_command_policy(settings, args.certificate_fingerprint)
        config_trust = ConfigTrust(settings, policy)
        setup = trust.setup(policy)
        start_collecting()
        with batch_progress(len(paths), "Verifying") as advance:

            def show(verdict: PackageVerdict) -> None:
                if not args.as_json:
                    _print_verdict(verdict, args.verbosity, config_trust.note(verdict))
                advance(Path(verdict.path).name)

            verdicts = verify_batch(paths, setup, now=datetime.now(UTC), on_verdict=show, parallel=workers)
    for missing in unresolved:
        verdicts.append(replace(missing_verdict(missing.pattern), error=missing.message))
        if not args.as_json:
            echo(f"error: {missing.message}", err=True)
    if args.as_json:
        from nuseal.render import json as render_json

        sys.stdout.write(render_json.dumps(render_json.verify_document(verdicts)) + "\n")
    return exit_code(verdicts)


def _print_verdict(verdict: PackageVerdict, verbosity: Verbosity, config_note: str | None) -> None:
    lines = render_text.package_lines(verdict, verbosity)
    if config_note is not None and verbosity is not Verbosity.QUIET:
        lines.insert(len(lines) - 1, config_note)  # before the result line
    elif config_note is not None and not verdict.valid:
        lines.append(config_note)  # quiet: only when it explains a failure
    for line in lines:
        echo(line)
