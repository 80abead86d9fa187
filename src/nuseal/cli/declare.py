"""Option declarations and value parsers, without the CLI framework: the one definition of every shared option.

``nuseal.cli.options`` turns each :class:`Opt` into typer's declaration (``typer_option``); the lean ``verify``
and ``sign`` paths (``nuseal.cli.lean``) parse a command line with the same :class:`Opt` objects, so names,
defaults, parsers and environment variables cannot drift apart. This module imports no typer: it is on the
start-up of ``nuseal verify`` and ``nuseal sign``.

Parsers turn a malformed value into ``typer.BadParameter``: a usage error (exit 2) naming the option. typer is
imported only to raise it (the lean path then hands the whole command line to typer, which words the error).
What a value *refers to* (a missing file, an unreachable URL) is checked when the command runs (exit 1).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from nuseal.enums import HashAlgorithmName, RevocationMode
from nuseal.record import Struct
from nuseal.render.text import Verbosity

if TYPE_CHECKING:
    from nuseal.verify.policy import VerificationPolicy
    from nuseal.verify.setup import VerificationSetup

#: Help pages are laid out at this width on every terminal, in pipes and in the README.
HELP_WIDTH = 100

#: NuGet's environment variable for the revocation mode (spec §6.2).
REVOCATION_ENV = "NUGET_CERT_REVOCATION_MODE"


class Opt(Struct, frozen=True):
    """One option (``flags`` given) or argument (no ``flags``) of a command, as typer and the lean parser read it.

    The value's type is the annotation of the command parameter (or record field) it fills: ``bool`` is a flag,
    ``list[...]`` repeats, ``int`` honours ``min``, ``Path`` and ``str`` take the text; ``parser`` (when given)
    turns the text into the value. ``default`` ``...`` means required; a ``str`` default goes through ``parser``.
    """

    default: Any
    flags: tuple[str, ...] = ()
    help: str = ""
    metavar: str | None = None
    parser: Callable[[str], Any] | None = None
    envvar: str | None = None
    min: int | None = None


def bad_value(message: str) -> Exception:
    """typer's ``BadParameter`` for ``message`` (imported here, on the error path only)."""
    import typer

    return typer.BadParameter(message)


def parse_verbosity(text: str) -> Verbosity:
    try:
        return Verbosity.parse(text)
    except ValueError as exc:
        raise bad_value(str(exc)) from None


def parse_revocation_mode(text: str) -> RevocationMode:
    try:
        return RevocationMode(text.strip().lower())
    except ValueError:
        raise bad_value(f"{text!r} is not online or offline") from None


def parse_timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise bad_value(f"{text!r} is not a positive number of seconds")
    return value


def parse_hash_algorithm(text: str) -> HashAlgorithmName:
    try:
        return HashAlgorithmName.parse(text)
    except ValueError:
        raise bad_value(f"{text!r} is not SHA256, SHA384 or SHA512") from None


def url_parser(*schemes: str) -> Callable[[str], str]:
    """A parser accepting absolute URLs with one of ``schemes``; policy (https only, loopback) is checked later."""

    def parse(text: str) -> str:
        try:
            parts = urlsplit(text)
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError as exc:
            raise bad_value(f"{text!r} is not a valid URL: {exc}") from None
        if parts.scheme.lower() not in schemes or not parts.hostname:
            raise bad_value(f"{text!r} is not an absolute {' or '.join(schemes)} URL")
        return text

    return parse


parse_http_url = url_parser("http", "https")

#: Hex length of a fingerprint per hash algorithm (SHA-1 only where NuGet still accepts it, for selection).
FINGERPRINT_LENGTHS = {"SHA1": 40, "SHA256": 64, "SHA384": 96, "SHA512": 128}


