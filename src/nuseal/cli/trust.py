"""``nuseal trust``: manage trusted signers in nuget.config, as ``dotnet nuget trust`` does (spec §7.3).

Subcommands: list (the default), author, repository, certificate, source, sync, remove. Every one takes
``--configfile`` and ``-v/--verbosity``. Output and error texts are NuGet's (``NuGet.Commands`` Strings).
This module is the only place that reads the working and home directories for trust settings.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit, urlunsplit

import httpx
import typer
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from nuseal.cli.base import app
from nuseal.cms.parse import PrimarySignature, RepositoryCountersignature, load_primary_signature
from nuseal.enums import HashAlgorithmName, SignatureKind
from nuseal.errors import NusealError
from nuseal.package import zipformat
from nuseal.trust.nuget_config import NuGetSettings
from nuseal.trust.repository_signatures import check_https, fetch_repository_signatures
from nuseal.trust.trusted_signers import SignerKind, TrustedCertificate, TrustedSigner

trust_app = typer.Typer(
    name="trust",
    help="Manage the trusted signers of NuGet configuration files (like 'dotnet nuget trust').",
    invoke_without_command=True,
    no_args_is_help=False,
)
app.add_typer(trust_app, name="trust")

# NuGet's texts (NuGet.Commands/Strings.resx).
NO_TRUSTED_SIGNERS = "There are no trusted signers."
REGISTERED = "Registered trusted signers:"
SIGNER_EXISTS = "A trusted signer '{0}' already exists."
REPO_EXISTS = "A trusted repository with the service index '{0}' already exists."
REPO_DOES_NOT_EXIST = "A trusted repository '{0}' does not exist."
NOT_SIGNED = "The package is not signed."
NOT_AUTHOR_SIGNED = "Unable to add trusted author. The package is not author signed."
NOT_REPO_SIGNED = "Unable to add trusted repository. The package is not repository signed or countersigned."
NOT_HTTPS = "The repository service index '{0}' is not a valid HTTPS url."
NO_RESOURCE = "Invalid certificate information from the service index '{0}'."
EMPTY_LIST = "The repository with the service index '{0}' does not list any trusted certificates."
UNAVAILABLE_SOURCE = "Source '{0}' does not exist or cannot be retrived."
UNSUPPORTED_ALGORITHM = "'{0}' is not a supported hash algorithm."
FINGERPRINT_EXISTS = (
    "The certificate finger you're trying to add is already in the certificate fingerprint list."
)
REMOVED = "Successfully removed the trusted signer '{0}'."
NONE_MATCHING = "No trusted signers with the name: '{0}' were found."
ADDED_AUTHOR = "Successfully added a trusted author '{0}'."
ADDED_REPOSITORY = "Successfully added a trusted repository '{0}'."
UPDATED = "Successfully updated the trusted signer '{0}'."
SYNCED = "Successfully synchronized the trusted repository '{0}'."

_VERBOSITIES = {"q": 0, "quiet": 0, "m": 1, "minimal": 1, "n": 2, "normal": 2, "d": 3, "detailed": 3,
                "diag": 4, "diagnostic": 4}

ConfigFileOpt = typer.Option(None, "--configfile", help="The NuGet configuration file to use.")
VerbosityOpt = typer.Option("normal", "-v", "--verbosity",
                            help="Verbosity: q[uiet], m[inimal], n[ormal], d[etailed], diag[nostic].")
AllowUntrustedRootOpt = typer.Option(False, "--allow-untrusted-root",
                                     help="Allow the certificate's chain to end in an untrusted root.")
OwnersOpt = typer.Option(None, "--owners", help="Semicolon-separated list of trusted owners.")
LoopbackOpt = typer.Option(False, "--allow-insecure-loopback",
                           help="Allow plain-http feeds on 127.0.0.1/localhost/[::1] (for tests only).")


class _Out:
    def __init__(self, verbosity: str) -> None:
        level = _VERBOSITIES.get(verbosity.lower())
        if level is None:
            _fail(f"Invalid verbosity '{verbosity}'.")
        self.level = level

    def minimal(self, text: str) -> None:
        if self.level >= 1:
            typer.echo(text)

    def detailed(self, text: str) -> None:
        if self.level >= 3:
            typer.echo(text)


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def _settings(configfile: Path | None) -> NuGetSettings:
    # The CLI, not the core, decides where "here" and "home" are.
    try:
        return NuGetSettings.load(configfile=configfile, cwd=Path.cwd(), home=Path.home())
    except NusealError as exc:
        _fail(exc.message)


def _save(settings: NuGetSettings) -> None:
    try:
        settings.save()
    except OSError as exc:
        _fail(f"Unable to write NuGet.Config: {exc}")


def _owners(values: list[str] | None) -> tuple[str, ...]:
    out: list[str] = []
    for value in values or []:
        out.extend(o.strip() for o in value.split(";") if o.strip())
    return tuple(out)


def _absolute_uri(url: str) -> str:
    """.NET ``Uri.AbsoluteUri``-like normal form: scheme and host lowercased, empty path becomes ``/``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.hostname:
        netloc = netloc.replace(parts.hostname, parts.hostname.lower(), 1) if parts.hostname else netloc
    return urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", parts.query, parts.fragment))


