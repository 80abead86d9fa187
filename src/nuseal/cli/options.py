"""Options and value parsers several commands share, defined once so that their names, metavars and help agree.

Parsers turn a malformed value into ``typer.BadParameter``: a usage error (exit 2) naming the option. What a
value *refers to* (a missing file, an unreachable URL) is checked when the command runs (exit 1).
"""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import typer

from nuseal.cli.base import OptionGroup, fail
from nuseal.enums import HashAlgorithmName, RevocationMode
from nuseal.render.text import Verbosity

if TYPE_CHECKING:
    from nuseal.verify.policy import VerificationPolicy
    from nuseal.verify.setup import VerificationSetup

#: NuGet's environment variable for the revocation mode (spec §6.2).
REVOCATION_ENV = "NUGET_CERT_REVOCATION_MODE"


def parse_verbosity(text: str) -> Verbosity:
    try:
        return Verbosity.parse(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def parse_revocation_mode(text: str) -> RevocationMode:
    try:
        return RevocationMode(text.strip().lower())
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not online or offline") from None


def parse_timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise typer.BadParameter(f"{text!r} is not a positive number of seconds")
    return value


def parse_hash_algorithm(text: str) -> HashAlgorithmName:
    try:
        return HashAlgorithmName.parse(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not SHA256, SHA384 or SHA512") from None


def url_parser(*schemes: str) -> Callable[[str], str]:
    """A parser accepting absolute URLs with one of ``schemes``; policy (https only, loopback) is checked later."""

    def parse(text: str) -> str:
        try:
            parts = urlsplit(text)
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError as exc:
            raise typer.BadParameter(f"{text!r} is not a valid URL: {exc}") from None
        if parts.scheme.lower() not in schemes or not parts.hostname:
            raise typer.BadParameter(f"{text!r} is not an absolute {' or '.join(schemes)} URL")
        return text

    return parse


parse_http_url = url_parser("http", "https")

#: Hex length of a fingerprint per hash algorithm (SHA-1 only where NuGet still accepts it, for selection).
FINGERPRINT_LENGTHS = {"SHA1": 40, "SHA256": 64, "SHA384": 96, "SHA512": 128}


def check_fingerprint(text: str, algorithms: tuple[str, ...]) -> str:
    """``text`` stripped, if it is hex of the length of one of ``algorithms``; ``BadParameter`` otherwise."""
    value = text.strip()
    lengths = {FINGERPRINT_LENGTHS[a]: a for a in algorithms}
    if len(value) in lengths and all(ch in string.hexdigits for ch in value):
        return value
    expected = " or ".join(f"{length} hexadecimal characters ({name})" for length, name in lengths.items())
    raise typer.BadParameter(f"{text!r} is not a certificate fingerprint: expected {expected}")


def parse_sha256_fingerprint(text: str) -> str:
    return check_fingerprint(text, ("SHA256",))


VERBOSITY = typer.Option(
    "normal", "-v", "--verbosity", metavar="LEVEL", parser=parse_verbosity,
    help="q[uiet], m[inimal], n[ormal], d[etailed] or diag[nostic] (dotnet's levels).",
)  # fmt: skip
CONFIGFILE = typer.Option(
    None, "--configfile", metavar="FILE",
    help="Use only this nuget.config (default: the files from the working folder up, then the user's).",
)  # fmt: skip


def roots_option(flag: str, kind: str, purpose: str = "default: the .NET SDK's bundle") -> Any:
    """``--trust-roots`` / ``--timestamp-roots``: a PEM bundle or one DER certificate (``load_roots_file``)."""
    return typer.Option(
        None, flag, metavar="FILE", help=f"Trusted {kind} roots, a PEM bundle or a DER .cer ({purpose}).")


@dataclass(frozen=True)
class TrustArgs:
    """What verify and install judge signatures with: the roots and the revocation settings."""

    trust_roots: Path | None
    timestamp_roots: Path | None
    revocation: RevocationMode
    revocation_timeout: float

    def setup(self, policy: VerificationPolicy) -> VerificationSetup:
        """The library's ``VerificationSetup`` for ``policy`` with these roots and revocation settings."""
        from nuseal.verify.setup import VerificationSetup
        from nuseal.x509.roots import trust_store_from_files

        store = trust_store_from_files(self.trust_roots, self.timestamp_roots)
        return VerificationSetup(policy, store, self.revocation, self.revocation_timeout)


TRUST = OptionGroup(TrustArgs, {
    "trust_roots": roots_option("--trust-roots", "code-signing"),
    "timestamp_roots": roots_option("--timestamp-roots", "timestamping"),
    "revocation": typer.Option(
        "online", "--revocation-mode", metavar="online|offline", parser=parse_revocation_mode, envvar=REVOCATION_ENV,
        help="Check revocation over the network (OCSP, then CRL) or not."),
    "revocation_timeout": typer.Option(
        "10", "--revocation-timeout", metavar="SECONDS", parser=parse_timeout, help="Time limit per OCSP/CRL request."),
}, "trust")  # fmt: skip
JSON = typer.Option(False, "--json", help="Print one JSON document instead of text.")
ALLOW_INSECURE_LOOPBACK = typer.Option(
    False, "--allow-insecure-loopback", help="Allow plain http to 127.0.0.1, localhost and [::1] (for tests)."
)


def existing_file(path: Path, what: str = "File") -> Path:
    """``path`` if it is a regular file; otherwise a NusealError naming it (missing, or a folder)."""
    if path.is_dir():
        fail(f"The path is a directory, not a file ({path})")
    if not path.is_file():
        fail(f"{what} does not exist ({path})")
    return path