def check_fingerprint(text: str, algorithms: tuple[str, ...]) -> str:
    """``text`` stripped, if it is hex of the length of one of ``algorithms``; ``BadParameter`` otherwise."""
    import string  # only fingerprint options need it

    value = text.strip()
    lengths = {FINGERPRINT_LENGTHS[a]: a for a in algorithms}
    if len(value) in lengths and all(ch in string.hexdigits for ch in value):
        return value
    expected = " or ".join(f"{length} hexadecimal characters ({name})" for length, name in lengths.items())
    raise bad_value(f"{text!r} is not a certificate fingerprint: expected {expected}")


def parse_sha256_fingerprint(text: str) -> str:
    return check_fingerprint(text, ("SHA256",))


VERBOSITY = Opt("normal", ("-v", "--verbosity"), metavar="LEVEL", parser=parse_verbosity,
                help="q[uiet], m[inimal], n[ormal], d[etailed] or diag[nostic] (dotnet's levels).")
CONFIGFILE = Opt(None, ("--configfile",), metavar="FILE",
                 help="Use only this nuget.config (default: the files from the working folder up, then the user's).")
JSON = Opt(False, ("--json",), help="Print one JSON document instead of text.")


def roots(flag: str, kind: str, purpose: str = "default: the .NET SDK's bundle") -> Opt:
    """``--trust-roots`` / ``--timestamp-roots``: a PEM bundle or one DER certificate (``load_roots_file``)."""
    return Opt(None, (flag,), metavar="FILE", help=f"Trusted {kind} roots, a PEM bundle or a DER .cer ({purpose}).")


class TrustArgs(Struct, frozen=True):
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


TRUST: dict[str, Opt] = {
    "trust_roots": roots("--trust-roots", "code-signing"),
    "timestamp_roots": roots("--timestamp-roots", "timestamping"),
    "revocation": Opt("online", ("--revocation-mode",), metavar="online|offline", parser=parse_revocation_mode,
                      envvar=REVOCATION_ENV, help="Check revocation over the network (OCSP, then CRL) or not."),
    "revocation_timeout": Opt("10", ("--revocation-timeout",), metavar="SECONDS", parser=parse_timeout,
                              help="Time limit per OCSP/CRL request."),
}


class VerifyArgs(Struct, frozen=True):
    """``nuseal verify``'s own arguments and options (the trust options are :class:`TrustArgs`)."""

    packages: list[str]
    certificate_fingerprint: list[str]
    configfile: Path | None
    verbosity: Verbosity
    as_json: bool
    all: bool
    signatures: bool
    parallel: int | None


VERIFY_DOC = """Verify package signatures as `dotnet nuget verify` does.

    The exit code is 0 only when every package is valid.
    """

#: ``nuseal verify``'s own parameters, in the order help lists them (the trust options follow).
VERIFY: dict[str, Opt] = {
    "packages": Opt(..., metavar="PACKAGE...", help="Packages to verify: paths or globs."),
    "certificate_fingerprint": Opt(
        [], ("--certificate-fingerprint",), metavar="SHA256", parser=parse_sha256_fingerprint,
        help="SHA-256 fingerprint the primary signer must match (repeatable)."),
    "configfile": CONFIGFILE,
    "verbosity": VERBOSITY,
    "as_json": JSON,
    "all": Opt(False, ("--all",), help="Verify everything (the same as --signatures)."),
    "signatures": Opt(False, ("--signatures",), help="Verify signatures (the only check there is)."),
    "parallel": Opt(None, ("--parallel",), metavar="N", min=1,
                    help="Worker processes (default: one per core; 1 verifies in this process)."),
}  # fmt: skip


def parse_signing_fingerprint(text: str) -> str:
    # NuGet selects the hash by the length; SHA-1 still selects (with NU3043 as a warning) in NuGet 6.12.
    return check_fingerprint(text, ("SHA1", "SHA256", "SHA384", "SHA512"))