def _service_index(url: str, allow_insecure_loopback: bool) -> str:
    try:
        check_https(url, "service index", allow_insecure_loopback=allow_insecure_loopback)
    except NusealError:
        _fail(NOT_HTTPS.format(url))
    return _absolute_uri(url)


def _check_no_existing(settings: NuGetSettings, name: str, service_index: str | None) -> None:
    for signer in settings.trusted_signers():
        if signer.name == name:
            _fail(SIGNER_EXISTS.format(name))
        if (service_index is not None and signer.kind is SignerKind.REPOSITORY
                and (signer.service_index or "").lower() == service_index.lower()):
            _fail(REPO_EXISTS.format(service_index))


# -- list -----------------------------------------------------------------------------------------------
def format_signers(signers: list[TrustedSigner]) -> str:
    """NuGet's ``trust list`` text (``TrustedSignersCommandRunner.ListAllTrustedSignersAsync``)."""
    if not signers:
        return NO_TRUSTED_SIGNERS + "\n"
    # NuGet logs the header, then Environment.NewLine as its own message (a blank line plus the
    # logger's newline), then one message per signer whose lines end in newlines (so a blank line follows).
    out = [REGISTERED + "\n", "\n\n"]
    pad = " " * 6
    for i, signer in enumerate(signers, 1):
        lines = [f" {i}.".ljust(6) + f"{signer.name} [{signer.kind.value}]"]
        if signer.kind is SignerKind.REPOSITORY:
            lines.append(pad + f"Service Index: {signer.service_index}")
            if signer.owners:
                lines.append(pad + "Trusted owners: " + "; ".join(signer.owners))
        lines.append(pad + "Certificate fingerprint(s):")
        for cert in signer.certificates:
            mark = "[U] " if cert.allow_untrusted_root else ""
            lines.append(pad + "  " + f"{mark}{cert.algorithm.value} - {cert.fingerprint}")
        out.append("\n".join(lines) + "\n\n")
    return "".join(out)


def signers_to_json(signers: list[TrustedSigner]) -> dict[str, object]:
    return {
        "schema": 1,
        "trustedSigners": [
            {
                "name": s.name,
                "kind": s.kind.value,
                "serviceIndex": s.service_index,
                "owners": list(s.owners),
                "certificates": [
                    {"fingerprint": c.fingerprint, "hashAlgorithm": c.algorithm.value,
                     "allowUntrustedRoot": c.allow_untrusted_root}
                    for c in s.certificates
                ],
            }
            for s in signers
        ],
    }


def _list(configfile: Path | None, verbosity: str, as_json: bool = False) -> None:
    out = _Out(verbosity)
    signers = _settings(configfile).trusted_signers()
    if as_json:
        typer.echo(json.dumps(signers_to_json(signers), indent=2))
        return
    if out.level >= 1:
        typer.echo(format_signers(signers), nl=False)


@trust_app.callback()
def trust_main(
    ctx: typer.Context,
    configfile: Path | None = ConfigFileOpt,
    verbosity: str = VerbosityOpt,
) -> None:
    """Manage trusted signers. With no subcommand, lists them."""
    if ctx.invoked_subcommand is None:
        _list(configfile, verbosity)


@trust_app.command("list")
def list_command(
    configfile: Path | None = ConfigFileOpt,
    verbosity: str = VerbosityOpt,
    as_json: bool = typer.Option(False, "--json", help="Print the trusted signers as JSON."),
) -> None:
    """List the trusted signers of the configuration."""
    _list(configfile, verbosity, as_json)


# -- from a package ---------------------------------------------------------------------------------------
def _load_signature(package: Path) -> PrimarySignature:
    try:
        with package.open("rb") as f:
            layout = zipformat.read_layout(f)
            if not zipformat.has_signature_entry(layout):
                _fail(NOT_SIGNED)
            entry = zipformat.find_signature_entry(f, layout)
            der = zipformat.read_signature_bytes(f, entry)
        return load_primary_signature(der)
    except OSError as exc:
        _fail(f"Unable to read package '{package}': {exc.strerror or exc}")
    except NusealError as exc:
        _fail(str(exc))


