"""``nuseal admin repo-cert``: the feed's repository certificates (add, list, activate, retire, revoke).

A contract for scripts outside the repository, like the rest of ``nuseal admin``: command names, output lines and
``--json`` documents are extended, never renamed. ``retire``/``revoke`` start (or resume) a re-signing run and
wake the workers; with ``--wait`` this command also works through the run itself (alongside any workers, leases
keep them apart), shows a progress bar on a terminal and ends with the report. Exit status 1 when packages
failed to re-sign (the report lists them with the reason).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from nuseal.cli import admin_group
from nuseal.cli import server_options as opt
from nuseal.cli.admin_group import admin_app
from nuseal.cli.base import command, group
from nuseal.cli.options import JSON
from nuseal.errors import NusealError

if TYPE_CHECKING:
    from nuseal.server.jobs.queue import JobQueue
    from nuseal.server.services.context import ServiceContext
    from nuseal.server.services.repository_certificates import RepositoryCertificateInfo
    from nuseal.server.services.rotation import RunReport

repo_app = group("repo-cert", "Repository certificates: the feed's repository signing keys, rotation, revocation.",
                 admin_app)

WAIT = typer.Option(False, "--wait", help="Work through the re-signing here too, show progress, print the report.")
TIMEOUT = typer.Option(
    None, "--timeout", metavar="SECONDS", min=1, help="With --wait: give up waiting after this many seconds."
)
FINGERPRINT = typer.Argument(..., metavar="FINGERPRINT", help="SHA-256 fingerprint (64 hex digits).")
_POLL_SECONDS = 0.5


def _date(moment: datetime) -> str:
    return moment.astimezone(UTC).date().isoformat()


def _line(info: RepositoryCertificateInfo) -> str:
    listed = "listed" if info.listed else "unlisted"
    development = "  (development)" if info.development else ""
    return (f"{info.sha256}  {info.state:7}  {listed:8}  served {info.served_packages}  "
            f"valid {_date(info.not_before)}..{_date(info.not_after)}  {info.subject}{development}")  # fmt: skip


@command(repo_app, "add")
def add(
    ctx: typer.Context,
    file: Path | None = typer.Argument(None, metavar="FILE", help="PFX/P12, or PEM with the key and certificates."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the file's password from stdin."),
    timestamper: str = typer.Option(
        ..., "--timestamper", metavar="URL", help="RFC 3161 timestamp service URL for its signatures."
    ),
    certificate_path: Path | None = typer.Option(
        None, "--certificate-path", metavar="FILE",
        help="With --pkcs11-*: PEM certificate chain of the key (default: the token's).",
    ),
    pkcs11_module: Path | None = typer.Option(None, "--pkcs11-module", metavar="FILE", help="PKCS#11 module (.so)."),
    pkcs11_token: str | None = typer.Option(None, "--pkcs11-token", metavar="LABEL", help="PKCS#11 token label."),
    pkcs11_key: str | None = typer.Option(
        None, "--pkcs11-key", metavar="LABEL", help="Key label, or id:HEX for a key id."
    ),
) -> None:
    """Add a repository certificate and its key; it is listed at once, and signs once activated.

    The key is stored in the database sealed with the key-encryption secret (NUSEAL_REPOSITORY_KEY_SECRET), or, on a
    PKCS#11 token, as a reference (every worker reads the PIN from NUSEAL_REPOSITORY_PKCS11_PIN).
    """
    from cryptography import x509

    from nuseal.server.services import repository_certificates as repo

    context = admin_group.context(ctx)
    pkcs11_given = (pkcs11_module, pkcs11_token, pkcs11_key) != (None, None, None)
    if (file is None) == (not pkcs11_given):
        opt.fail("give a certificate FILE, or --pkcs11-module, --pkcs11-token and --pkcs11-key (not both)")
    if file is not None:
        password = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
        signer = repo.load_file_signer(file, password)
        added = repo.add_certificate(context, admin_group.operator(), signer, timestamper_url=timestamper)
    else:
        if pkcs11_module is None or pkcs11_token is None or pkcs11_key is None:
            opt.fail("--pkcs11-module needs --pkcs11-token and --pkcs11-key")
        label, key_id = (None, pkcs11_key[3:]) if pkcs11_key.startswith("id:") else (pkcs11_key, None)
        reference = repo.Pkcs11Reference(pkcs11_module, pkcs11_token, label, key_id)
        chain: tuple[x509.Certificate, ...] = ()
        if certificate_path is not None:
            chain = tuple(repo.load_file_certificates(certificate_path))
        token_signer = repo.open_pkcs11_signer(context, reference, chain)
        try:
            added = repo.add_certificate(context, admin_group.operator(), token_signer, timestamper_url=timestamper,
                                         pkcs11=reference)  # fmt: skip
        finally:
            token_signer.close()
    for warning in added.warnings:
        typer.echo(f"warning: {warning.code.value}: {warning.message}", err=True)
    info = added.info
    typer.echo(f"Added repository certificate {info.sha256} ({info.subject}), listed in RepositorySignatures; "
               f"activate it with 'nuseal admin repo-cert activate {info.sha256}'.")  # fmt: skip


@command(repo_app, "list")
def list_command(ctx: typer.Context, as_json: bool = JSON) -> None:
    """List the repository certificates: fingerprint, state, listed or not, served packages, validity, subject."""
    from nuseal.server.services import repository_certificates as repo

    context = admin_group.context(ctx)
    found = repo.list_certificates(context)
    if as_json:
        admin_group.print_json({"certificates": [info.to_dict() for info in found]})
        return
    if not found:
        typer.echo("No repository certificates.")
    for info in found:
        typer.echo(_line(info))


@command(repo_app, "activate")
def activate(ctx: typer.Context, fingerprint: str = FINGERPRINT) -> None:
    """Sign new pushes (and re-signing) with this certificate; the previously active one stays listed."""
    from nuseal.server.services import repository_certificates as repo
    from nuseal.server.services import rotation

    context = admin_group.context(ctx)
    info, changed = repo.activate(context, admin_group.operator(), fingerprint)
    waiting = rotation.running_runs(context)
    if changed and waiting:  # runs that waited for a certificate to sign with
        queue = _queue(context)
        for run_id in waiting:
            queue.enqueue_resign(run_id)
    typer.echo(f"Activated repository certificate {info.sha256}: new pushes are signed with it." if changed
               else f"Repository certificate {info.sha256} already is the active one.")  # fmt: skip


@command(repo_app, "retire")
def retire(ctx: typer.Context, fingerprint: str = FINGERPRINT, wait: bool = WAIT, timeout: int | None = TIMEOUT,
           as_json: bool = JSON) -> None:  # fmt: skip
    """Rotation: re-sign its packages with the active certificate, then unlist it (clients never see a gap)."""
    from nuseal.server.services import rotation

    _run_command(ctx, rotation.retire, fingerprint, wait=wait, timeout=timeout, as_json=as_json)


@command(repo_app, "revoke")
def revoke(ctx: typer.Context, fingerprint: str = FINGERPRINT, wait: bool = WAIT, timeout: int | None = TIMEOUT,
           as_json: bool = JSON) -> None:  # fmt: skip
    """Key compromise: unlist it now (clients stop trusting it), then re-sign its packages with the active one."""
    from nuseal.server.services import rotation

    _run_command(ctx, rotation.revoke, fingerprint, wait=wait, timeout=timeout, as_json=as_json)


def _queue(context: ServiceContext) -> JobQueue:
    from nuseal.server.jobs.queue import JobQueue, open_huey

    return JobQueue(open_huey(context.settings))


def _run_command(ctx: typer.Context, start: Callable[..., RunReport], fingerprint: str, *, wait: bool,
                 timeout: int | None, as_json: bool) -> None:  # fmt: skip
    from nuseal.server.jobs.queue import RESIGN_FANOUT

    context = admin_group.context(ctx)
    report = start(context, admin_group.operator(), fingerprint)
    if not report.completed:
        _queue(context).enqueue_resign(report.run_id, copies=RESIGN_FANOUT)
    verb = "Retiring" if start.__name__ == "retire" else "Revoking"
    if not as_json:
        target = report.active_certificate or "the active certificate (none yet: activate one)"
        typer.echo(f"{verb} {report.certificate_sha256}: {report.total} package(s) to re-sign with {target} "
                   f"(run {report.run_id}).")  # fmt: skip
    if wait and not report.completed:
        report = _wait(context, report, timeout)
    if as_json:
        admin_group.print_json({"report": report.to_dict(context.now())})
    else:
        _print_report(context, report)
    if report.failed:
        raise typer.Exit(1)


def _print_report(context: ServiceContext, report: RunReport) -> None:
    if not report.completed:
        typer.echo(f"Run {report.run_id} goes on in the workers: {report.done} of {report.done + report.remaining} "
                   f"done ('repo-cert {report.reason} {report.certificate_sha256} --wait' follows it).")  # fmt: skip
        return
    seconds = report.duration(context.now()).total_seconds()
    typer.echo(f"Run {report.run_id} ({report.reason} {report.certificate_sha256}): re-signed {report.resigned} of "
               f"{report.total} package(s), {report.failed} failed, in {seconds:.1f} s.")  # fmt: skip
    typer.echo(f"Certificate {report.certificate_sha256} is "
               + ("still listed in RepositorySignatures (packages still carry it)." if report.certificate_listed
                  else "no longer listed in RepositorySignatures."))  # fmt: skip
    for failure in report.failures:
        typer.echo(f"  failed: {failure.package_id} {failure.version}: {failure.reason}")


def _wait(context: ServiceContext, report: RunReport, timeout: int | None) -> RunReport:
    """Work through the run here (while this process can sign) and follow it until it completes."""
    from nuseal.server.jobs.runtime import make_runtime
    from nuseal.server.services import rotation
    from nuseal.server.services.dev_signing import stop_local_tsas

    runtime = make_runtime(context, context.settings.base_url())
    deadline = None if timeout is None else time.monotonic() + timeout
    can_sign = True
    try:
        with _progress(report.done + report.remaining) as update:
            while not report.completed:
                claimed = 0
                if can_sign:
                    try:
                        claimed = rotation.process_batch(context, runtime.keyring, report.run_id,
                                                         service_index_url=runtime.service_index_url).claimed
                    except NusealError as exc:  # this process cannot sign: the workers still can
                        can_sign = False
                        typer.echo(f"warning: this process cannot re-sign ({exc}); waiting for the workers", err=True)
                report = rotation.run_report(context, report.run_id)
                update(report.done, report.done + report.remaining)
                if report.completed:
                    break
                if deadline is not None and time.monotonic() > deadline:
                    opt.fail(f"run {report.run_id} is not done after {timeout} s ({report.done} of "
                             f"{report.done + report.remaining}); it goes on in the workers")  # fmt: skip
                if not claimed:
                    rotation.finalize(context, report.run_id)
                    time.sleep(_POLL_SECONDS)
    finally:
        runtime.close()
        stop_local_tsas()
    return report


@contextlib.contextmanager
def _progress(total: int) -> Iterator[Callable[[int, int], None]]:
    """``update(done, total)``; a rich bar on stderr when it is a terminal (transient: the report stays)."""
    if not sys.stderr.isatty():
        yield lambda done, total: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn("Re-signing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=Console(file=sys.stderr), transient=True)  # fmt: skip
    task = progress.add_task("resign", total=total)
    with progress:
        yield lambda done, total: progress.update(task, completed=done, total=total)
