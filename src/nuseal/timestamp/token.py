"""RFC 3161 timestamp tokens as NuGet loads and checks them (spec §5.3-5.4).

``load_timestamp`` applies NuGet's load-time rules (one signer, signing certificate present, a
signing-certificate(-v2) attribute, TSTInfo content, a valid CMS signature); ``check_timestamp`` applies the
verify-time rules that do not need chain building (NU3019, NU3022-NU3025, NU3030, NU3036). Chain building for the
TSA certificate is the verifier's job (``nuseal.x509.chain``), as in NuGet.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from asn1crypto import tsp
from cryptography import x509

from nuseal import oids
from nuseal.cms.der import ASN1_ERRORS, encapsulated_content, reason
from nuseal.cms.parse import (
    SignerView,
    build_signer_view,
    certificate_bag,
    load_certificates,
    load_signed_data,
    verify_signer_signature,
)
from nuseal.codes import Messages, NuCode
from nuseal.errors import TimestampError
from nuseal.x509 import certs


@dataclass(frozen=True)
class Timestamp:
    """A loaded timestamp token with its time window (genTime ± accuracy)."""

    raw: bytes
    signer: SignerView
    certificates: tuple[x509.Certificate, ...]
    gen_time: datetime
    accuracy: timedelta
    policy_oid: str
    imprint_algorithm_oid: str
    imprint: bytes
    nonce: int | None
    serial_number: int

    @property
    def signer_certificate(self) -> x509.Certificate:
        assert self.signer.certificate is not None  # guaranteed by load_timestamp
        return self.signer.certificate

    @property
    def lower_limit(self) -> datetime:
        return self.gen_time - self.accuracy

    @property
    def upper_limit(self) -> datetime:
        return self.gen_time + self.accuracy

    @property
    def imprint_algorithm_name(self) -> str:
        return oids.SHA2_HASHES.get(self.imprint_algorithm_oid, self.imprint_algorithm_oid)


def _accuracy(tst_info: tsp.TSTInfo, policy_oid: str) -> timedelta:
    """NuGet: seconds·1000 + millis + micros/1000; absent → 1 s under the ETSI baseline policy, else 0."""
    accuracy = tst_info["accuracy"]
    if not accuracy:
        return timedelta(seconds=1) if policy_oid == oids.ETSI_BASELINE_TIMESTAMP_POLICY else timedelta(0)
    native = accuracy.native
    seconds = native.get("seconds") or 0
    millis = native.get("millis") or 0
    micros = native.get("micros") or 0
    total_ms = seconds * 1000 + millis + micros // 1000
    if total_ms < 0:
        raise ValueError("negative accuracy")
    return timedelta(milliseconds=total_ms)


def load_timestamp(der: bytes, owner: str = "signature") -> Timestamp:
    """Decode a timestamp token (a ``signature-time-stamp-token`` attribute value).

    ``owner`` is NuGet's friendly signature name for messages ("author primary signature", ...).
    Raises ``TimestampError`` with NU3021 (invalid), NU3020 (no signer certificate) or NU3029 (no certificates);
    nothing else escapes (malformed DER anywhere in the token, or a certificate that cannot be loaded, is NU3021).
    """
    invalid = Messages.TIMESTAMP_INVALID.format(owner)
    try:
        with certs.quiet():
            return _load_timestamp(der, owner, invalid)
    except TimestampError:
        raise
    except ASN1_ERRORS as exc:
        raise TimestampError(f"{invalid} ({reason(exc)})", NuCode.NU3021) from exc


def _load_timestamp(der: bytes, owner: str, invalid: str) -> Timestamp:
    signed_data = load_signed_data(der)
    signer_infos = list(signed_data["signer_infos"])
    bag = certificate_bag(signed_data)
    content_type = signed_data["encap_content_info"]["content_type"].dotted
    tst_der = encapsulated_content(signed_data) or b""
    if len(signer_infos) != 1:
        raise TimestampError(invalid, NuCode.NU3021)
    certificates = load_certificates(bag)
    signer = build_signer_view(signer_infos[0], bag, certificates, with_nuget_attributes=False)
    if signer.certificate is None:
        raise TimestampError(Messages.TIMESTAMP_NO_CERT.format(owner), NuCode.NU3020)
    present = {a.oid for a in signer.signed_attributes or ()}
    if oids.SIGNING_CERTIFICATE not in present and oids.SIGNING_CERTIFICATE_V2 not in present:
        raise TimestampError(
            "Either the signing-certificate or signing-certificate-v2 attribute must be present.", NuCode.NU3021)
    if not certificates:
        raise TimestampError(Messages.TIMESTAMP_SIGNATURE_INVALID.format(owner), NuCode.NU3029)
    if content_type != oids.TST_INFO:
        raise TimestampError(invalid, NuCode.NU3021)
    if verify_signer_signature(signer, tst_der) is not None:
        raise TimestampError(invalid, NuCode.NU3021)
    tst_info = tsp.TSTInfo.load(tst_der, strict=True)
    policy_oid = tst_info["policy"].dotted
    gen_time = tst_info["gen_time"].native
    imprint = tst_info["message_imprint"]
    nonce = tst_info["nonce"].native if tst_info["nonce"] else None
    return Timestamp(
        raw=der, signer=signer, certificates=certificates, gen_time=gen_time.astimezone(UTC),
        accuracy=_accuracy(tst_info, policy_oid), policy_oid=policy_oid,
        imprint_algorithm_oid=imprint["hash_algorithm"]["algorithm"].dotted,
        imprint=bytes(imprint["hashed_message"].native), nonce=nonce,
        serial_number=int(tst_info["serial_number"].native),
    )


def check_timestamp(timestamp: Timestamp, signature_value: bytes, now: datetime,
                    owner: str = "signature") -> list[tuple[NuCode, str]]:
    """NuGet ``Timestamp.Verify`` checks that need no chain (spec §5.3), in NuGet's order."""
    problems: list[tuple[NuCode, str]] = []
    tsa_certificate = timestamp.signer_certificate
    for code, message in certs.check_certificate(tsa_certificate, now, owner, timestamp=True):
        if code is not NuCode.NU3025:
            problems.append((code, message))
    if timestamp.signer.digest_algorithm_oid not in oids.SHA2_HASHES:
        problems.append((NuCode.NU3024, Messages.TIMESTAMP_DIGEST_ALGORITHM.format(owner)))
    if timestamp.imprint_algorithm_oid not in oids.SHA2_HASHES:
        problems.append((NuCode.NU3030, Messages.TIMESTAMP_IMPRINT_ALGORITHM.format(owner)))
    else:
        expected = hashlib.new(oids.SHA2_HASHES[timestamp.imprint_algorithm_oid], signature_value).digest()
        if expected != timestamp.imprint:
            problems.append((NuCode.NU3019, Messages.TIMESTAMP_INTEGRITY.format(owner)))
    if certs.not_before(tsa_certificate) > now.astimezone(UTC):
        problems.append((NuCode.NU3025, Messages.TIMESTAMP_NOT_YET_VALID.format(owner)))
    if not (certs.not_before(tsa_certificate) <= timestamp.gen_time < certs.not_after(tsa_certificate)):
        problems.append((NuCode.NU3036, Messages.TIMESTAMP_GENTIME_OUTSIDE.format(owner)))
    return problems
