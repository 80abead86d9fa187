"""Certificate tools: create self-issued code-signing / TSA certificates, load, export and describe them.

``create_certificate`` mirrors PowerShell's ``New-SelfSignedCertificate -Type CodeSigningCert`` (RSA, SHA-256,
EKU codeSigning, KU digitalSignature, SKI); with ``timestamping=True`` it makes a TSA certificate instead
(critical EKU timeStamping, as RFC 3161 and OpenSSL's TSA require); given an ``issuer`` from ``create_authority``
(a self-signed root CA) it issues under it, as a feed's development repository certificate is. ``describe``
reports what NuGet would say about a certificate used to sign (spec §4.8), applying ``nuseal.x509.certs``' rules.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID

from nuseal import oids
from nuseal.codes import NuCode
from nuseal.errors import CertificateError
from nuseal.findings import Finding, Severity, Target
from nuseal.x509 import certs

ALLOWED_KEY_SIZES = (2048, 3072, 4096)
# Backdating keeps a certificate made "now" from being NU3017 "not yet valid" on a machine whose clock is a
# little behind (PowerShell's New-SelfSignedCertificate backdates too).
_BACKDATE = timedelta(minutes=10)
_EKU_NAMES = {
    oids.CODE_SIGNING_EKU: "Code Signing",
    oids.TIME_STAMPING_EKU: "Time Stamping",
    oids.LIFETIME_SIGNING_EKU: "Lifetime Signing",
    oids.ANY_EXTENDED_KEY_USAGE: "Any Purpose",
    "1.3.6.1.5.5.7.3.1": "Server Authentication",
    "1.3.6.1.5.5.7.3.2": "Client Authentication",
    "1.3.6.1.5.5.7.3.4": "Secure Email",
    "1.3.6.1.5.5.7.3.9": "OCSP Signing",
}


# --- creating ------------------------------------------------------------------------------------------


def parse_subject(subject: str) -> x509.Name:
    """``"CN=Contoso, O=Contoso Ltd"`` -> Name. ``ValueError`` naming the text when it is not a DN."""
    # Windows tools write "CN=Contoso, O=Contoso Ltd"; RFC 4514 allows no space after the separator.
    parts = re.split(r"(?<!\\),", subject)
    try:
        name = x509.Name.from_rfc4514_string(",".join(part.strip() for part in parts))
    except ValueError as exc:
        detail = f" ({exc})" if str(exc) else ""
        raise ValueError(f"The subject '{subject}' is not a distinguished name like 'CN=Contoso'{detail}.") from None
    if not name.rdns:
        raise ValueError(f"The subject '{subject}' is empty.")
    return name


def create_certificate(
    subject: str,
    *,
    now: datetime,
    days: int = 365,
    key_size: int = 2048,
    timestamping: bool = False,
    issuer: tuple[x509.Certificate, rsa.RSAPrivateKey] | None = None,
) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """An RSA/SHA-256 certificate for code signing (or, with ``timestamping``, for a TSA): self-issued, or issued
    by ``issuer`` (a certificate authority from :func:`create_authority` and its key)."""
    _check_size_and_days(key_size, days)
    name = parse_subject(subject)
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    usage = ExtendedKeyUsageOID.TIME_STAMPING if timestamping else ExtendedKeyUsageOID.CODE_SIGNING
    key_usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name if issuer is None else issuer[0].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage, critical=True)
        # A TSA's EKU must be critical (RFC 3161 §2.3); PowerShell marks the code-signing EKU non-critical.
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=timestamping)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()), critical=False
        )
    return builder.sign(key if issuer is None else issuer[1], hashes.SHA256()), key


def create_authority(
    subject: str, *, now: datetime, days: int = 3650, key_size: int = 2048
) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """A self-signed RSA/SHA-256 root certificate authority (for development and test certificates only)."""
    _check_size_and_days(key_size, days)
    name = parse_subject(subject)
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    usage = x509.KeyUsage(
        digital_signature=False, content_commitment=False, key_encipherment=False, data_encipherment=False,
        key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
    )  # fmt: skip
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _check_size_and_days(key_size: int, days: int) -> None:
    if key_size not in ALLOWED_KEY_SIZES:
        raise ValueError(f"The key size {key_size} is not supported: use 2048, 3072 or 4096 bits.")
    if days < 1:
        raise ValueError(f"The validity must be at least one day, not {days}.")


def pfx_bytes(
    certificate: x509.Certificate,
    key: rsa.RSAPrivateKey,
    password: str | None,
    extra: list[x509.Certificate] | None = None,
) -> bytes:
    """Modern PKCS#12: PBES2 AES-256-CBC and an HMAC-SHA256 MAC (no RC2/3DES, no SHA-1 MAC)."""
    encryption: serialization.KeySerializationEncryption
    if password:
        encryption = (
            serialization.PrivateFormat.PKCS12.encryption_builder()
            .kdf_rounds(100_000)
            .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
            .hmac_hash(hashes.SHA256())
            .build(password.encode())
        )
    else:
        encryption = serialization.NoEncryption()
    friendly = certificate.subject.rfc4514_string().encode()
    return pkcs12.serialize_key_and_certificates(friendly, key, certificate, extra or None, encryption)


