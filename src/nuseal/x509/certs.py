"""Certificate facts and NuGet's certificate requirements (spec §4.8).

The same checks run when signing (errors) and when verifying (severity from policy): NU3013 certificate signature
algorithm, NU3014 RSA key length, NU3015 lifetime-signing EKU, NU3017 not yet valid. The code-signing /
time-stamping usage check is part of chain building (``nuseal.x509.chain``), as in NuGet.

cryptography parses a certificate's names, extensions and public key only when they are asked for, so a damaged
certificate that loaded fine can still raise later. Every fact read here is read through a helper that turns those
late errors into a plain answer (no key, no usages, a hex name), and inside :func:`quiet`, which keeps
cryptography's warnings about RFC 5280 deviations away from users (docs/decisions.md, "Library warnings").
Each fact is read once per certificate and kept (``nuseal.x509.facts``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from nuseal import oids
from nuseal.codes import Messages, NuCode
from nuseal.x509 import der as der_walker
from nuseal.x509.facts import CERTIFICATE_ERRORS, Facts, facts, load_der, quiet
from nuseal.x509.summary import CertificateSummary

__all__ = ["CERTIFICATE_ERRORS", "RSA_MIN_KEY_BITS", "CertificateSummary", "build_summary", "check_certificate",
    "check_signing_certificate", "der", "extended_key_usages", "extensions", "facts", "fingerprint",
    "is_self_issued", "is_valid_for_usage", "issuer", "issuer_string", "load_der", "name_string", "not_after",
    "not_before", "public_key", "quiet", "raw_name", "rsa_key_bits", "signature_algorithm_oid", "subject",
    "subject_string", "summarize"]

#: NuGet ``SigningSpecificationsV1.RSAPublicKeyMinLength``.
RSA_MIN_KEY_BITS = 2048


def public_key(certificate: x509.Certificate) -> CertificatePublicKeyTypes | None:
    """The certificate's public key, or None when it cannot be decoded (unknown algorithm, damaged key)."""
    return facts(certificate).public_key


def subject(certificate: x509.Certificate) -> x509.Name | None:
    """The subject name, or None when it cannot be decoded."""
    return facts(certificate).subject


def issuer(certificate: x509.Certificate) -> x509.Name | None:
    """The issuer name, or None when it cannot be decoded."""
    return facts(certificate).issuer


def raw_name(certificate: x509.Certificate, which: str) -> bytes:
    """The DER of the certificate's ``subject`` or ``issuer`` exactly as encoded (read without decoding it);
    a value unique to the certificate when even that fails, so that it never matches another name."""
    entry = facts(certificate)
    return entry.raw_subject if which == "subject" else entry.raw_issuer


def subject_string(certificate: x509.Certificate) -> str:
    """``name_string`` of the subject; the hex DER of the name when it cannot be decoded."""
    return _name_string_or_hex(facts(certificate), "subject")


def issuer_string(certificate: x509.Certificate) -> str:
    """``name_string`` of the issuer; the hex DER of the name when it cannot be decoded."""
    return _name_string_or_hex(facts(certificate), "issuer")


def _name_string_or_hex(entry: Facts, which: str) -> str:
    raw = entry.raw_subject if which == "subject" else entry.raw_issuer
    attributes = der_walker.name_attributes(raw)  # cryptography's values, without its objects (when vouched for)
    if attributes is not None:
        return _format_name([pair for rdn in reversed(attributes) for pair in rdn])
    name = entry.subject if which == "subject" else entry.issuer
    if name is not None:
        return name_string(name)
    return "#" + raw.hex()


def extensions(certificate: x509.Certificate) -> x509.Extensions | None:
    """The parsed extensions, or None when they cannot be parsed (a chain reports INVALID_EXTENSION)."""
    return facts(certificate).extensions


def der(certificate: x509.Certificate) -> bytes:
    """The certificate's DER (serialized once per certificate, see ``nuseal.x509.facts``)."""
    return facts(certificate).der


def fingerprint(certificate: x509.Certificate, algorithm: str = "sha256") -> str:
    """Uppercase hex fingerprint, as NuGet prints and stores it."""
    return facts(certificate).fingerprint(algorithm)


def not_before(certificate: x509.Certificate) -> datetime:
    return facts(certificate).not_before


def not_after(certificate: x509.Certificate) -> datetime:
    return facts(certificate).not_after


def name_string(name: x509.Name) -> str:
    """A distinguished name the way .NET prints ``X509Certificate2.Subject``: most specific first, ``, ``-joined."""
    return _format_name([(attribute.oid.dotted_string, attribute.value)
                         for rdn in reversed(list(name.rdns)) for attribute in rdn])


def _format_name(pairs: list[tuple[str, str | bytes]]) -> str:
    """``name_string`` of (OID, value) pairs, most specific first."""
    parts = []
    for oid, raw_value in pairs:
        label = _LABELS.get(oid, "OID." + oid)
        value = raw_value if isinstance(raw_value, str) else raw_value.hex()
        if any(c in value for c in ',+="\n<>#;') or value != value.strip():
            value = '"' + value.replace('"', '""') + '"'
        parts.append(f"{label}={value}")
    return ", ".join(parts)