def _sha256_upper(cert: x509.Certificate) -> str:
    der = cert.public_bytes(Encoding.DER)
    return hashlib.sha256(der).hexdigest().upper()


@trust_app.command("author")
def author_command(
    name: str = typer.Argument(..., metavar="NAME", help="Name of the trusted signer to add."),
    package: Path = typer.Argument(..., metavar="PACKAGE", help="A local author-signed .nupkg."),
    allow_untrusted_root: bool = AllowUntrustedRootOpt,
    configfile: Path | None = ConfigFileOpt,
    verbosity: str = VerbosityOpt,
) -> None:
    """Trust the author signing certificate of PACKAGE."""
    out = _Out(verbosity)
    settings = _settings(configfile)
    signature = _load_signature(package)
    # NuGet checks the name before it checks the signature type.
    _check_no_existing(settings, name, None)
    if signature.kind is not SignatureKind.AUTHOR or signature.signer_certificate is None:
        _fail(NOT_AUTHOR_SIGNED)
    fingerprint = _sha256_upper(signature.signer_certificate)
    cert = TrustedCertificate(fingerprint, HashAlgorithmName.SHA256, allow_untrusted_root)
    settings.add_trusted_signer(TrustedSigner(SignerKind.AUTHOR, name, (cert,)))
    _save(settings)
    out.detailed(ADDED_AUTHOR.format(name))


@trust_app.command("repository")
def repository_command(
    name: str = typer.Argument(..., metavar="NAME", help="Name of the trusted signer to add."),
    package: Path = typer.Argument(..., metavar="PACKAGE", help="A local repository-(counter)signed .nupkg."),
    allow_untrusted_root: bool = AllowUntrustedRootOpt,
    owners: list[str] | None = OwnersOpt,
    configfile: Path | None = ConfigFileOpt,
    verbosity: str = VerbosityOpt,
) -> None:
    """Trust the repository signing certificate of PACKAGE (primary signature or countersignature)."""
    out = _Out(verbosity)
    settings = _settings(configfile)
    signature = _load_signature(package)
    repo_sig: PrimarySignature | RepositoryCountersignature | None
    try:
        repo_sig = signature if signature.kind is SignatureKind.REPOSITORY else signature.countersignature()
    except NusealError as exc:
        _fail(str(exc))
    if repo_sig is None or repo_sig.signer_certificate is None:
        _fail(NOT_REPO_SIGNED)
    raw_index = repo_sig.service_index_url
    if not raw_index:
        _fail(NOT_REPO_SIGNED)
    service_index = _absolute_uri(raw_index)
    _check_no_existing(settings, name, service_index)
    fingerprint = _sha256_upper(repo_sig.signer_certificate)
    cert = TrustedCertificate(fingerprint, HashAlgorithmName.SHA256, allow_untrusted_root)
    settings.add_trusted_signer(
        TrustedSigner(SignerKind.REPOSITORY, name, (cert,), service_index, _owners(owners))
    )
    _save(settings)
    out.detailed(ADDED_REPOSITORY.format(name))


# -- by fingerprint -----------------------------------------------------------------------------------
@trust_app.command("certificate")
def certificate_command(
    name: str = typer.Argument(..., metavar="NAME", help="Name of the trusted signer to add or extend."),
    fingerprint: str = typer.Argument(..., metavar="FINGERPRINT", help="Certificate fingerprint (hex)."),
    algorithm: str = typer.Option("SHA256", "--algorithm", help="SHA256, SHA384 or SHA512."),
    allow_untrusted_root: bool = AllowUntrustedRootOpt,
    configfile: Path | None = ConfigFileOpt,
    verbosity: str = VerbosityOpt,
) -> None:
    """Add a certificate fingerprint to the signer NAME (creating a trusted author if there is none)."""
    out = _Out(verbosity)
    try:
        alg = HashAlgorithmName.parse(algorithm)
    except ValueError:
        _fail(UNSUPPORTED_ALGORITHM.format(algorithm))
    if not fingerprint:
        _fail("Property 'fingerprint' should not be null or empty.")
    settings = _settings(configfile)
    # NuGet quirk: the fingerprint is stored exactly as typed (no case change), see spec §6.4.
    cert = TrustedCertificate(fingerprint, alg, allow_untrusted_root)
    for signer in settings.trusted_signers():
        if signer.name == name:
            # NuGet compares certificate items by fingerprint, ordinal.
            if any(c.fingerprint == fingerprint for c in signer.certificates):
                _fail(FINGERPRINT_EXISTS)
            settings.update_trusted_signer(
                TrustedSigner(signer.kind, signer.name, (*signer.certificates, cert), signer.service_index,
                              signer.owners)
            )
            _save(settings)
            out.detailed(UPDATED.format(name))
            return
    settings.add_trusted_signer(TrustedSigner(SignerKind.AUTHOR, name, (cert,)))
    _save(settings)
    out.detailed(ADDED_AUTHOR.format(name))


