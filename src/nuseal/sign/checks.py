"""Sign-time checks on the signing certificate and on a fresh timestamp token (spec §4.8, §5.2).

At sign time NuGet's certificate checks are errors (``CertificateError``); a few chain findings are
warnings, returned as ``(NuCode, message)`` pairs for the caller to log.

Local stand-ins: the lead owns the shared versions (``nuseal.x509.certs`` for NU3013-NU3017 and
``nuseal.timestamp.token`` for NU3019-NU3036). These functions implement only what signing needs and should
be replaced by calls to those once they land.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

from asn1crypto import cms, tsp
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from nuseal.cms import oids
from nuseal.codes import NuCode
from nuseal.errors import CertificateError, TimestampError

Finding = tuple[NuCode, str]

_LIFETIME_SIGNING = ObjectIdentifier(oids.LIFETIME_SIGNING_EKU)
_MIN_RSA_BITS = 2048


def _fp(certificate: x509.Certificate) -> str:
    from cryptography.hazmat.primitives import hashes

    return certificate.fingerprint(hashes.SHA256()).hex().upper()


def _certificate_problem(certificate: x509.Certificate, now: datetime, what: str) -> Finding | None:
    """NU3013/NU3014/NU3015/NU3017 in NuGet's order (``SigningUtility.Verify``), first failure only."""
    fp = _fp(certificate)
    if certificate.signature_algorithm_oid.dotted_string not in oids.SHA2_RSA_SIGNATURES:
        return NuCode.NU3013, (
            f"The {what} has an unsupported signature algorithm. The signing certificate is not supported "
            f"(certificate {fp}, algorithm {certificate.signature_algorithm_oid.dotted_string})."
        )
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < _MIN_RSA_BITS:
        size = f"{key.key_size}-bit RSA" if isinstance(key, rsa.RSAPublicKey) else type(key).__name__
        return NuCode.NU3014, (
            f"The {what}'s certificate does not meet a minimum public key length requirement "
            f"(certificate {fp} has a {size} key; RSA 2048 bits or more is required)."
        )
    if _lifetime_signer(certificate):
        return NuCode.NU3015, (
            f"The {what}'s certificate has lifetime signer EKU. Certificates with lifetime signer EKU are "
            f"not supported (certificate {fp})."
        )
    if certificate.not_valid_before_utc > now:
        return NuCode.NU3017, (
            f"The {what}'s certificate is not yet valid (certificate {fp} is valid from "
            f"{certificate.not_valid_before_utc.isoformat()})."
        )
    return None


def _lifetime_signer(certificate: x509.Certificate) -> bool:
    try:
        eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return _LIFETIME_SIGNING in eku


def _valid_for(certificate: x509.Certificate, usage: ObjectIdentifier) -> bool:
    """NuGet's ApplicationPolicy: no EKU extension means every usage; anyEKU counts too."""
    try:
        eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return usage in eku or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in eku


def check_signing_certificate(chain: Sequence[x509.Certificate], now: datetime) -> list[Finding]:
    """Sign-time checks (spec §4.8): errors raise ``CertificateError``; warnings are returned.

    ``chain`` is leaf first, as the signer assembled it from the certificates it was given. Differences from
    NuGet, deliberately: we have no machine trust store and do not go online at sign time, so an incomplete
    chain or a self-issued certificate is a NU3018 *warning* (NuGet: warning for self-issued, error for an
    untrusted root), and revocation is not checked here (the verifier does that).
    """
    leaf = chain[0]
    problem = _certificate_problem(leaf, now, "signing certificate")
    if problem is not None:
        raise CertificateError(problem[1], problem[0])
    fp = _fp(leaf)
    if not _valid_for(leaf, ExtendedKeyUsageOID.CODE_SIGNING):
        raise CertificateError(
            "Certificate chain validation failed. The certificate is not valid for the requested usage "
            f"(certificate {fp} lacks the code signing EKU 1.3.6.1.5.5.7.3.3).",
            NuCode.NU3018,
        )
    for cert in chain:
        if cert.not_valid_after_utc < now:
            raise CertificateError(
                "Certificate chain validation failed. A certificate in the chain has expired "
                f"(certificate {_fp(cert)} expired {cert.not_valid_after_utc.isoformat()}).",
                NuCode.NU3018,
            )
    warnings: list[Finding] = []
    last = chain[-1]
    if last.issuer != last.subject:
        warnings.append(
            (
                NuCode.NU3018,
                "The certificate chain could not be built to a root certificate from the certificates given "
                f"(last certificate {_fp(last)}, issued by {last.issuer.rfc4514_string()}). "
                "The package will be signed with a partial chain.",
            )
        )
    elif len(chain) == 1:
        warnings.append(
            (
                NuCode.NU3018,
                "A certificate chain processed, but terminated in a root certificate which is not trusted by "
                f"the trust provider (self-issued certificate {fp}).",
            )
        )
    return warnings


