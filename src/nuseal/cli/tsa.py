"""``nuseal tsa serve``: run nuseal's RFC 3161 timestamp authority over HTTP."""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from pathlib import Path

import typer

from nuseal.cli.base import command, fail, group
from nuseal.cli.options import existing_file
from nuseal.timestamp.tsa import TimestampAuthority, serve
from nuseal.x509.tools import load_certificate_file

tsa_app = group("tsa", "Run an RFC 3161 timestamp authority.")


def _oid(text: str) -> str:
    if not re.fullmatch(r"[0-2](\.(0|[1-9][0-9]*))+", text):
        raise typer.BadParameter(f"{text!r} is not a dotted object identifier such as 1.2.3.4.1")
    return text


def _utc_now() -> datetime:
    return datetime.now(UTC)


@command(tsa_app, "serve")
def serve_command(
    certificate_path: Path = typer.Option(
        ..., "--certificate-path", metavar="FILE", help="PFX, or PEM with the private key and the chain."
    ),
    certificate_password: str | None = typer.Option(
        None, "--certificate-password", metavar="PASSWORD", help="Password of the PFX file or of the PEM key."
    ),
    host: str = typer.Option("127.0.0.1", "--host", metavar="HOST", help="Address to listen on."),
    port: int = typer.Option(0, "--port", metavar="PORT", min=0, max=65535, help="0 lets the system choose."),
    policy: str = typer.Option(
        "1.2.3.4.1", "--policy", metavar="OID", parser=_oid, help="TSA policy OID written in every token."),
) -> None:
    """Serve POST application/timestamp-query until interrupted (Ctrl+C)."""
    loaded = load_certificate_file(existing_file(certificate_path, "Certificate file"), certificate_password)
    if loaded.key is None:
        fail(f"The file '{certificate_path}' has no private key for the TSA certificate.")
    authority = TimestampAuthority(loaded.certificate, loaded.key, loaded.others, clock=_utc_now, policy_oid=policy)

    def ready(server: ThreadingHTTPServer) -> None:
        bound_host, bound_port = server.server_address[:2]
        typer.echo(f"Timestamp authority listening on http://{bound_host!s}:{bound_port}/", err=False)

    def log(line: str) -> None:
        # One write per request, without typer.echo's per-call stream and colour checks (a token costs ~1 ms).
        sys.stderr.write(line + "\n")
        sys.stderr.flush()

    try:
        serve(authority, host, port, log=log, ready=ready)
    except OSError as exc:
        fail(f"Cannot listen: {exc.strerror or exc} ({host}:{port})")
    except KeyboardInterrupt:
        typer.echo("Stopped.", err=True)
