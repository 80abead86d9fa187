"""RFC 3161 timestamp tokens as NuGet loads and checks them (spec §5.3-5.4).

``load_timestamp`` applies NuGet's load-time rules (one signer, signing certificate present, a
signing-certificate(-v2) attribute, TSTInfo content, a valid CMS signature); ``check_timestamp`` applies the
verify-time rules that do not need chain building (NU3019, NU3022-NU3025, NU3030, NU3036). Chain building for the
TSA certificate is the verifier's job (``nuseal.x509.chain``), as in NuGet.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING

from cryptography import x509

from nuseal import oids
from nuseal.cms import der
from nuseal.cms.der import ASN1_ERRORS, Unusual, reason
from nuseal.cms.parse import SignerView, build_signer_view, load_certificates, verify_signer_signature
from nuseal.codes import Messages, NuCode
from nuseal.errors import TimestampError
from nuseal.record import Struct
from nuseal.x509 import certs

if TYPE_CHECKING:
    from asn1crypto import tsp


class Timestamp(Struct, frozen=True):
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
    accuracy = tst_info["accuracy"]
    if not accuracy:
        return _accuracy_of(None, None, None, False, policy_oid)
    native = accuracy.native
    return _accuracy_of(native.get("seconds"), native.get("millis"), native.get("micros"), True, policy_oid)


def load_timestamp(token: bytes, owner: str = "signature") -> Timestamp:
    """Decode a timestamp token (a ``signature-time-stamp-token`` attribute value).

    ``owner`` is NuGet's friendly signature name for messages ("author primary signature", ...).
    Raises ``TimestampError`` with NU3021 (invalid), NU3020 (no signer certificate) or NU3029 (no certificates);
    nothing else escapes (malformed DER anywhere in the token, or a certificate that cannot be loaded, is NU3021).
    """
    invalid = Messages.TIMESTAMP_INVALID.format(owner)
    try:
        with certs.quiet():
            return _load_timestamp(token, owner, invalid)
    except TimestampError:
        raise
    except ASN1_ERRORS as exc:
        raise TimestampError(f"{invalid} ({reason(exc)})", NuCode.NU3021) from exc


def _load_timestamp(token: bytes, owner: str, invalid: str) -> Timestamp:
    signed_data = der.signed_data_fields(token)
    signer_infos = signed_data.signer_infos
    content_type = signed_data.content_type
    if signed_data.content_error is not None:
        raise ValueError(signed_data.content_error)
    tst_der = signed_data.content or b""
    if len(signer_infos) != 1:
        raise TimestampError(invalid, NuCode.NU3021)
    certificates = load_certificates(signed_data.certificates)
    signer = build_signer_view(signer_infos[0], certificates, with_nuget_attributes=False)
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
    try:
        tst = read_tst_info(tst_der)
    except der.DECODE_ERRORS:
        tst = _tst_info_by_asn1crypto(tst_der)
    return Timestamp(raw=token, signer=signer, certificates=certificates, gen_time=tst.gen_time.astimezone(UTC),
                     accuracy=tst.accuracy, policy_oid=tst.policy_oid, imprint_algorithm_oid=tst.imprint_algorithm_oid,
                     imprint=tst.imprint, nonce=tst.nonce, serial_number=tst.serial_number)


class TstInfo(Struct, frozen=True):
    """The TSTInfo fields NuGet reads (RFC 3161 §2.4.2)."""

    policy_oid: str
    imprint_algorithm_oid: str
    imprint: bytes
    serial_number: int
    gen_time: datetime
    accuracy: timedelta
    nonce: int | None


def _accuracy_of(seconds: int | None, millis: int | None, micros: int | None, present: bool,
                 policy_oid: str) -> timedelta:
    """NuGet: seconds·1000 + millis + micros/1000; absent → 1 s under the ETSI baseline policy, else 0."""
    if not present:
        return timedelta(seconds=1) if policy_oid == oids.ETSI_BASELINE_TIMESTAMP_POLICY else timedelta(0)
    total_ms = (seconds or 0) * 1000 + (millis or 0) + (micros or 0) // 1000
    if total_ms < 0:
        raise ValueError("negative accuracy")
    return timedelta(milliseconds=total_ms)


@lru_cache(maxsize=16)
def read_tst_info(tst_der: bytes) -> TstInfo:
    """TSTInfo by the DER walker, for the form every TSA writes (tags in order, definite lengths, a plain
    GeneralizedTime); ``Unusual`` for anything else, which asn1crypto reads (``_tst_info_by_asn1crypto``).

    Remembered for the last few TSTInfos (by their exact bytes; the result is immutable, a refusal is not kept): a
    fresh token's TSTInfo is read by the client, which matches it to its request, and again by ``load_timestamp``.
    """
    fields = der.tlvs(der.contents_of(tst_der, 0x30))
    tags = [f[0] for f in fields]
    if any(f[0] & 0x1F == 0x1F or f[1] == 0x80 for f in fields) or tags[:5] != [0x02, 0x06, 0x30, 0x02, 0x18]:
        raise Unusual
    optional = tags[5:]
    order = [0x30, 0x01, 0x02, 0xA0, 0xA1]  # accuracy, ordering, nonce, tsa, extensions
    positions = [order.index(t) if t in order else -1 for t in optional]
    if -1 in positions or positions != sorted(set(positions)):
        raise Unusual
    by_tag = dict(zip(optional, fields[5:], strict=True))
    if 0x01 in by_tag and len(der.contents_of(by_tag[0x01])) != 1:
        raise Unusual
    imprint = der.tlvs(der.contents_of(fields[2]))
    if len(imprint) != 2 or imprint[0][0] != 0x30 or imprint[1][0] != 0x04 or imprint[0][1] == 0x80:
        raise Unusual
    hash_algorithm = der.tlvs(der.contents_of(imprint[0]))
    if not 1 <= len(hash_algorithm) <= 2 or hash_algorithm[0][0] != 0x06:
        raise Unusual
    policy_oid = der.oid_of(fields[1])
    seconds = millis = micros = None
    if 0x30 in by_tag:
        parts = der.tlvs(der.contents_of(by_tag[0x30]))
        kinds = [p[0] for p in parts]
        if kinds not in ([], [0x02], [0x80], [0x81], [0x02, 0x80], [0x02, 0x81], [0x80, 0x81], [0x02, 0x80, 0x81]):
            raise Unusual
        values = {p[0]: int.from_bytes(der.contents_of(p), "big", signed=True) for p in parts}
        seconds, millis, micros = values.get(0x02), values.get(0x80), values.get(0x81)
    return TstInfo(
        policy_oid=policy_oid, imprint_algorithm_oid=der.oid_of(hash_algorithm[0]),
        imprint=der.octet_string(imprint[1]), serial_number=der.integer_of(fields[3]),
        gen_time=der.simple_time(fields[4]),
        accuracy=_accuracy_of(seconds, millis, micros, 0x30 in by_tag, policy_oid),
        nonce=der.integer_of(by_tag[0x02]) if 0x02 in by_tag else None,
    )


def _tst_info_by_asn1crypto(tst_der: bytes) -> TstInfo:
    from asn1crypto import tsp

    tst_info = tsp.TSTInfo.load(tst_der, strict=True)
    policy_oid = tst_info["policy"].dotted
    gen_time = tst_info["gen_time"].native
    imprint = tst_info["message_imprint"]
    nonce = tst_info["nonce"].native if tst_info["nonce"] else None
    return TstInfo(
        policy_oid=policy_oid, imprint_algorithm_oid=imprint["hash_algorithm"]["algorithm"].dotted,
        imprint=bytes(imprint["hashed_message"].native), serial_number=int(tst_info["serial_number"].native),
        gen_time=gen_time, accuracy=_accuracy(tst_info, policy_oid), nonce=nonce,
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