def write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary file next to ``path`` and rename it over: never a half-written file."""
    path = Path(path)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


# --- loading -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedCertificate:
    """What a certificate file held: the end certificate, its key when present, and any other certificates."""

    certificate: x509.Certificate
    key: rsa.RSAPrivateKey | None
    others: tuple[x509.Certificate, ...] = ()


def load_certificate_file(path: Path, password: str | None = None) -> LoadedCertificate:
    """Load a PFX/P12, a PEM (certificates, optionally a key) or a DER ``.cer``; ``CertificateError`` if not."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise CertificateError(f"The certificate file '{path}' was not found.", NuCode.NU3001) from None
    except OSError as exc:
        raise CertificateError(f"The certificate file '{path}' could not be read: {exc.strerror}.") from None
    if b"-----BEGIN" in data:
        return _load_pem(data, path, password)
    try:
        return LoadedCertificate(x509.load_der_x509_certificate(data), None)
    except ValueError:
        pass
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(data, password.encode() if password else None)
    except ValueError:
        raise CertificateError(
            f"The certificate file '{path}' could not be opened: it is not a certificate, or it is a PFX file "
            "and the password is wrong or missing.",
            NuCode.NU3001,
        ) from None
    pool = ([cert] if cert is not None else []) + list(extra)
    return _pick(pool, key, path)


def _load_pem(data: bytes, path: Path, password: str | None) -> LoadedCertificate:
    try:
        pool = x509.load_pem_x509_certificates(data) if b"-----BEGIN CERTIFICATE-----" in data else []
    except ValueError as exc:
        raise CertificateError(f"The certificates in '{path}' could not be read: {exc}.", NuCode.NU3001) from None
    key: object = None
    if b"PRIVATE KEY-----" in data:
        try:
            key = serialization.load_pem_private_key(data, password.encode() if password else None)
        except (ValueError, TypeError):
            raise CertificateError(
                f"The private key in '{path}' could not be read: the password is wrong or missing, or the key "
                "is not valid PEM.",
                NuCode.NU3001,
            ) from None
    return _pick(pool, key, path)


def _pick(pool: list[x509.Certificate], key: object, path: Path) -> LoadedCertificate:
    if not pool:
        raise CertificateError(f"The file '{path}' does not contain a certificate.", NuCode.NU3001)
    if key is not None and not isinstance(key, rsa.RSAPrivateKey):
        raise CertificateError(f"The private key in '{path}' is not an RSA key.", NuCode.NU3014)
    rsa_key = key if isinstance(key, rsa.RSAPrivateKey) else None
    if rsa_key is not None:
        numbers = rsa_key.public_key().public_numbers()
        matching = [c for c in pool if _rsa_numbers(c) == numbers]
        if not matching:
            raise CertificateError(f"The private key in '{path}' matches none of its certificates.", NuCode.NU3001)
        leaf = matching[0]
    else:
        leaf = pool[0]
    return LoadedCertificate(leaf, rsa_key, tuple(c for c in pool if c != leaf))


