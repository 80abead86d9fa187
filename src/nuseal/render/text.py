"""``dotnet nuget verify``-style text for verdicts (spec §6.8). Returns lines; never prints."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from enum import IntEnum
from typing import TYPE_CHECKING

from nuseal.enums import SignatureKind
from nuseal.findings import Severity

if TYPE_CHECKING:  # the CLI imports Verbosity from here at start-up; the verdict types are only annotations
    from nuseal.verify.result import PackageVerdict, SignatureVerdict, TimestampSummary
    from nuseal.x509.summary import CertificateSummary


class Verbosity(IntEnum):
    """dotnet's ``-v`` levels, meaning the same on every nuseal command (NuGet maps them to log levels the same
    way, ``XPlatUtility.MSBuildVerbosityToNuGetLogLevel``): quiet shows errors and warnings only; minimal adds the
    one-line result per item; normal adds information (signer details, what was written); detailed and
    diagnostic add details (certificate chains, information-level findings). Decision: nuseal's default is
    normal, so the signer details are visible without flags (dotnet's default, minimal, hides them)."""

    QUIET = 0
    MINIMAL = 1
    NORMAL = 2
    DETAILED = 3
    DIAGNOSTIC = 4

    @classmethod
    def parse(cls, text: str) -> Verbosity:
        """``q``/``quiet``, ``m``/``minimal``, ``n``/``normal``, ``d``/``detailed``, ``diag``/``diagnostic``."""
        table = {"q": cls.QUIET, "quiet": cls.QUIET, "m": cls.MINIMAL, "minimal": cls.MINIMAL, "n": cls.NORMAL,
                 "normal": cls.NORMAL, "d": cls.DETAILED, "detailed": cls.DETAILED, "diag": cls.DIAGNOSTIC,
                 "diagnostic": cls.DIAGNOSTIC}
        try:
            return table[text.strip().lower()]
        except KeyError:
            raise ValueError(
                f"{text!r} is not one of q[uiet], m[inimal], n[ormal], d[etailed], diag[nostic]") from None


def format_time(value: datetime) -> str:
    """How every date is written in text output: ISO 8601 in UTC to the second, as ``isoformat`` writes it
    in the JSON output and in finding messages (``2021-03-17T20:03:36+00:00``)."""
    return value.astimezone(UTC).isoformat(timespec="seconds")


def certificate_lines(cert: CertificateSummary, indent: str = "  ") -> list[str]:
    """The five certificate lines NuGet prints (subject, SHA1, SHA256, issuer, validity)."""
    return [
        f"{indent}Subject Name: {cert.subject}",
        f"{indent}SHA1 hash: {cert.sha1}",
        f"{indent}SHA256 hash: {cert.sha256}",
        f"{indent}Issued by: {cert.issuer}",
        f"{indent}Valid from: {format_time(cert.not_before)} to {format_time(cert.not_after)}",
    ]


def _chain_lines(chain: Iterable[CertificateSummary]) -> list[str]:
    lines: list[str] = []
    for depth, cert in enumerate(list(chain)[1:10], start=1):
        lines.extend(certificate_lines(cert, "  " + "      " * depth))
    return lines


def _friendly(signature: SignatureVerdict) -> str:
    if signature.placement == "countersignature":
        return "repository countersignature"
    return {SignatureKind.AUTHOR: "author primary signature",
            SignatureKind.REPOSITORY: "repository primary signature"}.get(signature.kind, "primary signature")


def _timestamp_lines(owner: str, ts: TimestampSummary, verbosity: Verbosity) -> list[str]:
    lines = [f"Timestamp: {format_time(ts.time)}", "",
             f"Verifying {owner}'s timestamp with timestamping service certificate: "]
    if ts.certificate is not None:
        lines.extend(certificate_lines(ts.certificate))
    if verbosity >= Verbosity.DETAILED:
        lines.extend(_chain_lines(ts.chain))
    return lines


def signature_lines(signature: SignatureVerdict, verbosity: Verbosity) -> list[str]:
    """Everything NuGet logs about one signature before the findings."""
    owner = _friendly(signature)
    kind = "Repository" if signature.placement == "countersignature" else signature.kind.value.capitalize()
    lines = [f"Signature Hash Algorithm: {signature.hash_algorithm}", "", f"Signature type: {kind}"]
    if signature.service_index_url:
        lines.append(f"Service index: {signature.service_index_url}")
    if signature.owners:
        lines.append(f"Owners: {', '.join(signature.owners)}")
    lines.append(f"Verifying the {owner} with certificate: ")
    if signature.certificate is not None:
        lines.extend(certificate_lines(signature.certificate))
    if verbosity >= Verbosity.DETAILED:
        lines.extend(_chain_lines(signature.chain))
    for ts in signature.timestamps:
        lines.extend(_timestamp_lines(owner, ts, verbosity))
    return lines


def _prefix(severity: Severity) -> str:
    return {Severity.ERROR: "error: ", Severity.WARNING: "warn : ", Severity.INFO: ""}[severity]


def finding_lines(verdict: PackageVerdict, verbosity: Verbosity) -> list[str]:
    lines: list[str] = []
    for finding in verdict.findings:
        if finding.severity is Severity.INFO and verbosity < Verbosity.DETAILED:
            continue
        prefix = _prefix(finding.severity)
        for i, text in enumerate(f"{finding.code.value}: {finding.message}".splitlines()):
            lines.append(prefix + text if i == 0 or finding.severity is not Severity.INFO else text)
    return lines


def package_lines(verdict: PackageVerdict, verbosity: Verbosity = Verbosity.NORMAL) -> list[str]:
    """The whole block NuGet prints for one package."""
    name = f"{verdict.package_id}.{verdict.version}" if verdict.package_id else verdict.path
    if verdict.error is not None:
        return [f"error: {verdict.error}"] if verbosity is Verbosity.QUIET else ["", f"error: {verdict.error}"]
    if verbosity is Verbosity.QUIET:
        # Only errors and warnings; the failure line names the file, since no "Verifying" line says which.
        failed = [] if verdict.valid else [f"error: Package signature validation failed ({verdict.path})."]
        return finding_lines(verdict, verbosity) + failed
    lines = ["", f"Verifying {name}"]
    if verbosity >= Verbosity.NORMAL:
        lines.append(verdict.path)
        for signature in verdict.signatures:
            lines.append("")
            lines.extend(signature_lines(signature, verbosity))
    errors, warnings = len(verdict.errors), len(verdict.warnings)
    if errors or warnings:
        lines.append("")
        if verbosity >= Verbosity.NORMAL:
            lines.append(f"Finished with {errors} errors and {warnings} warnings.")
    lines.extend(finding_lines(verdict, verbosity))
    lines.append("")
    lines.append(f"Successfully verified package '{name}'." if verdict.valid
                 else "Package signature validation failed.")
    return lines
