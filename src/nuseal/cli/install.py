"""``nuseal install``: download from NuGet V3 feeds, verify as restore does, then extract (spec §6.1-6.3, §8)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from nuseal.cli.base import app, command
from nuseal.cli.options import (
    ALLOW_INSECURE_LOOPBACK,
    CONFIGFILE,
    JSON,
    TRUST,
    TrustArgs,
    parse_http_url,
    parse_timeout,
)
from nuseal.client.install import InstalledPackage, InstallError, InstallRequest, ProgressFactory, install
from nuseal.client.source import FeedSource, ProgressCallback
from nuseal.errors import NusealError
from nuseal.findings import Finding, Severity
from nuseal.render import json as render_json
from nuseal.trust.nuget_config import NuGetSettings
from nuseal.trust.policy_builder import policy_from_config


def _progress_factory(progress: Progress) -> ProgressFactory:
    def progress_for(label: str) -> ProgressCallback:
        task = progress.add_task(label, total=None)

        def update(done: int, total: int | None) -> None:
            progress.update(task, completed=done, total=total)

        return update

    return progress_for


@command(app, "install", TRUST)
def install_command(
    package_id: str = typer.Argument(..., metavar="ID", help="The package id."),
    version: str | None = typer.Option(None, "--version", metavar="VERSION", help="Exact version (default: highest)."),
    source: list[str] = typer.Option(
        [], "--source", "-s", metavar="URL", parser=parse_http_url,
        help="V3 service index (repeatable; default: the nuget.config sources)."),
    output: Path = typer.Option(
        Path("packages"), "-o", "--output", metavar="FOLDER", help="Output folder (global-packages layout)."),
    configfile: Path | None = CONFIGFILE,
    prerelease: bool = typer.Option(False, "--prerelease", help="Allow prerelease versions for the package."),
    ignore_dependencies: bool = typer.Option(False, "--ignore-dependencies", help="Install the package only."),
    allow_insecure_loopback: bool = ALLOW_INSECURE_LOOPBACK,
    timeout: float = typer.Option(
        "60", "--timeout", metavar="SECONDS", parser=parse_timeout, help="Time limit per feed request."),
    as_json: bool = JSON,
    *,
    trust: TrustArgs,
) -> None:
    """Install a package and its dependencies from NuGet V3 feeds.

    Signatures are verified as restore does, before anything is extracted.
    """
    err = Console(stderr=True)
    config_warnings: list[Finding] = []
    settings = NuGetSettings.load(configfile=configfile, cwd=Path.cwd(), home=Path.home())
    policy = policy_from_config(settings, warnings=config_warnings)
    setup = trust.setup(policy)
    urls = source or [s.url for s in settings.package_sources()]
    for warning in config_warnings:
        typer.echo(f"warn : {warning.code.value}: {warning.message}", err=True)
    request = InstallRequest(package_id, version, prerelease, ignore_dependencies)
    installed: list[InstalledPackage] = []
    failure: NusealError | None = None
    with httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0))) as client, \
            setup.open() as context:
        sources = [FeedSource(client, url, allow_insecure_loopback=allow_insecure_loopback,
                              timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0))) for url in urls]
        progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                            console=err, disable=as_json or not err.is_terminal, transient=True)
        try:
            with progress:
                installed = install(request, sources=sources, output=output, policy=setup.policy,
                                    trust=context, now=datetime.now(UTC),
                                    progress_for=_progress_factory(progress))
        except NusealError as exc:
            failure = exc
    if as_json:
        _write_json(installed, failure)
    else:
        _write_text(installed, failure)
    raise typer.Exit(1 if failure else 0)


#: nuseal's one prefix style for errors and warnings (dotnet's logger prefixes), on every command.
_PREFIX = {Severity.ERROR: "error: ", Severity.WARNING: "warn : "}


def _write_text(installed: list[InstalledPackage], failure: NusealError | None) -> None:
    if isinstance(failure, InstallError):
        for finding in failure.findings:
            typer.echo(f"{_PREFIX.get(finding.severity, '')}{finding.message}", err=True)
        return
    if failure is not None:
        typer.echo(f"error: {failure}", err=True)
        return
    for package in installed:
        for warning in package.warnings:
            typer.echo(f"warn : {warning.message}", err=True)
        state = "already installed" if package.already_installed else "installed"
        typer.echo(f"{package.id} {package.version} {state} in {package.path}")


def _write_json(installed: list[InstalledPackage], failure: NusealError | None) -> None:
    sys.stdout.write(render_json.dumps(render_json.install_document(installed, failure)) + "\n")