# -- from a feed's RepositorySignatures resource -----------------------------------------------------
def _certificates_from_feed(
    service_index: str, allow_insecure_loopback: bool,
) -> tuple[TrustedCertificate, ...]:
    try:
        with httpx.Client(timeout=httpx.Timeout(30.0, connect=10.0)) as client:
            info = fetch_repository_signatures(
                client, service_index, allow_insecure_loopback=allow_insecure_loopback,
            )
    except NusealError as exc:
        _fail(exc.message)
    if info is None:
        _fail(NO_RESOURCE.format(service_index))
    if not info.certificates:
        _fail(EMPTY_LIST.format(service_index))
    # NuGet writes each listed fingerprint exactly as the feed published it (nuget.org publishes lowercase
    # hex), one <certificate> per SHA256/384/512 value present, allowUntrustedRoot false. We do the same:
    # allow-list matching is case-insensitive, so the case does not matter for trust.
    return tuple(
        TrustedCertificate(fp, alg, False)
        for cert in info.certificates
        for alg in HashAlgorithmName
        if (fp := cert.fingerprint(alg))
    )


@trust_app.command("source")
def source_command(
    name: str = typer.Argument(..., metavar="NAME", help="Trusted repository (or package source) name."),
    source_url: str | None = typer.Option(None, "--source-url", help="The feed's V3 service index (https)."),
    owners: list[str] | None = OwnersOpt,
    allow_insecure_loopback: bool = LoopbackOpt,
    configfile: Path | None = ConfigFileOpt,
    verbosity: str = VerbosityOpt,
) -> None:
    """Trust the repository certificates that a feed publishes in its RepositorySignatures resource."""
    out = _Out(verbosity)
    settings = _settings(configfile)
    if source_url is None:
        source = settings.package_source(name)
        if source is None or not source.url:
            _fail(UNAVAILABLE_SOURCE.format(name))
        source_url = source.url
    service_index = _service_index(source_url, allow_insecure_loopback)
    _check_no_existing(settings, name, service_index)
    certificates = _certificates_from_feed(service_index, allow_insecure_loopback)
    settings.add_trusted_signer(
        TrustedSigner(SignerKind.REPOSITORY, name, certificates, service_index, _owners(owners))
    )
    _save(settings)
    out.detailed(ADDED_REPOSITORY.format(name))


@trust_app.command("sync")
def sync_command(
    name: str = typer.Argument(..., metavar="NAME", help="Name of the trusted repository to refresh."),
    allow_insecure_loopback: bool = LoopbackOpt,
    configfile: Path | None = ConfigFileOpt,
    verbosity: str = VerbosityOpt,
) -> None:
    """Replace a trusted repository's certificates with the ones its feed currently lists."""
    out = _Out(verbosity)
    settings = _settings(configfile)
    for signer in settings.trusted_signers():
        if signer.kind is SignerKind.REPOSITORY and signer.name == name:
            certificates = _certificates_from_feed(signer.service_index or "", allow_insecure_loopback)
            settings.update_trusted_signer(
                TrustedSigner(signer.kind, signer.name, certificates, signer.service_index, signer.owners)
            )
            _save(settings)
            out.detailed(SYNCED.format(name))
            return
    _fail(REPO_DOES_NOT_EXIST.format(name))


@trust_app.command("remove")
def remove_command(
    name: str = typer.Argument(..., metavar="NAME", help="Name of the trusted signer(s) to remove."),
    configfile: Path | None = ConfigFileOpt,
    verbosity: str = VerbosityOpt,
) -> None:
    """Remove every trusted signer whose name matches NAME (case-insensitive)."""
    out = _Out(verbosity)
    settings = _settings(configfile)
    matches = [s for s in settings.trusted_signers() if s.name.lower() == name.lower()]
    if not matches:
        out.minimal(NONE_MATCHING.format(name))
        return
    for signer in matches:
        settings.remove_trusted_signer(signer)
    _save(settings)
    out.minimal(REMOVED.format(name))
