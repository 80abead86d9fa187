"""Options several commands share (trust roots, revocation, JSON), defined once so their names and help agree."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from nuseal.enums import RevocationMode
from nuseal.errors import NusealError
from nuseal.x509.roots import TrustStore, trust_store_from_files

#: NuGet's environment variable for the revocation mode (spec §6.2).
REVOCATION_ENV = "NUGET_CERT_REVOCATION_MODE"

TRUST_ROOTS = typer.Option(None, "--trust-roots", help="PEM bundle of trusted code-signing roots.")
TIMESTAMP_ROOTS = typer.Option(None, "--timestamp-roots", help="PEM bundle of trusted timestamping roots.")
REVOCATION_MODE = typer.Option(
    None, "--revocation-mode", help=f"online or offline (default: ${REVOCATION_ENV} or online)."
)
REVOCATION_TIMEOUT = typer.Option(10.0, "--revocation-timeout", help="Seconds per OCSP/CRL request.")
JSON = typer.Option(False, "--json", help="Print one JSON document instead of text.")


def revocation_mode(option: str | None) -> RevocationMode:
    value = option if option is not None else os.environ.get(REVOCATION_ENV, "online")
    try:
        return RevocationMode(value.strip().lower())
    except ValueError:
        raise typer.BadParameter(f"revocation mode must be online or offline, got {value!r}") from None


def trust_store_or_exit(trust_roots: Path | None, timestamp_roots: Path | None) -> TrustStore:
    """The default roots with either part replaced by a PEM bundle; a bad bundle exits 1 with the reason."""
    try:
        return trust_store_from_files(trust_roots, timestamp_roots)
    except NusealError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
