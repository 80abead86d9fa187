"""``nuseal cert``: create a self-issued code-signing (or TSA) certificate, export its ``.cer``, describe one."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

import typer

from nuseal.cli.base import app
from nuseal.errors import NusealError
from nuseal.x509 import tools

cert_app = typer.Typer(
    name="cert",
    help="Create, export and inspect signing certificates.",
    no_args_is_help=True,
)
app.add_typer(cert_app, name="cert")


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def _require_parent(path: Path) -> None:
    if not path.parent.is_dir():
        _fail(f"The folder '{path.parent}' for '{path}' does not exist.")


@cert_app.command("create")
def create(
    subject: str = typer.Option(..., "--subject", help="Distinguished name, for example 'CN=Contoso'."),
    days: int = typer.Option(365, "--days", min=1, help="Validity in days from now."),
    key_size: int = typer.Option(2048, "--key-size", help="RSA key size: 2048, 3072 or 4096."),
    timestamping: bool = typer.Option(
        False, "--timestamping", help="Make a TSA certificate (critical timeStamping EKU) instead."
    ),
    out: Path = typer.Option(..., "--out", help="The PKCS#12 (.pfx) file to write."),
    password: str | None = typer.Option(None, "--password", help="Password protecting the .pfx."),
    cer: Path | None = typer.Option(None, "--cer", help="Also write the certificate as DER (.cer)."),
) -> None:
    """Create a self-issued certificate like PowerShell's New-SelfSignedCertificate -Type CodeSigningCert."""
    for path in (out, cer):
        if path is not None:
            _require_parent(path)
    try:
        certificate, key = tools.create_certificate(
            subject, now=datetime.now(UTC), days=days, key_size=key_size, timestamping=timestamping
        )
    except ValueError as exc:
        _fail(str(exc))
    try:
        tools.write_atomically(out, tools.pfx_bytes(certificate, key, password))
        if cer is not None:
            tools.write_atomically(cer, tools.der_bytes(certificate))
    except OSError as exc:
        _fail(f"Could not write the certificate: {exc}.")
    kind = "timestamping" if timestamping else "code signing"
    typer.echo(f"Created a self-issued {kind} certificate '{certificate.subject.rfc4514_string()}'.")
    typer.echo(f"SHA-256 fingerprint: {tools.fingerprint(certificate)}")
    typer.echo(f"Wrote {out}" + (f" and {cer}" if cer is not None else "") + ".")


def _load(path: Path, password: str | None) -> tools.LoadedCertificate:
    try:
        return tools.load_certificate_file(path, password)
    except NusealError as exc:
        _fail(exc.message)


@cert_app.command("export")
def export(
    source: Path = typer.Argument(..., help="A .pfx/.p12, PEM or DER certificate file."),
    password: str | None = typer.Option(None, "--password", help="Password of the .pfx or PEM key."),
    out: Path = typer.Option(..., "--out", help="The DER .cer file to write."),
) -> None:
    """Export the certificate (not the key) as DER, the form a feed registers."""
    loaded = _load(source, password)
    _require_parent(out)
    try:
        tools.write_atomically(out, tools.der_bytes(loaded.certificate))
    except OSError as exc:
        _fail(f"Could not write '{out}': {exc}.")
    typer.echo(f"Wrote {out} (SHA-256 fingerprint {tools.fingerprint(loaded.certificate)}).")


@cert_app.command("show")
def show(
    source: Path = typer.Argument(..., help="A .pfx/.p12, PEM or DER certificate file."),
    password: str | None = typer.Option(None, "--password", help="Password of the .pfx or PEM key."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Describe a certificate and whether NuGet would accept it to sign packages."""
    loaded = _load(source, password)
    description = tools.describe(loaded.certificate, datetime.now(UTC), has_private_key=loaded.key is not None)
    if as_json:
        typer.echo(json.dumps(description.to_dict(), indent=2))
        return
    ekus = description.extended_key_usages
    lines = [
        f"Subject: {description.subject}",
        f"Issuer: {description.issuer}",
        f"Serial number: {description.serial_number}",
        f"Valid from: {description.not_before.isoformat()} to {description.not_after.isoformat()}",
        f"SHA-256 fingerprint: {description.sha256_fingerprint}",
        f"SHA-1 fingerprint: {description.sha1_fingerprint}",
        f"Signature algorithm: {description.signature_algorithm}",
        f"Key: {description.key}",
        "Extended key usages: "
        + ("(none: valid for every usage)" if ekus is None else ", ".join(map(tools.eku_label, ekus))),
        f"Self-issued: {'yes' if description.self_issued else 'no'}",
        f"Private key: {'yes' if description.has_private_key else 'no'}",
    ]
    if description.can_sign:
        lines.append("NuGet signing: accepted")
    else:
        lines.append("NuGet signing: refused")
        lines.extend(f"  {p.code.value}: {p.message}" for p in description.problems)
    typer.echo("\n".join(lines))
