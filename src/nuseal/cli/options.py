"""typer declarations of the options several commands share, made from their one definition in
``nuseal.cli.declare`` (which also holds the value parsers, re-exported here for the command modules).

Parsers turn a malformed value into ``typer.BadParameter``: a usage error (exit 2) naming the option. What a
value *refers to* (a missing file, an unreachable URL) is checked when the command runs (exit 1).
"""

from __future__ import annotations

from typing import Any

import typer

from nuseal.cli import declare
from nuseal.cli.base import OptionGroup
from nuseal.cli.declare import (
    FINGERPRINT_LENGTHS,
    REVOCATION_ENV,
    Opt,
    TrustArgs,
    check_fingerprint,
    parse_hash_algorithm,
    parse_http_url,
    parse_revocation_mode,
    parse_sha256_fingerprint,
    parse_timeout,
    parse_verbosity,
    url_parser,
)
from nuseal.cli.guard import existing_file

__all__ = ["ALLOW_INSECURE_LOOPBACK", "CONFIGFILE", "FINGERPRINT_LENGTHS", "JSON", "REVOCATION_ENV", "TRUST",
           "VERBOSITY", "TrustArgs", "check_fingerprint", "existing_file", "option_group", "parse_hash_algorithm",
           "parse_http_url", "parse_revocation_mode", "parse_sha256_fingerprint", "parse_timeout", "parse_verbosity",
           "roots_option", "typer_option", "url_parser"]


def typer_option(opt: Opt) -> Any:
    """typer's ``Option`` (``Argument`` when ``opt`` has no flags) for ``opt``."""
    extra: dict[str, Any] = {}
    if opt.parser is not None:
        extra["parser"] = opt.parser
    if opt.envvar is not None:
        extra["envvar"] = opt.envvar
    if opt.min is not None:
        extra["min"] = opt.min
    if not opt.flags:
        return typer.Argument(opt.default, metavar=opt.metavar, help=opt.help, **extra)
    return typer.Option(opt.default, *opt.flags, metavar=opt.metavar, help=opt.help, **extra)


def option_group(type_: type[Any], options: dict[str, Opt], parameter: str) -> OptionGroup:
    """An ``OptionGroup`` whose options are typer declarations of ``options``."""
    return OptionGroup(type_, {name: typer_option(opt) for name, opt in options.items()}, parameter)


VERBOSITY = typer_option(declare.VERBOSITY)
CONFIGFILE = typer_option(declare.CONFIGFILE)
JSON = typer_option(declare.JSON)


def roots_option(flag: str, kind: str, purpose: str = "default: the .NET SDK's bundle") -> Any:
    """``--trust-roots`` / ``--timestamp-roots``: a PEM bundle or one DER certificate (``load_roots_file``)."""
    return typer_option(declare.roots(flag, kind, purpose))


TRUST = option_group(TrustArgs, declare.TRUST, "trust")
ALLOW_INSECURE_LOOPBACK = typer.Option(
    False, "--allow-insecure-loopback", help="Allow plain http to 127.0.0.1, localhost and [::1] (for tests)."
)