def check_timestamp_token(token: bytes, signature_value: bytes, now: datetime) -> list[Finding]:
    """Checks NuGet runs on a fresh timestamp response (spec §5.2 steps 3, 5-10); errors raise.

    NU3026 (nonce) belongs to the timestamp client, which sees the request. The CMS signature of the token
    (NU3021) and the TSA chain (NU3028) are left to the verifier.
    """
    try:
        info = cms.ContentInfo.load(token)
        signed_data = info["content"]
        tst_info = signed_data["encap_content_info"]["content"].parsed
        if not isinstance(tst_info, tsp.TSTInfo):
            raise ValueError("eContent is not a TSTInfo")
        signer = signed_data["signer_infos"][0]
        imprint = tst_info["message_imprint"]
        imprint_oid = imprint["hash_algorithm"]["algorithm"].dotted
        gen_time = tst_info["gen_time"].native
        digest_oid = signer["digest_algorithm"]["algorithm"].dotted
        certs = [c.chosen for c in signed_data["certificates"]] if signed_data["certificates"] else []
        tsa_certs = [x509.load_der_x509_certificate(c.dump()) for c in certs]
        sid = signer["sid"]
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise TimestampError(f"The timestamp response is invalid: {exc}.", NuCode.NU3021) from exc
    if imprint_oid not in oids.SHA2_HASHES:
        raise TimestampError(
            f"The timestamp's message imprint uses an unsupported hash algorithm ({imprint_oid}).",
            NuCode.NU3030,
        )
    expected = hashlib.new(oids.SHA2_HASHES[imprint_oid], signature_value).digest()
    if imprint["hashed_message"].native != expected:
        raise TimestampError(
            "The timestamp integrity check failed: the message imprint does not match the signature value.",
            NuCode.NU3019,
        )
    tsa = _find_signer(sid, tsa_certs)
    if tsa is None:
        raise TimestampError("The timestamp's signing certificate is missing.", NuCode.NU3020)
    problem = _certificate_problem(tsa, now, "timestamp")
    if problem is not None:
        code = {NuCode.NU3013: NuCode.NU3022, NuCode.NU3014: NuCode.NU3023, NuCode.NU3017: NuCode.NU3025}.get(
            problem[0], NuCode.NU3028
        )
        raise TimestampError(problem[1], code)
    if digest_oid not in oids.SHA2_HASHES:
        raise TimestampError(
            f"The timestamp signature has an unsupported digest algorithm ({digest_oid}).", NuCode.NU3024
        )
    if not tsa.not_valid_before_utc <= gen_time < tsa.not_valid_after_utc:
        raise TimestampError(
            "The timestamp's generalized time is outside the timestamping certificate's validity period "
            f"(genTime {gen_time.isoformat()}, certificate {_fp(tsa)}).",
            NuCode.NU3036,
        )
    if not _valid_for(tsa, ExtendedKeyUsageOID.TIME_STAMPING):
        raise TimestampError(
            f"Certificate chain validation failed for the timestamp certificate {_fp(tsa)}: it is not valid "
            "for timestamping.",
            NuCode.NU3028,
        )
    return []


def _find_signer(
    sid: cms.SignerIdentifier, certificates: Sequence[x509.Certificate]
) -> x509.Certificate | None:
    for cert in certificates:
        if sid.name == "subject_key_identifier":
            try:
                ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
            except x509.ExtensionNotFound:
                continue
            if ski == sid.chosen.native:
                return cert
        else:
            issuer_serial = sid.chosen
            if (
                cert.serial_number == issuer_serial["serial_number"].native
                and cert.issuer.public_bytes() == issuer_serial["issuer"].dump()
            ):
                return cert
    return None
