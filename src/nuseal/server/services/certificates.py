"""Author-signing certificates registered to accounts (spec server.md §A.1-A.4): upload checks, register,
unregister, list, audit.

A certificate is identified by the SHA-256 of its DER bytes (lower-case hex). It is kept once (the DER in the
database, see :class:`~nuseal.server.db.models.Certificate`) and linked to any number of accounts, users or
organizations. Registering a certificate an account already has is a no-op; unregistering removes only the link
(the certificate stays for other accounts and for the versions signed with it).

Upload checks: nuget.org's (a file is present, at most 10,000 bytes, its DER heuristic, the ``.cer`` extension)
*plus* parsing the certificate and refusing what could never sign a package nuget.org-style, each refusal saying
what was uploaded and why (NuGetGallery #9003): PEM instead of DER (with how to convert), a PFX/PKCS#12 (never
upload a private key), not a certificate, trailing bytes, no code-signing usage, RSA < 2048 bits, a SHA-1 (or any
non-SHA-2/RSA) signature, lifetime-signing EKU, expired, not yet valid, self-issued unless the operator allows it.
The certificate rules themselves are the library's (:mod:`nuseal.x509.certs`); only the wording is here.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePath
from typing import Any, Final

from asn1crypto import cms as asn1_cms
from asn1crypto import pkcs12 as asn1_pkcs12
from cryptography import x509
from sqlalchemy import select
from sqlalchemy.orm import Session

from nuseal import oids
from nuseal.codes import NuCode
from nuseal.findings import Finding, Severity
from nuseal.server.db.models import Account, AccountCertificate, Certificate
from nuseal.server.services import audit, row_locks
from nuseal.server.services.accounts import find_account
from nuseal.server.services.context import ServiceContext
from nuseal.server.services.errors import InvalidInputError, NotFoundError
from nuseal.server.services.permissions import Action, Actor, authorize_on_account
from nuseal.x509 import certs, tools

#: nuget.org's ``CertificateValidator.MaximumSizeInBytes``.
MAX_CERTIFICATE_BYTES: Final = 10_000
#: nuget.org's ``CoreConstants.CertificateFileExtension``.
CERTIFICATE_EXTENSION: Final = ".cer"

# nuget.org's messages (Strings.resx, spec §A.2); ours add what was uploaded and why after them.
FILE_REQUIRED: Final = "A certificate file is required."
INVALID_FILE_TYPE: Final = "The file extension must be {0}."
INVALID_FILE_LENGTH: Final = "The file length is invalid."
FILE_TOO_LARGE: Final = "The file exceeds the size limit of {0} bytes."
INVALID_ENCODING: Final = "The file must be a DER encoded binary X.509 certificate."
CERTIFICATE_DOES_NOT_EXIST: Final = "The certificate does not exist."

_HEX_SEPARATORS = re.compile(r"[\s:]")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_SHA1_HEX = re.compile(r"^[0-9a-f]{40}$")
_PEM_LABEL = re.compile(rb"-----BEGIN ([A-Z0-9 #]+)-----")


class CertificateRejected(InvalidInputError):
    """An upload that cannot be registered. ``reason`` is a short machine-readable tag (``pem``, ``pfx``,
    ``not-a-certificate``, ``trailing-bytes``, ``certificate-rules``, ...); ``findings`` carry the NU codes of
    the certificate rules that failed, where NuGet has one."""

    def __init__(self, message: str, reason: str, findings: tuple[Finding, ...] = ()) -> None:
        super().__init__(message)
        self.reason = reason
        self.findings = findings


@dataclass(frozen=True)
class CertificateInfo:
    """A certificate as listed: identity, details (from registration on) and when it was linked."""

    sha256: str  # lower-case hex, the identity
    sha1: str  # lower-case hex, shown because users compare it with what Windows and NuGet e-mails print
    subject: str
    issuer: str
    not_before: datetime
    not_after: datetime
    self_issued: bool
    registered_at: datetime | None = None

    def is_expired(self, now: datetime) -> bool:
        return self.not_after <= now

    def to_dict(self, now: datetime) -> dict[str, Any]:
        return {
            "sha256": self.sha256, "sha1": self.sha1, "subject": self.subject, "issuer": self.issuer,
            "not_before": self.not_before.isoformat(), "not_after": self.not_after.isoformat(),
            "expired": self.is_expired(now), "self_issued": self.self_issued,
            "registered_at": None if self.registered_at is None else self.registered_at.isoformat(),
        }  # fmt: skip


@dataclass(frozen=True)
class Registration:
    certificate: CertificateInfo
    added: bool  # False: the account already had it (a no-op, as on nuget.org)


def _info(row: Certificate, registered_at: datetime | None = None) -> CertificateInfo:
    certificate = certs.load_der(row.der)
    return CertificateInfo(
        sha256=row.sha256, sha1=hashlib.sha1(row.der).hexdigest(), subject=row.subject, issuer=row.issuer,
        not_before=row.not_before, not_after=row.not_after, self_issued=certs.is_self_issued(certificate),
        registered_at=registered_at,
    )  # fmt: skip


# --- upload checks ----------------------------------------------------------------------------------------------


def nuget_der_heuristic(data: bytes) -> bool:
    """nuget.org's ``IsDerEncodedX509Certificate``: an outer SEQUENCE whose length (short or long form) is exactly
    the rest of the file, holding a SEQUENCE first (a PKCS#12 file holds an INTEGER first)."""
    if len(data) < 2 or data[0] != 0x30:
        return False
    if data[1] & 0x80:
        count = data[1] & 0x7F
        if count > 2:  # more length bytes than a 10,000-byte file can need (nuget.org's GetLengthByteCount)
            return False
        length, position = int.from_bytes(data[2:2 + count], "big"), 2 + count
        if len(data) < position:
            return False
    else:
        length, position = data[1], 2
    return length == len(data) - position and position < len(data) and data[position] == 0x30


def _der_extent(data: bytes) -> int | None:
    """The size of the first DER TLV in ``data`` (header + content), or None when its header is unreadable."""
    if len(data) < 2:
        return None
    if not data[1] & 0x80:
        return 2 + data[1]
    count = data[1] & 0x7F
    if count == 0 or count > 4 or len(data) < 2 + count:
        return None
    return 2 + count + int.from_bytes(data[2:2 + count], "big")


def _is_pkcs12(data: bytes) -> bool:
    try:
        pfx = asn1_pkcs12.Pfx.load(data, strict=True)
        content_type = pfx["auth_safe"]["content_type"].native
        return bool(pfx["version"].native == "v3" and content_type in ("data", "signed_data"))
    except (ValueError, TypeError, KeyError):
        return False


def _cms_content_type(data: bytes) -> str | None:
    try:
        info = asn1_cms.ContentInfo.load(data, strict=True)
        return str(info["content_type"].native)
    except (ValueError, TypeError, KeyError):
        return None


def _shown(name: str) -> str:
    return f"'{name}'"


def _pem_refusal(data: bytes, name: str) -> CertificateRejected:
    labels = [match.group(1).decode("ascii") for match in _PEM_LABEL.finditer(data)]
    if any("PRIVATE KEY" in label for label in labels):
        return CertificateRejected(
            f"{INVALID_ENCODING} {_shown(name)} is a PEM file that contains a private key ({', '.join(labels)}). "
            "Never upload a private key: it must stay with whoever signs the packages. Upload the certificate "
            f"alone in DER form: 'nuseal cert export {name} --out signing.cer' or "
            f"'openssl x509 -in {name} -outform der -out signing.cer'.",
            "private-key",
        )
    if "CERTIFICATE" in labels:
        return CertificateRejected(
            f"{INVALID_ENCODING} {_shown(name)} is PEM (Base64 text starting with '-----BEGIN CERTIFICATE-----'), "
            f"not DER (binary). Convert it: 'openssl x509 -in {name} -outform der -out signing.cer' "
            f"(or 'nuseal cert export {name} --out signing.cer') and upload signing.cer.",
            "pem",
        )
    what = ", ".join(labels) if labels else "no recognizable block"
    return CertificateRejected(
        f"{INVALID_ENCODING} {_shown(name)} is a PEM text file holding {what}, not a certificate. Upload the "
        "code-signing certificate as a DER .cer file.",
        "not-a-certificate",
    )


def _structure_refusal(data: bytes, name: str) -> CertificateRejected | None:
    """Why ``data`` is not exactly one DER certificate, or None when it is."""
    if data.lstrip().startswith(b"-----BEGIN") or b"-----BEGIN " in data[:1024]:
        return _pem_refusal(data, name)
    if _is_pkcs12(data):
        return CertificateRejected(
            f"{INVALID_ENCODING} {_shown(name)} is a PKCS#12 (PFX) file, which holds a private key. Never upload "
            "a private key: it must stay with whoever signs the packages. Export the certificate alone: "
            f"'nuseal cert export {name} --out signing.cer' or "
            f"'openssl pkcs12 -in {name} -nokeys -clcerts | openssl x509 -outform der -out signing.cer'.",
            "pfx",
        )
    content_type = _cms_content_type(data)
    if content_type is not None:
        return CertificateRejected(
            f"{INVALID_ENCODING} {_shown(name)} is a PKCS#7/CMS container ({content_type}), e.g. a .p7b bundle "
            "or a .p7s signature, not a single certificate. Export the code-signing certificate alone as DER.",
            "not-a-certificate",
        )
    extent = _der_extent(data) if data[:1] == b"\x30" else None
    if extent is not None and extent < len(data):
        try:
            certs.load_der(data[:extent])
        except ValueError:
            pass
        else:
            return CertificateRejected(
                f"{INVALID_ENCODING} {_shown(name)} holds a DER certificate of {extent} bytes followed by "
                f"{len(data) - extent} trailing byte(s). Upload exactly the certificate's bytes.",
                "trailing-bytes",
            )
    if extent is not None and extent > len(data):
        return CertificateRejected(
            f"{INVALID_ENCODING} {_shown(name)} is truncated: it announces {extent} bytes of DER but has only "
            f"{len(data)}.",
            "not-a-certificate",
        )
    if not nuget_der_heuristic(data):
        return CertificateRejected(
            f"{INVALID_ENCODING} {_shown(name)} is not a certificate: it does not start like a DER certificate "
            f"(first bytes: {data[:8].hex(' ')}).",
            "not-a-certificate",
        )
    try:
        certs.load_der(data)
    except ValueError as exc:
        return CertificateRejected(
            f"{INVALID_ENCODING} {_shown(name)} looks like DER but is not a readable X.509 certificate ({exc}).",
            "not-a-certificate",
        )
    return None


def _hash_name(certificate: x509.Certificate) -> str | None:
    try:
        algorithm = certificate.signature_hash_algorithm
    except certs.CERTIFICATE_ERRORS:
        return None
    return None if algorithm is None else algorithm.name


def _eku_text(certificate: x509.Certificate) -> str:
    usages = certs.extended_key_usages(certificate)
    return ", ".join(tools.eku_label(oid) for oid in sorted(usages)) if usages else "none readable"


def _rule_refusals(certificate: x509.Certificate, now: datetime, allow_self_issued: bool) -> list[Finding]:
    """Every rule the certificate breaks, worded for the person who uploaded it (library checks, our words)."""
    found: list[Finding] = []
    fingerprint = certs.fingerprint(certificate)

    def add(code: NuCode | None, message: str) -> None:
        found.append(Finding(code or NuCode.NU3018, Severity.ERROR, message, "certificate", fingerprint))

    for code, _nuget_message in certs.check_certificate(certificate, now, "certificate"):
        if code is NuCode.NU3013:
            oid = certificate.signature_algorithm_oid
            label = getattr(oid, "_name", "an unknown algorithm")
            sha1 = " (SHA-1)" if _hash_name(certificate) == "sha1" else ""
            add(code, f"it is signed with {label}{sha1} ({oid.dotted_string}); NuGet accepts only certificates "
                      "signed with SHA-256, SHA-384 or SHA-512 and RSA")
        elif code is NuCode.NU3014:
            bits = certs.rsa_key_bits(certificate)
            key = f"an RSA key of {bits} bits" if bits is not None else "not an RSA key"
            add(code, f"its public key is {key}; NuGet requires RSA with at least {certs.RSA_MIN_KEY_BITS} bits")
        elif code is NuCode.NU3015:
            add(code, f"it has the lifetime-signing usage ({oids.LIFETIME_SIGNING_EKU}), which NuGet does not "
                      "support: signatures would expire with the certificate")
        elif code is NuCode.NU3017:
            add(code, f"it is not yet valid (valid from {certs.not_before(certificate).isoformat()})")
    if certs.not_after(certificate) <= now:
        add(NuCode.NU3037, f"it expired on {certs.not_after(certificate).isoformat()}; packages signed with it "
                           "would fail validation: upload the renewed certificate")
    if not certs.is_valid_for_usage(certificate, oids.CODE_SIGNING_EKU):
        add(NuCode.NU3018, f"it is not valid for code signing (extended key usages: {_eku_text(certificate)}); "
                           f"a package-signing certificate needs Code Signing ({oids.CODE_SIGNING_EKU})")
    if not allow_self_issued and certs.is_self_issued(certificate):
        add(NuCode.NU3018, "it is self-issued (its issuer is its own subject), so packages signed with it do not "
                           "chain to a trusted root; this feed does not accept self-issued certificates "
                           "(the operator setting allow_self_issued_certificates is off)")
    return found


def check_upload(
    data: bytes | None, filename: str | None, *, now: datetime, allow_self_issued: bool
) -> x509.Certificate:
    """The certificate an upload holds, or :class:`CertificateRejected` saying what was uploaded and why not.

    Order: present, not empty, size (nuget.org's limit), content (PEM, PFX, containers, trailing bytes, nuget.org's
    DER heuristic, parsing), the ``.cer`` extension, then the certificate rules. The content comes before the
    extension on purpose: "never upload a private key" matters more than a file name.
    """
    name = PurePath(filename).name if filename else "the upload"
    if data is None:
        raise CertificateRejected(FILE_REQUIRED, "missing")
    if not data:
        raise CertificateRejected(f"{INVALID_FILE_LENGTH} {_shown(name)} is empty.", "empty")
    if len(data) > MAX_CERTIFICATE_BYTES:
        raise CertificateRejected(
            f"{FILE_TOO_LARGE.format(MAX_CERTIFICATE_BYTES)} {_shown(name)} has {len(data)} bytes or more; a "
            "DER certificate is typically 1-2 KB.",
            "too-large",
        )
    refusal = _structure_refusal(data, name)
    if refusal is not None:
        raise refusal
    if filename is not None and PurePath(filename).suffix.lower() != CERTIFICATE_EXTENSION:
        raise CertificateRejected(
            f"{INVALID_FILE_TYPE.format(CERTIFICATE_EXTENSION)} {_shown(name)} holds a DER certificate: rename it "
            f"to end in {CERTIFICATE_EXTENSION}.",
            "extension",
        )
    certificate = certs.load_der(data)
    problems = _rule_refusals(certificate, now, allow_self_issued)
    if problems:
        summary = certs.summarize(certificate)
        reasons = "; ".join(problem.message for problem in problems)
        raise CertificateRejected(
            f"The certificate in {_shown(name)} (subject '{summary.subject}', SHA-256 {summary.sha256.lower()}) "
            f"cannot sign packages for this feed: {reasons}.",
            "certificate-rules",
            tuple(problems),
        )
    return certificate


# --- identities ---------------------------------------------------------------------------------------------------


def parse_fingerprint(text: str) -> str:
    """A SHA-256 fingerprint as stored (64 lower-case hex digits); ``:`` and spaces are ignored."""
    value = _HEX_SEPARATORS.sub("", text).lower()
    if _SHA256_HEX.match(value):
        return value
    if _SHA1_HEX.match(value):
        raise InvalidInputError(
            f"'{text}' is a SHA-1 fingerprint: certificates are identified by their SHA-256 fingerprint "
            "(64 hex digits), e.g. 'Get-FileHash -Algorithm SHA256 signing.cer' or 'sha256sum signing.cer'"
        )
    raise InvalidInputError(f"'{text}' is not a SHA-256 certificate fingerprint (64 hexadecimal digits)")


# --- registration ---------------------------------------------------------------------------------------------


def _store(session: Session, certificate: x509.Certificate, at: datetime) -> Certificate:
    der = certs.der(certificate)
    sha256 = hashlib.sha256(der).hexdigest()
    row = session.get(Certificate, sha256)
    if row is None:
        row = Certificate(
            sha256=sha256, der=der, subject=certs.subject_string(certificate)[:2048],
            issuer=certs.issuer_string(certificate)[:2048], not_before=certs.not_before(certificate),
            not_after=certs.not_after(certificate), created_at=at,
        )  # fmt: skip
        session.add(row)
        session.flush()
    return row


def _details(info: CertificateInfo) -> dict[str, Any]:
    return {"sha256": info.sha256, "subject": info.subject, "issuer": info.issuer,
            "not_after": info.not_after.isoformat()}


def register(
    ctx: ServiceContext, actor: Actor, account_name: str, data: bytes | None, filename: str | None
) -> Registration:
    """Check an upload and register its certificate to ``account_name`` (a no-op when it already is).

    Who may comes first (a stranger learns nothing about the upload), then the upload checks, then the change."""
    at = ctx.now()
    with ctx.db.reading() as session:
        authorize_on_account(session, actor, Action.MANAGE_CERTIFICATES, find_account(session, account_name))
    certificate = check_upload(data, filename, now=at, allow_self_issued=ctx.settings.allow_self_issued_certificates)
    with ctx.db.transaction() as session:
        account = find_account(session, account_name)
        row_locks.lock_account(session, account)  # pushes judging without this certificate finish first
        authorize_on_account(session, actor, Action.MANAGE_CERTIFICATES, account)
        row = _store(session, certificate, at)
        link = session.get(AccountCertificate, (account.id, row.sha256))
        if link is not None:
            return Registration(_info(row, link.registered_at), added=False)
        session.add(AccountCertificate(account_id=account.id, certificate_sha256=row.sha256, registered_at=at))
        info = _info(row, at)
        audit.record(session, actor, audit.CERTIFICATE_ADD, f"{account.name}/{row.sha256}", at=at,
                     before={"registered": False}, after={"registered": True} | _details(info))  # fmt: skip
    return Registration(info, added=True)


def unregister(ctx: ServiceContext, actor: Actor, account_name: str, fingerprint: str) -> bool:
    """Remove the link between ``account_name`` and a certificate; ``False`` when there was none (a no-op, as on
    nuget.org). :class:`NotFoundError` when no account has ever registered that certificate."""
    sha256 = parse_fingerprint(fingerprint)
    at = ctx.now()
    with ctx.db.transaction() as session:
        account = find_account(session, account_name)
        row_locks.lock_account(session, account)  # pushes judging with this certificate finish first
        authorize_on_account(session, actor, Action.MANAGE_CERTIFICATES, account)
        row = session.get(Certificate, sha256)
        if row is None:
            raise NotFoundError(f"{CERTIFICATE_DOES_NOT_EXIST} No account has registered {sha256}.")
        link = session.get(AccountCertificate, (account.id, sha256))
        if link is None:
            return False
        info = _info(row, link.registered_at)
        session.delete(link)
        audit.record(session, actor, audit.CERTIFICATE_REMOVE, f"{account.name}/{sha256}", at=at,
                     before={"registered": True} | _details(info), after={"registered": False})  # fmt: skip
    return True


def list_for_account(ctx: ServiceContext, actor: Actor, account_name: str) -> list[CertificateInfo]:
    """The certificates registered to ``account_name``, oldest registration first."""
    with ctx.db.reading() as session:
        account = find_account(session, account_name)
        authorize_on_account(session, actor, Action.VIEW_ACCOUNT, account)
        rows = session.execute(
            select(Certificate, AccountCertificate.registered_at)
            .join(AccountCertificate, AccountCertificate.certificate_sha256 == Certificate.sha256)
            .where(AccountCertificate.account_id == account.id)
            .order_by(AccountCertificate.registered_at, Certificate.sha256)
        )
        return [_info(row, registered_at) for row, registered_at in rows]


def fingerprints_by_account(session: Session, accounts: Iterable[Account]) -> dict[int, frozenset[str]]:
    """Account id → the SHA-256 fingerprints registered to it (the facts the signer rules work on)."""
    ids = [account.id for account in accounts]
    found: dict[int, set[str]] = {account_id: set() for account_id in ids}
    if ids:
        links = session.execute(
            select(AccountCertificate.account_id, AccountCertificate.certificate_sha256)
            .where(AccountCertificate.account_id.in_(ids))
        )
        for account_id, sha256 in links:
            found[account_id].add(sha256)
    return {account_id: frozenset(values) for account_id, values in found.items()}
