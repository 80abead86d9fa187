"""``nuseal cert``: create a self-issued code-signing (or TSA) certificate, export its ``.cer``, describe one."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import typer

from nuseal.cli.base import command, fail, group
from nuseal.cli.options import JSON, existing_file
from nuseal.render.text import format_time
from nuseal.x509 import tools

cert_app = group("cert", "Create, export and inspect signing certificates.")


def _writable(path: Path, force: bool) -> None:
    """Refuse a target in a missing folder, a folder, or (without ``--force``) an existing file."""
    if not path.parent.is_dir():
        fail(f"The folder '{path.parent}' for '{path}' does not exist.")
    if path.is_dir():
        fail(f"The path is a directory, not a file ({path}).")
    if path.exists() and not force:
        fail(f"The file already exists; use --force to replace it ({path}).")


PASSWORD = typer.Option(None, "--password", metavar="PASSWORD", help="Password of the .pfx or of the PEM key.")
SOURCE = typer.Argument(..., metavar="FILE", help="A .pfx/.p12, PEM or DER certificate file.")
FORCE = typer.Option(False, "--force", help="Replace files that already exist.")


def _key_size(text: str) -> int:
    if text not in ("2048", "3072", "4096"):
        raise typer.BadParameter(f"{text!r} is not 2048, 3072 or 4096")
    return int(text)


@command(cert_app, "create")
def create(
    subject: str = typer.Option(..., "--subject", metavar="DN", help="Distinguished name, for example 'CN=Contoso'."),
    days: int = typer.Option(365, "--days", metavar="DAYS", min=1, help="Validity in days from now."),
    key_size: int = typer.Option("2048", "--key-size", metavar="BITS", parser=_key_size,
                                 help="RSA key size: 2048, 3072 or 4096."),
    timestamping: bool = typer.Option(
        False, "--timestamping", help="Make a TSA certificate (critical timeStamping EKU) instead."
    ),
    out: Path = typer.Option(..., "--out", metavar="FILE", help="The PKCS#12 (.pfx) file to write."),
    password: str | None = typer.Option(None, "--password", metavar="PASSWORD", help="Password protecting the .pfx."),
    cer: Path | None = typer.Option(None, "--cer", metavar="FILE", help="Also write the certificate as DER (.cer)."),
    force: bool = FORCE,
) -> None:
    """Create a self-issued certificate like PowerShell's New-SelfSignedCertificate -Type CodeSigningCert."""
    for path in (out, cer):
        if path is not None:
            _writable(path, force)
    try:
        certificate, key = tools.create_certificate(
            subject, now=datetime.now(UTC), days=days, key_size=key_size, timestamping=timestamping
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=["--subject"]) from None
    tools.write_atomically(out, tools.pfx_bytes(certificate, key, password))
    if cer is not None:
        tools.write_atomically(cer, tools.der_bytes(certificate))
    kind = "timestamping" if timestamping else "code signing"
    typer.echo(f"Created a self-issued {kind} certificate '{certificate.subject.rfc4514_string()}'.")
    typer.echo(f"SHA-256 fingerprint: {tools.fingerprint(certificate)}")
    typer.echo(f"Wrote {out}" + (f" and {cer}" if cer is not None else "") + ".")


def _load(path: Path, password: str | None) -> tools.LoadedCertificate:
    return tools.load_certificate_file(existing_file(path, "Certificate file"), password)


@command(cert_app, "export")
def export(
    source: Path = SOURCE,
    password: str | None = PASSWORD,
    out: Path = typer.Option(..., "--out", metavar="FILE", help="The DER .cer file to write."),
    force: bool = FORCE,
) -> None:
    """Export the certificate (not the key) as DER, the form a feed registers."""
    loaded = _load(source, password)
    _writable(out, force)
    tools.write_atomically(out, tools.der_bytes(loaded.certificate))
    typer.echo(f"Wrote {out} (SHA-256 fingerprint {tools.fingerprint(loaded.certificate)}).")


@command(cert_app, "show")
def show(
    source: Path = SOURCE,
    password: str | None = PASSWORD,
    as_json: bool = JSON,
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
        f"Valid from: {format_time(description.not_before)} to {format_time(description.not_after)}",
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