class SigningArgs(Struct, frozen=True):
    """The options ``sign`` and ``repo-sign`` share: key, hashes, timestamper, output, roots, verbosity."""

    certificate_path: Path | None
    key_path: Path | None
    certificate_password: str | None
    certificate_fingerprint: str | None
    hash_algorithm: HashAlgorithmName
    timestamper: str | None
    timestamp_hash_algorithm: HashAlgorithmName
    output: Path | None
    overwrite: bool
    trust_roots: Path | None
    timestamp_roots: Path | None
    pkcs11_module: Path | None
    pkcs11_token: str | None
    pkcs11_key: str | None
    pkcs11_pin: str | None
    verbosity: Verbosity
    as_json: bool
    parallel: int | None
    no_fsync: bool


#: Each ``SigningArgs`` field's declaration, in help order (``sign`` and ``repo-sign`` list them after their own).
SIGNING: dict[str, Opt] = {
    "certificate_path": Opt(
        None, ("--certificate-path",), metavar="FILE", help="PFX/P12 file, or PEM with key and certificates."),
    "key_path": Opt(
        None, ("--key-path",), metavar="FILE", help="PEM private key when --certificate-path has only certificates."),
    "certificate_password": Opt(
        None, ("--certificate-password",), metavar="PASSWORD", help="Password of the PFX file or of the PEM key."),
    "certificate_fingerprint": Opt(
        None, ("--certificate-fingerprint",), metavar="HEX", parser=parse_signing_fingerprint,
        help="SHA-256/384/512 fingerprint of the certificate to use, when the file holds several."),
    "hash_algorithm": Opt(
        "SHA256", ("--hash-algorithm",), metavar="SHA256|SHA384|SHA512", parser=parse_hash_algorithm,
        help="Hash algorithm of the signature."),
    "timestamper": Opt(
        None, ("--timestamper",), metavar="URL", parser=parse_http_url, help="RFC 3161 timestamp server."),
    "timestamp_hash_algorithm": Opt(
        "SHA256", ("--timestamp-hash-algorithm",), metavar="SHA256|SHA384|SHA512", parser=parse_hash_algorithm,
        help="Hash algorithm of the timestamp request."),
    "output": Opt(
        None, ("-o", "--output"), metavar="FOLDER", help="Write the signed packages here (default: sign in place)."),
    "overwrite": Opt(False, ("--overwrite",), help="Replace an existing signature."),
    "trust_roots": roots("--trust-roots", "code-signing", "to build the signing chain before signing"),
    "timestamp_roots": roots("--timestamp-roots", "timestamping", "to build the TSA chain after timestamping"),
    "pkcs11_module": Opt(None, ("--pkcs11-module",), metavar="FILE", help="PKCS#11 module (.so)."),
    "pkcs11_token": Opt(None, ("--pkcs11-token",), metavar="LABEL", help="PKCS#11 token label."),
    "pkcs11_key": Opt(None, ("--pkcs11-key",), metavar="LABEL", help="Key label, or id:HEX for a key id."),
    "pkcs11_pin": Opt(None, ("--pkcs11-pin",), metavar="PIN", help="User PIN of the token."),
    "verbosity": VERBOSITY,
    "as_json": JSON,
    "parallel": Opt(
        None, ("--parallel",), metavar="N", min=1,
        help="Worker processes (default: one per core; 1 signs in this process)."),
    "no_fsync": Opt(
        False, ("--no-fsync",),
        help="Do not fsync outputs (still written atomically). Only where something else makes them durable."),
}  # fmt: skip


class SignArgs(Struct, frozen=True):
    """``nuseal sign``'s own arguments (its options are :class:`SigningArgs`)."""

    packages: list[str]


SIGN_DOC = """Author-sign NuGet packages (like 'dotnet nuget sign')."""

#: ``nuseal sign``'s own parameters (the signing options follow).
SIGN: dict[str, Opt] = {
    "packages": Opt(..., metavar="PACKAGE...", help="Packages to author-sign: paths or globs."),
}
