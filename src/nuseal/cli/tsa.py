"""``nuseal tsa serve``: run nuseal's RFC 3161 timestamp authority over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from pathlib import Path

import typer

from nuseal.cli.base import app
from nuseal.errors import NusealError
from nuseal.timestamp.tsa import TimestampAuthority, serve
from nuseal.x509.tools import load_certificate_file

tsa_app = typer.Typer(name="tsa", help="Run an RFC 3161 timestamp authority.", no_args_is_help=True)
app.add_typer(tsa_app, name="tsa")


def _utc_now() -> datetime:
    return datetime.now(UTC)


@tsa_app.command("serve")
def serve_command(
    certificate_path: Path = typer.Option(
        ..., "--certificate-path", help="PFX, or PEM with the private key and the chain."
    ),
    certificate_password: str | None = typer.Option(None, "--certificate-password"),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(0, "--port", min=0, max=65535, help="0 lets the system choose."),
    policy: str = typer.Option("1.2.3.4.1", "--policy", help="TSA policy OID written in every token."),
) -> None:
    """Serve POST application/timestamp-query until interrupted (Ctrl+C)."""
    try:
        loaded = load_certificate_file(certificate_path, certificate_password)
        if loaded.key is None:
            raise NusealError(f"The file '{certificate_path}' has no private key for the TSA certificate.")
        authority = TimestampAuthority(loaded.certificate, loaded.key, loaded.others, clock=_utc_now, policy_oid=policy)
    except NusealError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None

    def ready(server: ThreadingHTTPServer) -> None:
        bound_host, bound_port = server.server_address[:2]
        typer.echo(f"Timestamp authority listening on http://{bound_host!s}:{bound_port}/", err=False)

    def log(line: str) -> None:
        typer.echo(line, err=True)

    try:
        serve(authority, host, port, log=log, ready=ready)
    except OSError as exc:
        typer.echo(f"error: cannot listen on {host}:{port}: {exc.strerror}.", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.echo("Stopped.", err=True)