_LABELS = {
    "2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "S", "2.5.4.10": "O", "2.5.4.11": "OU",
    "2.5.4.9": "STREET", "1.2.840.113549.1.9.1": "E", "2.5.4.5": "SERIALNUMBER", "0.9.2342.19200300.100.1.25": "DC",
    "2.5.4.4": "SN", "2.5.4.42": "G", "2.5.4.12": "T", "2.5.4.17": "PostalCode",
    "1.3.6.1.4.1.311.60.2.1.3": "OID.1.3.6.1.4.1.311.60.2.1.3", "2.5.4.15": "OID.2.5.4.15",
}


def summarize(certificate: x509.Certificate) -> CertificateSummary:
    """What ``dotnet nuget verify`` shows about a certificate (names it cannot decode are shown as hex DER); made
    once per certificate."""
    entry = facts(certificate)
    summary = entry.memo.get("summary")
    if not isinstance(summary, CertificateSummary):
        with quiet():
            summary = build_summary(entry)
        entry.memo["summary"] = summary
    return summary


def build_summary(entry: Facts) -> CertificateSummary:
    """The summary of one certificate's facts (:func:`summarize` keeps it with them)."""
    return CertificateSummary(
        subject=_name_string_or_hex(entry, "subject"),
        issuer=_name_string_or_hex(entry, "issuer"),
        sha1=entry.fingerprint("sha1"),
        sha256=entry.fingerprint("sha256"),
        not_before=entry.not_before,
        not_after=entry.not_after,
        serial_number=format(entry.certificate.serial_number, "X"),
    )


def extended_key_usages(certificate: x509.Certificate) -> frozenset[str] | None:
    """Dotted EKU OIDs, or None when the certificate has no EKU extension (valid for every usage).

    Extensions that cannot be parsed give the empty set: valid for no usage, which is the safe answer when signing;
    when verifying, chain building reports them (INVALID_EXTENSION).
    """
    return facts(certificate).extended_key_usages


def is_valid_for_usage(certificate: x509.Certificate, eku: str) -> bool:
    usages = extended_key_usages(certificate)
    return usages is None or eku in usages or oids.ANY_EXTENDED_KEY_USAGE in usages


def is_self_issued(certificate: x509.Certificate) -> bool:
    entry = facts(certificate)
    subject_name, issuer_name = entry.subject, entry.issuer
    if subject_name is not None and issuer_name is not None:
        return subject_name == issuer_name
    return entry.raw_subject == entry.raw_issuer


def signature_algorithm_oid(certificate: x509.Certificate) -> str:
    return facts(certificate).signature_algorithm_oid


def rsa_key_bits(certificate: x509.Certificate) -> int | None:
    """RSA modulus size; None for other key types and for keys that cannot be decoded (NU3014 / NU3023)."""
    key = public_key(certificate)
    return key.key_size if isinstance(key, rsa.RSAPublicKey) else None


def check_certificate(
    certificate: x509.Certificate, now: datetime, friendly_name: str, *, timestamp: bool = False
) -> list[tuple[NuCode, str]]:
    """NuGet's certificate checks in NuGet's order; empty when the certificate is acceptable.

    ``friendly_name`` fills NuGet's ``{0}`` ("author primary signature", ...). For a TSA certificate pass
    ``timestamp=True``: the codes become NU3022/NU3023/NU3025 and the lifetime-EKU rule does not apply.
    """
    problems: list[tuple[NuCode, str]] = []
    if signature_algorithm_oid(certificate) not in oids.SHA2_RSA_SIGNATURES:
        if timestamp:
            problems.append((NuCode.NU3022, Messages.TIMESTAMP_CERT_ALGORITHM.format(friendly_name)))
        else:
            problems.append((NuCode.NU3013, Messages.UNSUPPORTED_CERT_SIGNATURE_ALGORITHM.format(friendly_name)))
    bits = rsa_key_bits(certificate)
    if bits is None or bits < RSA_MIN_KEY_BITS:
        if timestamp:
            problems.append((NuCode.NU3023, Messages.TIMESTAMP_KEY_TOO_SHORT.format(friendly_name)))
        else:
            problems.append((NuCode.NU3014, Messages.KEY_TOO_SHORT.format(friendly_name)))
    if not timestamp:
        usages = extended_key_usages(certificate) or frozenset()
        if oids.LIFETIME_SIGNING_EKU in usages:
            problems.append((NuCode.NU3015, Messages.LIFETIME_EKU.format(friendly_name)))
    if not_before(certificate) > now.astimezone(UTC):
        if timestamp:
            problems.append((NuCode.NU3025, Messages.TIMESTAMP_NOT_YET_VALID.format(friendly_name)))
        else:
            problems.append((NuCode.NU3017, Messages.CERT_NOT_YET_VALID.format(friendly_name)))
    return problems


def check_signing_certificate(certificate: x509.Certificate, now: datetime) -> list[tuple[NuCode, str]]:
    """Sign-time form of ``check_certificate`` plus the code-signing usage rule (NU3018 at sign time)."""
    problems = check_certificate(certificate, now, "signing certificate")
    if not is_valid_for_usage(certificate, oids.CODE_SIGNING_EKU):
        problems.append((NuCode.NU3018, "Certificate chain validation failed. The certificate is not valid for "
                                        "the requested usage (code signing)."))
    return problems
