"""``nuseal trust``: manage trusted signers in nuget.config, as ``dotnet nuget trust`` does (spec §7.3).

Subcommands: list (the default), author, repository, certificate, source, sync, remove. Every one takes
``--configfile`` and ``-v/--verbosity``. Output and error texts are NuGet's (``NuGet.Commands`` Strings).
This module is the only place that reads the working and home directories for trust settings.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import typer
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from nuseal.cli.base import OptionGroup, command, fail, group
from nuseal.cli.options import ALLOW_INSECURE_LOOPBACK, CONFIGFILE, VERBOSITY, check_fingerprint, existing_file
from nuseal.cli.options import parse_http_url as _parse_url
from nuseal.cms.parse import PrimarySignature, RepositoryCountersignature, load_primary_signature
from nuseal.enums import HashAlgorithmName, SignatureKind
from nuseal.errors import NusealError
from nuseal.package import zipformat
from nuseal.render.text import Verbosity
from nuseal.trust.nuget_config import ConfigFile, NuGetSettings
from nuseal.trust.repository_signatures import check_https, fetch_repository_signatures
from nuseal.trust.trusted_signers import SignerKind, TrustedCertificate, TrustedSigner

trust_app = group("trust", "Manage the trusted signers of nuget.config (like 'dotnet nuget trust').")

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

AllowUntrustedRootOpt = typer.Option(False, "--allow-untrusted-root",
                                     help="Allow the certificate's chain to end in an untrusted root.")
OwnersOpt = typer.Option(None, "--owners", metavar="OWNER;...", help="Trusted owners, separated by ';' (repeatable).")


@dataclass(frozen=True)
class ConfigArgs:
    """The options every trust sub-command takes: which nuget.config, and how much to say."""

    configfile: Path | None
    verbosity: Verbosity


CONFIG = OptionGroup(ConfigArgs, {"configfile": CONFIGFILE, "verbosity": VERBOSITY}, "config")


def _name(text: str) -> str:
    if not text.strip():
        raise typer.BadParameter("a trusted signer needs a name")
    return text


def _settings(configfile: Path | None) -> NuGetSettings:
    # The CLI, not the core, decides where "here" and "home" are.
    return NuGetSettings.load(configfile=configfile, cwd=Path.cwd(), home=Path.home())


def _save(settings: NuGetSettings, written: ConfigFile, signer: TrustedSigner, sentence: str,
          verbosity: Verbosity) -> None:
    """Write the configuration, then confirm what was written: NuGet's sentence (minimal), and at normal
    verbosity the certificates of the signer and the file they went to."""
    _write(settings)
    if verbosity >= Verbosity.MINIMAL:
        typer.echo(sentence.format(signer.name))
    if verbosity >= Verbosity.NORMAL:
        for cert in signer.certificates:
            mark = "[U] " if cert.allow_untrusted_root else ""
            typer.echo(f"  {mark}{cert.algorithm.value} - {cert.fingerprint}")
        typer.echo(f"  in {written.path}")


def _write(settings: NuGetSettings) -> None:
    try:
        settings.save()
    except OSError as exc:
        fail(f"Unable to write NuGet.Config: {exc.strerror or exc} ({exc.filename})")


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
        netloc = netloc.replace(parts.hostname, parts.hostname.lower(), 1)
    return urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", parts.query, parts.fragment))


def _service_index(url: str, allow_insecure_loopback: bool) -> str:
    try:
        check_https(url, "service index", allow_insecure_loopback=allow_insecure_loopback)
        return _absolute_uri(url)
    except (NusealError, ValueError):  # ValueError: a configured source URL that does not parse
        fail(NOT_HTTPS.format(url))


def _check_no_existing(settings: NuGetSettings, name: str, service_index: str | None) -> None:
    for signer in settings.trusted_signers():
        if signer.name == name:
            fail(SIGNER_EXISTS.format(name))
        if (service_index is not None and signer.kind is SignerKind.REPOSITORY
                and (signer.service_index or "").lower() == service_index.lower()):
            fail(REPO_EXISTS.format(service_index))


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


def _list(configfile: Path | None, verbosity: Verbosity, as_json: bool = False) -> None:
    signers = _settings(configfile).trusted_signers()
    if as_json:
        typer.echo(json.dumps(signers_to_json(signers), indent=2))
    elif verbosity >= Verbosity.MINIMAL:
        typer.echo(format_signers(signers), nl=False)


@trust_app.callback()
def trust_main(
    ctx: typer.Context,
    configfile: Path | None = CONFIGFILE,
    verbosity: Verbosity = VERBOSITY,
) -> None:
    """Manage trusted signers. With no sub-command, list them."""
    if ctx.invoked_subcommand is None:
        _list(configfile, verbosity)
        return
    # `trust --configfile F author ...` would silently write the user's config: the options belong after the
    # sub-command, as in dotnet.
    for name in ("configfile", "verbosity"):
        source = ctx.get_parameter_source(name)
        if source is not None and source.name == "COMMANDLINE":
            raise typer.BadParameter(f"give it after the sub-command ('nuseal trust {ctx.invoked_subcommand} "
                                     f"--{name} ...')", param_hint=[f"--{name}"])


@command(trust_app, "list", CONFIG)
def list_command(
    as_json: bool = typer.Option(False, "--json", help="Print the trusted signers as JSON."),
    *,
    config: ConfigArgs,
) -> None:
    """List the trusted signers of the configuration."""
    _list(config.configfile, config.verbosity, as_json)


# -- from a package ---------------------------------------------------------------------------------------
def _load_signature(package: Path) -> PrimarySignature:
    with existing_file(package, "Package").open("rb") as f:
        layout = zipformat.read_layout(f)
        if not zipformat.has_signature_entry(layout):
            fail(NOT_SIGNED)
        entry = zipformat.find_signature_entry(f, layout)
        der = zipformat.read_signature_bytes(f, entry)
    return load_primary_signature(der)


def _sha256_upper(cert: x509.Certificate) -> str:
    der = cert.public_bytes(Encoding.DER)
    return hashlib.sha256(der).hexdigest().upper()


def _add(settings: NuGetSettings, signer: TrustedSigner, sentence: str, verbosity: Verbosity) -> None:
    _save(settings, settings.add_trusted_signer(signer), signer, sentence, verbosity)


@command(trust_app, "author", CONFIG)
def author_command(
    name: str = typer.Argument(..., metavar="NAME", parser=_name, help="Name of the trusted signer to add."),
    package: Path = typer.Argument(..., metavar="PACKAGE", help="A local author-signed .nupkg."),
    allow_untrusted_root: bool = AllowUntrustedRootOpt,
    *,
    config: ConfigArgs,
) -> None:
    """Trust the author signing certificate of PACKAGE."""
    settings = _settings(config.configfile)
    signature = _load_signature(package)
    # NuGet checks the name before it checks the signature type.
    _check_no_existing(settings, name, None)
    if signature.kind is not SignatureKind.AUTHOR or signature.signer_certificate is None:
        fail(NOT_AUTHOR_SIGNED)
    cert = TrustedCertificate(_sha256_upper(signature.signer_certificate), HashAlgorithmName.SHA256,
                              allow_untrusted_root)
    _add(settings, TrustedSigner(SignerKind.AUTHOR, name, (cert,)), ADDED_AUTHOR, config.verbosity)


@command(trust_app, "repository", CONFIG)
def repository_command(
    name: str = typer.Argument(..., metavar="NAME", parser=_name, help="Name of the trusted signer to add."),
    package: Path = typer.Argument(..., metavar="PACKAGE", help="A local repository-(counter)signed .nupkg."),
    allow_untrusted_root: bool = AllowUntrustedRootOpt,
    owners: list[str] | None = OwnersOpt,
    *,
    config: ConfigArgs,
) -> None:
    """Trust the repository certificate of PACKAGE.

    The repository primary signature's certificate, or the repository countersignature's.
    """
    settings = _settings(config.configfile)
    signature = _load_signature(package)
    repo_sig: PrimarySignature | RepositoryCountersignature | None
    repo_sig = signature if signature.kind is SignatureKind.REPOSITORY else signature.countersignature()
    if repo_sig is None or repo_sig.signer_certificate is None or not repo_sig.service_index_url:
        fail(NOT_REPO_SIGNED)
    service_index = _absolute_uri(repo_sig.service_index_url)
    _check_no_existing(settings, name, service_index)
    cert = TrustedCertificate(_sha256_upper(repo_sig.signer_certificate), HashAlgorithmName.SHA256,
                              allow_untrusted_root)
    signer = TrustedSigner(SignerKind.REPOSITORY, name, (cert,), service_index, _owners(owners))
    _add(settings, signer, ADDED_REPOSITORY, config.verbosity)


# -- by fingerprint -----------------------------------------------------------------------------------
def _algorithm(text: str) -> HashAlgorithmName:
    try:
        return HashAlgorithmName.parse(text)
    except ValueError:
        raise typer.BadParameter(UNSUPPORTED_ALGORITHM.format(text)) from None


@command(trust_app, "certificate", CONFIG)
def certificate_command(
    name: str = typer.Argument(..., metavar="NAME", parser=_name, help="Name of the trusted signer to add or extend."),
    fingerprint: str = typer.Argument(..., metavar="FINGERPRINT", help="Certificate fingerprint (hex)."),
    algorithm: HashAlgorithmName = typer.Option(
        "SHA256", "--algorithm", metavar="SHA256|SHA384|SHA512", parser=_algorithm,
        help="Hash algorithm of the fingerprint."),
    allow_untrusted_root: bool = AllowUntrustedRootOpt,
    *,
    config: ConfigArgs,
) -> None:
    """Trust a certificate by its fingerprint.

    The fingerprint is added to the signer NAME, or to a new trusted author NAME.
    """
    try:
        # The same rule as sign --certificate-fingerprint: hex, as long as the algorithm's digest.
        check_fingerprint(fingerprint, (algorithm.value,))
    except typer.BadParameter as exc:
        exc.param_hint = ["FINGERPRINT"]
        raise
    settings = _settings(config.configfile)
    # NuGet quirk: the fingerprint is stored exactly as typed (no case change), see spec §6.4.
    cert = TrustedCertificate(fingerprint, algorithm, allow_untrusted_root)
    for signer in settings.trusted_signers():
        if signer.name == name:
            # NuGet compares certificate items by fingerprint, ordinal.
            if any(c.fingerprint == fingerprint for c in signer.certificates):
                fail(FINGERPRINT_EXISTS)
            updated = TrustedSigner(signer.kind, signer.name, (*signer.certificates, cert), signer.service_index,
                                    signer.owners)
            _save(settings, settings.update_trusted_signer(updated), updated, UPDATED, config.verbosity)
            return
    _add(settings, TrustedSigner(SignerKind.AUTHOR, name, (cert,)), ADDED_AUTHOR, config.verbosity)


# -- from a feed's RepositorySignatures resource -----------------------------------------------------
def _certificates_from_feed(service_index: str, allow_insecure_loopback: bool) -> tuple[TrustedCertificate, ...]:
    with httpx.Client(timeout=httpx.Timeout(30.0, connect=10.0)) as client:
        info = fetch_repository_signatures(client, service_index, allow_insecure_loopback=allow_insecure_loopback)
    if info is None:
        fail(NO_RESOURCE.format(service_index))
    if not info.certificates:
        fail(EMPTY_LIST.format(service_index))
    # NuGet writes each listed fingerprint exactly as the feed published it (nuget.org publishes lowercase
    # hex), one <certificate> per SHA256/384/512 value present, allowUntrustedRoot false. We do the same:
    # allow-list matching is case-insensitive, so the case does not matter for trust.
    return tuple(
        TrustedCertificate(fp, alg, False)
        for cert in info.certificates
        for alg in HashAlgorithmName
        if (fp := cert.fingerprint(alg))
    )


@command(trust_app, "source", CONFIG)
def source_command(
    name: str = typer.Argument(
        ..., metavar="NAME", parser=_name, help="Trusted repository name (or the name of a configured source)."),
    source_url: str | None = typer.Option(
        None, "--source-url", metavar="URL", parser=_parse_url,
        help="The feed's V3 service index (https; default: the configured source NAME)."),
    owners: list[str] | None = OwnersOpt,
    allow_insecure_loopback: bool = ALLOW_INSECURE_LOOPBACK,
    *,
    config: ConfigArgs,
) -> None:
    """Trust the repository certificates a feed publishes.

    They are read from the feed's RepositorySignatures resource.
    """
    settings = _settings(config.configfile)
    if source_url is None:
        source = settings.package_source(name)
        if source is None or not source.url:
            fail(UNAVAILABLE_SOURCE.format(name))
        source_url = source.url
    service_index = _service_index(source_url, allow_insecure_loopback)
    _check_no_existing(settings, name, service_index)
    certificates = _certificates_from_feed(service_index, allow_insecure_loopback)
    signer = TrustedSigner(SignerKind.REPOSITORY, name, certificates, service_index, _owners(owners))
    _add(settings, signer, ADDED_REPOSITORY, config.verbosity)


@command(trust_app, "sync", CONFIG)
def sync_command(
    name: str = typer.Argument(..., metavar="NAME", help="Name of the trusted repository to refresh."),
    allow_insecure_loopback: bool = ALLOW_INSECURE_LOOPBACK,
    *,
    config: ConfigArgs,
) -> None:
    """Refresh a trusted repository's certificates from its feed."""
    settings = _settings(config.configfile)
    for signer in settings.trusted_signers():
        if signer.kind is SignerKind.REPOSITORY and signer.name == name:
            service_index = _service_index(signer.service_index or "", allow_insecure_loopback)
            certificates = _certificates_from_feed(service_index, allow_insecure_loopback)
            updated = TrustedSigner(signer.kind, signer.name, certificates, signer.service_index, signer.owners)
            _save(settings, settings.update_trusted_signer(updated), updated, SYNCED, config.verbosity)
            return
    fail(REPO_DOES_NOT_EXIST.format(name))


@command(trust_app, "remove", CONFIG)
def remove_command(
    name: str = typer.Argument(..., metavar="NAME", help="Name of the trusted signer(s) to remove."),
    *,
    config: ConfigArgs,
) -> None:
    """Remove the trusted signers named NAME (case-insensitive)."""
    settings = _settings(config.configfile)
    matches = [s for s in settings.trusted_signers() if s.name.lower() == name.lower()]
    if not matches:
        if config.verbosity >= Verbosity.MINIMAL:
            typer.echo(NONE_MATCHING.format(name))
        return
    for signer in matches:
        settings.remove_trusted_signer(signer)
    _write(settings)
    if config.verbosity >= Verbosity.MINIMAL:
        typer.echo(REMOVED.format(name))