def _rsa_numbers(cert: x509.Certificate) -> rsa.RSAPublicNumbers | None:
    public = cert.public_key()
    return public.public_numbers() if isinstance(public, rsa.RSAPublicKey) else None


def der_bytes(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


# --- NuGet's rules and description ------------------------------------------------------------------------


def fingerprint(certificate: x509.Certificate, algorithm: str = "sha256") -> str:
    """Upper-case hex without separators, as NuGet prints and compares fingerprints."""
    return hashlib.new(algorithm, der_bytes(certificate)).hexdigest().upper()


def _ekus(certificate: x509.Certificate) -> list[str] | None:
    try:
        usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return None
    return [oid.dotted_string for oid in usages]


def check_signing_certificate(certificate: x509.Certificate, now: datetime) -> list[Finding]:
    """Every NuGet sign-time rule this certificate breaks (spec §4.8); [] when NuGet would sign with it.

    NU3013 signature algorithm, NU3014 RSA < 2048, NU3015 lifetime EKU, NU3017 not yet valid, NU3018 no
    code-signing usage, each an error-level ``Finding`` about the certificate. The rules themselves live in
    ``nuseal.x509.certs`` (one definition for sign/verify).
    """
    fp = fingerprint(certificate)
    return [Finding(code, Severity.ERROR, message, Target.PRIMARY, fp)
            for code, message in certs.check_signing_certificate(certificate, now)]


def _key_text(public: object) -> str:
    if isinstance(public, rsa.RSAPublicKey):
        return f"RSA {public.key_size} bits"
    if isinstance(public, ec.EllipticCurvePublicKey):
        return f"EC {public.curve.name}"
    return type(public).__name__.removeprefix("_")


@dataclass(frozen=True)
class CertificateDescription:
    """What ``nuseal cert show`` prints; ``to_dict()`` is the ``--json`` shape."""

    subject: str
    issuer: str
    serial_number: str
    not_before: datetime
    not_after: datetime
    sha256_fingerprint: str
    sha1_fingerprint: str
    signature_algorithm: str
    key: str
    extended_key_usages: list[str] | None
    self_issued: bool
    has_private_key: bool
    problems: list[Finding] = field(default_factory=list)

    @property
    def can_sign(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "serialNumber": self.serial_number,
            "notBefore": self.not_before.isoformat(),
            "notAfter": self.not_after.isoformat(),
            "sha256Fingerprint": self.sha256_fingerprint,
            "sha1Fingerprint": self.sha1_fingerprint,
            "signatureAlgorithm": self.signature_algorithm,
            "key": self.key,
            "extendedKeyUsages": self.extended_key_usages,
            "selfIssued": self.self_issued,
            "hasPrivateKey": self.has_private_key,
            "nugetCanSign": self.can_sign,
            "problems": [{"code": p.code.value, "message": p.message} for p in self.problems],
        }


def eku_label(oid: str) -> str:
    return f"{_EKU_NAMES[oid]} ({oid})" if oid in _EKU_NAMES else oid


def describe(certificate: x509.Certificate, now: datetime, *, has_private_key: bool = False) -> CertificateDescription:
    oid = certificate.signature_algorithm_oid
    return CertificateDescription(
        subject=certificate.subject.rfc4514_string(),
        issuer=certificate.issuer.rfc4514_string(),
        serial_number=f"{certificate.serial_number:X}",
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        sha256_fingerprint=fingerprint(certificate, "sha256"),
        sha1_fingerprint=fingerprint(certificate, "sha1"),
        signature_algorithm=f"{getattr(oid, '_name', 'unknown')} ({oid.dotted_string})",
        key=_key_text(certificate.public_key()),
        extended_key_usages=_ekus(certificate),
        self_issued=certificate.subject == certificate.issuer,
        has_private_key=has_private_key,
        problems=check_signing_certificate(certificate, now),
    )
