"""Loading NuGet primary signatures and repository countersignatures with NuGet's load-time rules (spec §4.3-4.7).

Parsing uses asn1crypto's CMS structures; the NuGet-specific rules (exactly one signer, signing-certificate-v2
matching, commitment types, service index URL, owners, countersignature placement) are written here because no
library knows them. Signature *checks* (digest + RSA) are in ``verify_signer_signature`` so that the verifier
can report them with NuGet's codes at the right point of its pipeline.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

from asn1crypto import cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from nuseal.cms import oids
from nuseal.cms.content import SignatureContent
from nuseal.codes import Messages, NuCode
from nuseal.enums import SignatureKind
from nuseal.errors import SignatureFormatError

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512,
}


def _attribute_values(attrs: cms.CMSAttributes | None, oid: str) -> list[list[Any]]:
    """All attributes with ``oid``: one list of values per attribute occurrence."""
    if attrs is None or not attrs:
        return []
    found = []
    for attr in attrs:
        if attr["type"].dotted == oid:
            found.append(list(attr["values"]))
    return found


def _raw_value(value: Any) -> bytes:
    """The DER of an attribute value however asn1crypto typed it."""
    return bytes(value.dump())


def _load_certificate(cert: asn1_x509.Certificate) -> x509.Certificate:
    return x509.load_der_x509_certificate(cert.dump())


def hash_name(oid: str) -> str:
    """hashlib name for a digest OID, ``ValueError`` for unknown ones."""
    names = {oids.SHA1: "sha1", **oids.SHA2_HASHES, "1.2.840.113549.2.5": "md5"}
    if oid not in names:
        raise ValueError(f"unsupported digest algorithm {oid}")
    return names[oid]


@dataclass(frozen=True)
class EssCertId:
    """One ESSCertID(v2) entry of a signing-certificate(-v2) attribute."""

    hash_algorithm_oid: str
    cert_hash: bytes
    issuer_name: asn1_x509.Name | None
    serial_number: int | None


@dataclass(frozen=True)
class SignerView:
    """Facts about one SignerInfo (primary, countersigner, or timestamp token signer)."""

    signer_info: cms.SignerInfo
    certificate: x509.Certificate | None
    kind: SignatureKind
    digest_algorithm_oid: str
    signature_algorithm_oid: str
    signature_value: bytes
    signing_time: datetime | None
    service_index_url: str | None
    owners: tuple[str, ...]
    timestamp_tokens: tuple[bytes, ...]

    @property
    def digest_name(self) -> str:
        return hash_name(self.digest_algorithm_oid)

    @cached_property
    def signed_attributes_der(self) -> bytes | None:
        """DER of the signed attributes as signed: the original bytes re-tagged as SET OF (RFC 5652 §5.4)."""
        attrs = self.signer_info["signed_attrs"]
        if not attrs:
            return None
        encoded = bytes(attrs.dump())
        return b"\x31" + encoded[1:]

    @cached_property
    def message_digest(self) -> bytes | None:
        values = _attribute_values(self.signer_info["signed_attrs"], oids.MESSAGE_DIGEST)
        if len(values) != 1 or len(values[0]) != 1:
            return None
        return bytes(values[0][0].native)


class _SignerFacts:
    """What a signature says through its signer: certificate, repository service index and owners."""

    signer: SignerView

    @property
    def signer_certificate(self) -> x509.Certificate | None:
        return self.signer.certificate

    @property
    def service_index_url(self) -> str | None:
        return self.signer.service_index_url

    @property
    def owners(self) -> tuple[str, ...]:
        return self.signer.owners


@dataclass(frozen=True)
class RepositoryCountersignature(_SignerFacts):
    """The repository countersignature on an author primary signature (spec §4.6)."""

    signer: SignerView
    primary_signature_value: bytes


@dataclass(frozen=True)
class PrimarySignature(_SignerFacts):
    """A loaded ``.signature.p7s``: the one primary signer, its certificates and content."""

    raw: bytes
    signed_data: cms.SignedData
    certificates: tuple[x509.Certificate, ...]
    content_bytes: bytes
    content: SignatureContent
    signer: SignerView
    _countersigners: tuple[SignerView, ...] = field(default=())

    @property
    def kind(self) -> SignatureKind:
        return self.signer.kind

    @property
    def timestamp_tokens(self) -> tuple[bytes, ...]:
        return self.signer.timestamp_tokens

    @property
    def signature_value(self) -> bytes:
        return self.signer.signature_value

    def countersignature(self) -> RepositoryCountersignature | None:
        """The repository countersignature, or None. Raises NU3032/NU3033/NU3031 as NuGet does when loading it."""
        repository = [c for c in self._countersigners if c.kind is SignatureKind.REPOSITORY]
        if not repository:
            return None
        if self.kind is SignatureKind.REPOSITORY:
            raise SignatureFormatError(Messages.REPO_PRIMARY_WITH_COUNTER, NuCode.NU3033)
        if len(repository) > 1:
            raise SignatureFormatError(Messages.MULTIPLE_COUNTERSIGNATURES, NuCode.NU3032)
        return RepositoryCountersignature(repository[0], self.signature_value)

    @property
    def countersigner_count(self) -> int:
        return len(self._countersigners)


def _resolve_signer_certificate(
    signer_info: cms.SignerInfo, certificates: list[asn1_x509.Certificate]
) -> x509.Certificate | None:
    sid = signer_info["sid"]
    if sid.name == "issuer_and_serial_number":
        issuer = sid.chosen["issuer"]
        serial = sid.chosen["serial_number"].native
        for cert in certificates:
            if cert.serial_number == serial and cert.issuer == issuer:
                return _load_certificate(cert)
        return None
    key_id = bytes(sid.chosen.native)
    for cert in certificates:
        if cert.key_identifier == key_id:
            return _load_certificate(cert)
    return None


def _signature_kind(attrs: cms.CMSAttributes | None) -> SignatureKind:
    """Commitment-type-indication → kind (spec §4.3); both origin and receipt → NU3000."""
    kinds: set[SignatureKind] = set()
    for values in _attribute_values(attrs, oids.COMMITMENT_TYPE_INDICATION):
        for value in values:
            parts = _split_tlvs(core.Sequence.load(_raw_value(value)).contents)
            oid = core.ObjectIdentifier.load(parts[0]).dotted
            if len(parts) > 1 and not core.Sequence.load(parts[1]).contents:
                # NuGet: a CommitmentTypeIndication with an empty qualifier SEQUENCE is invalid.
                raise SignatureFormatError(Messages.CONTENT_INVALID, NuCode.NU3000)
            if oid == oids.PROOF_OF_ORIGIN:
                kinds.add(SignatureKind.AUTHOR)
            elif oid == oids.PROOF_OF_RECEIPT:
                kinds.add(SignatureKind.REPOSITORY)
    if len(kinds) > 1:
        raise SignatureFormatError(
            "The commitment-type-indication attribute contains an invalid combination of values.", NuCode.NU3000
        )
    return kinds.pop() if kinds else SignatureKind.UNKNOWN


def _first_tlv_length(data: bytes) -> int:
    """Length of the first DER TLV in ``data`` (tag + length + contents)."""
    if len(data) < 2:
        raise ValueError("truncated DER")
    length = data[1]
    if length < 0x80:
        return 2 + length
    count = length & 0x7F
    return 2 + count + int.from_bytes(data[2 : 2 + count], "big")


def _split_tlvs(data: bytes) -> list[bytes]:
    """Split concatenated DER TLVs (the contents of a SEQUENCE) into their encodings."""
    parts: list[bytes] = []
    pos = 0
    while pos < len(data):
        size = _first_tlv_length(data[pos:])
        parts.append(data[pos : pos + size])
        pos += size
    return parts


def _parse_ess_cert_ids(value: Any, v2: bool) -> list[EssCertId]:
    """Decode SigningCertificate(V2) tolerantly, as NuGet reads it (spec §4.4).

    Decoded by hand over the DER because asn1crypto's ESSCertIDv2 model fills in the DEFAULT algorithm and
    would hide whether it was encoded; we accept both forms, with or without NULL parameters.
    """
    outer = _split_tlvs(core.Sequence.load(_raw_value(value)).contents)
    if not outer or outer[0][0] != 0x30:
        raise ValueError("signing-certificate attribute without certs")
    entries: list[EssCertId] = []
    for item in _split_tlvs(core.Sequence.load(outer[0]).contents):
        parts = _split_tlvs(core.Sequence.load(item).contents)
        algorithm = oids.SHA256 if v2 else oids.SHA1
        index = 0
        if v2 and parts and parts[0][0] == 0x30:
            algorithm_parts = _split_tlvs(core.Sequence.load(parts[0]).contents)
            algorithm = core.ObjectIdentifier.load(algorithm_parts[0]).dotted
            index = 1
        if index >= len(parts) or parts[index][0] != 0x04:
            raise ValueError("ESSCertID without certHash")
        cert_hash = bytes(core.OctetString.load(parts[index]).native)
        issuer_name: asn1_x509.Name | None = None
        serial: int | None = None
        if index + 1 < len(parts):
            issuer_serial = tsp.IssuerSerial.load(parts[index + 1])
            general_names = issuer_serial["issuer"]
            if len(general_names) != 1 or general_names[0].name != "directory_name":
                raise ValueError("The ASN.1 data is unsupported.")
            issuer_name = general_names[0].chosen
            serial = int(issuer_serial["serial_number"].native)
        entries.append(EssCertId(algorithm, cert_hash, issuer_name, serial))
    return entries


def _check_signing_certificate_attributes(
    attrs: cms.CMSAttributes | None, certificate: x509.Certificate, kind: SignatureKind, code: NuCode
) -> None:
    """signing-certificate(-v2) rules of spec §4.3/§4.4 for a primary signature or countersignature."""
    v1 = _attribute_values(attrs, oids.SIGNING_CERTIFICATE)
    v2 = _attribute_values(attrs, oids.SIGNING_CERTIFICATE_V2)
    required = kind is not SignatureKind.UNKNOWN
    if required:
        if v1:
            raise SignatureFormatError("The signing-certificate attribute is not allowed.", code)
        if len(v2) != 1:
            raise SignatureFormatError("Exactly one signing-certificate-v2 attribute is required.", code)
        if len(v2[0]) != 1:
            raise SignatureFormatError("The signing-certificate-v2 attribute must have exactly one attribute value.",
                                       code)
    for values in v2:
        for value in values:
            try:
                entries = _parse_ess_cert_ids(value, v2=True)
            except (ValueError, TypeError) as exc:
                raise SignatureFormatError("The signing-certificate-v2 attribute is invalid.", code) from exc
            if not entries:
                raise SignatureFormatError("The signing-certificate-v2 attribute is invalid.", code)
            for entry in entries:
                if entry.hash_algorithm_oid not in oids.SHA2_HASHES:
                    raise SignatureFormatError(
                        "The signing-certificate-v2 attribute uses an unsupported hash algorithm.", code)
            first = entries[0]
            if required and first.serial_number is None:
                raise SignatureFormatError("The signing-certificate-v2 attribute is invalid.", code)
            if not _ess_matches(first, certificate):
                raise SignatureFormatError(
                    "A certificate referenced by the signing-certificate-v2 attribute could not be found.", code)
    for values in v1:
        for value in values:
            try:
                entries = _parse_ess_cert_ids(value, v2=False)
            except (ValueError, TypeError) as exc:
                raise SignatureFormatError("The signing-certificate attribute is invalid.", code) from exc
            # NuGet quirk: the SHA-1 certHash of ESSCertID v1 is never compared, only its length (spec §4.4).
            # We keep that: refusing here would reject signatures NuGet accepts.
            if entries and (len(entries[0].cert_hash) != 20 or (
                    entries[0].serial_number is not None and not _issuer_serial_matches(entries[0], certificate))):
                raise SignatureFormatError(
                    "A certificate referenced by the signing-certificate attribute could not be found.", code)


def _issuer_serial_matches(entry: EssCertId, certificate: x509.Certificate) -> bool:
    if entry.serial_number is None or entry.issuer_name is None:
        return True
    # NuGet compares X500DistinguishedName.Name strings ordinally; asn1crypto compares Names after RFC 5280
    # string preparation, which likewise ignores the string encoding (PrintableString vs UTF8String).
    issuer = asn1_x509.Certificate.load(certificate.public_bytes(Encoding.DER)).issuer
    return entry.serial_number == certificate.serial_number and entry.issuer_name == issuer


def _ess_matches(entry: EssCertId, certificate: x509.Certificate) -> bool:
    """NuGet's ``SignatureUtility.IsMatch``: issuerSerial (if present) then certHash, on ``certs[0]`` only."""
    if not _issuer_serial_matches(entry, certificate):
        return False
    digest = hashlib.new(oids.SHA2_HASHES[entry.hash_algorithm_oid], certificate.public_bytes(Encoding.DER)).digest()
    return digest == entry.cert_hash


def _service_index_url(attrs: cms.CMSAttributes | None, code: NuCode) -> str | None:
    values = _attribute_values(attrs, oids.NUGET_V3_SERVICE_INDEX_URL)
    if not values:
        return None
    if len(values) != 1 or len(values[0]) != 1:
        raise SignatureFormatError(
            "Exactly one nuget-v3-service-index-url attribute value is required.", NuCode.NU3000)
    raw = _raw_value(values[0][0])
    try:
        url = core.IA5String.load(raw).native
    except (ValueError, TypeError) as exc:
        raise SignatureFormatError("The nuget-v3-service-index-url attribute is invalid.", NuCode.NU3000) from exc
    if not is_valid_service_index_url(url):
        raise SignatureFormatError("The nuget-v3-service-index-url attribute value is invalid.", NuCode.NU3000)
    del code
    return str(url)


def is_valid_service_index_url(url: str) -> bool:
    """NuGet requires an absolute ``https`` URI (case-sensitive scheme check, spec §4.5)."""
    parts = urlsplit(url)
    return url.startswith("https://") and parts.scheme == "https" and bool(parts.netloc)


def _owners(attrs: cms.CMSAttributes | None) -> tuple[str, ...]:
    values = _attribute_values(attrs, oids.NUGET_PACKAGE_OWNERS)
    if not values:
        return ()
    if len(values) != 1 or len(values[0]) != 1:
        raise SignatureFormatError("Exactly one nuget-package-owners attribute value is required.", NuCode.NU3000)
    try:
        seq = core.SequenceOf.load(_raw_value(values[0][0]), spec=core.UTF8String)
        owners = tuple(str(item.native) for item in seq)
    except (ValueError, TypeError) as exc:
        raise SignatureFormatError("The nuget-package-owners attribute is invalid.", NuCode.NU3000) from exc
    if not owners or any(not owner.strip() for owner in owners):
        raise SignatureFormatError("The nuget-package-owners attribute is invalid.", NuCode.NU3000)
    return owners


def _signing_time(attrs: cms.CMSAttributes | None) -> datetime | None:
    values = _attribute_values(attrs, oids.SIGNING_TIME)
    if not values or not values[0]:
        return None
    try:
        parsed = cms.Time.load(_raw_value(values[0][0])).native
    except (ValueError, TypeError):
        return None
    return parsed if isinstance(parsed, datetime) else None


def _timestamp_tokens(signer_info: cms.SignerInfo) -> tuple[bytes, ...]:
    tokens: list[bytes] = []
    for values in _attribute_values(signer_info["unsigned_attrs"], oids.SIGNATURE_TIMESTAMP_TOKEN):
        tokens.extend(_raw_value(v) for v in values)
    return tuple(tokens)


def build_signer_view(
    signer_info: cms.SignerInfo, certificates: list[asn1_x509.Certificate], *, with_nuget_attributes: bool = True
) -> SignerView:
    """Extract the facts of a SignerInfo; attribute parse errors raise ``SignatureFormatError``."""
    attrs = signer_info["signed_attrs"]
    kind = _signature_kind(attrs) if with_nuget_attributes else SignatureKind.UNKNOWN
    return SignerView(
        signer_info=signer_info,
        certificate=_resolve_signer_certificate(signer_info, certificates),
        kind=kind,
        digest_algorithm_oid=signer_info["digest_algorithm"]["algorithm"].dotted,
        signature_algorithm_oid=signer_info["signature_algorithm"]["algorithm"].dotted,
        signature_value=bytes(signer_info["signature"].native),
        signing_time=_signing_time(attrs),
        service_index_url=None,
        owners=(),
        timestamp_tokens=_timestamp_tokens(signer_info),
    )


def certificate_bag(signed_data: cms.SignedData) -> list[asn1_x509.Certificate]:
    """The X.509 certificates of a SignedData (other certificate choices are skipped)."""
    certs = signed_data["certificates"]
    if not certs:
        return []
    return [c.chosen for c in certs if c.name == "certificate"]


def load_signed_data(der: bytes) -> cms.SignedData:
    """Decode a ContentInfo that must hold SignedData; asn1crypto errors or ``ValueError`` when it does not."""
    content_info = cms.ContentInfo.load(der, strict=True)
    if content_info["content_type"].dotted != oids.SIGNED_DATA:
        raise ValueError("not SignedData")
    return content_info["content"]


def load_primary_signature(der: bytes) -> PrimarySignature:
    """Load ``.signature.p7s`` bytes with every load-time rule of spec §4.7.

    Raises ``SignatureFormatError`` with NU3003 (not CMS), NU3009, NU3010, NU3011, NU3000, NU3007.
    """
    try:
        signed_data = load_signed_data(der)
        signer_infos = list(signed_data["signer_infos"])
        certificates = certificate_bag(signed_data)
        encap = signed_data["encap_content_info"]
        content_bytes = encap["content"].native if encap["content"] else None
    except SignatureFormatError:
        raise
    except Exception as exc:  # asn1crypto raises ValueError/TypeError/KeyError on malformed DER
        raise SignatureFormatError(Messages.SIGNATURE_INVALID, NuCode.NU3003) from exc
    if len(signer_infos) != 1:
        raise SignatureFormatError(Messages.NOT_ONE_PRIMARY, NuCode.NU3009)
    try:
        cert_objects = tuple(_load_certificate(c) for c in certificates)
    except ValueError as exc:
        raise SignatureFormatError(Messages.SIGNATURE_INVALID, NuCode.NU3003) from exc
    signer_info = signer_infos[0]
    signer = build_signer_view(signer_info, certificates)
    if signer.certificate is None:
        raise SignatureFormatError(Messages.NO_SIGNING_CERT, NuCode.NU3010)
    attrs = signer_info["signed_attrs"]
    _check_signing_certificate_attributes(attrs, signer.certificate, signer.kind, NuCode.NU3011)
    if content_bytes is None:
        raise SignatureFormatError(Messages.CONTENT_INVALID, NuCode.NU3000)
    content = SignatureContent.parse(bytes(content_bytes))
    if signer.kind is not SignatureKind.UNKNOWN and signer.signing_time is None:
        raise SignatureFormatError(Messages.PRIMARY_INVALID, NuCode.NU3011)
    service_index = None
    owners: tuple[str, ...] = ()
    if signer.kind is SignatureKind.REPOSITORY:
        service_index = _service_index_url(attrs, NuCode.NU3011)
        if service_index is None:
            raise SignatureFormatError(
                "Exactly one nuget-v3-service-index-url attribute value is required.", NuCode.NU3000)
        owners = _owners(attrs)
    signer = _replace(signer, service_index_url=service_index, owners=owners)
    countersigners = _load_countersigners(signer_info, certificates)
    return PrimarySignature(der, signed_data, cert_objects, bytes(content_bytes), content, signer, countersigners)


def _replace(view: SignerView, **changes: Any) -> SignerView:
    return replace(view, **changes)


def _load_countersigners(signer_info: cms.SignerInfo, certificates: list[asn1_x509.Certificate]
                         ) -> tuple[SignerView, ...]:
    """Countersigner SignerInfos; repository ones get the NU3031 attribute rules (spec §4.3)."""
    views: list[SignerView] = []
    for values in _attribute_values(signer_info["unsigned_attrs"], oids.COUNTERSIGNATURE):
        for value in values:
            try:
                counter_info = cms.SignerInfo.load(_raw_value(value))
                view = build_signer_view(counter_info, certificates)
            except SignatureFormatError:
                raise
            except Exception as exc:
                raise SignatureFormatError(Messages.COUNTERSIGNATURE_INVALID, NuCode.NU3031) from exc
            if view.kind is SignatureKind.REPOSITORY:
                view = _load_repository_countersigner(view)
            views.append(view)
    return tuple(views)


def _load_repository_countersigner(view: SignerView) -> SignerView:
    attrs = view.signer_info["signed_attrs"]
    if view.certificate is None:
        # NuGet reports a countersignature without certificate as NU3034 at verify time (spec §6.6); keep the view.
        return view
    _check_signing_certificate_attributes(attrs, view.certificate, SignatureKind.REPOSITORY, NuCode.NU3031)
    if view.signing_time is None:
        raise SignatureFormatError(Messages.COUNTERSIGNATURE_INVALID, NuCode.NU3031)
    service_index = _service_index_url(attrs, NuCode.NU3031)
    if service_index is None:
        raise SignatureFormatError(
            "Exactly one nuget-v3-service-index-url attribute value is required.", NuCode.NU3000)
    return _replace(view, service_index_url=service_index, owners=_owners(attrs))


def verify_signer_signature(view: SignerView, signed_content: bytes) -> str | None:
    """RFC 5652 check of one SignerInfo: messageDigest over ``signed_content`` and the signature over the
    signed attributes (NuGet ``CheckSignature(verifySignatureOnly: true)``). Returns None or a reason."""
    if view.certificate is None:
        return "no signing certificate"
    try:
        digest_name = view.digest_name
    except ValueError as exc:
        return str(exc)
    if view.signed_attributes_der is not None:
        expected = hashlib.new(digest_name, signed_content).digest()
        if view.message_digest != expected:
            return "message digest mismatch"
        to_verify = view.signed_attributes_der
    else:
        to_verify = signed_content
    return verify_raw_signature(view.certificate, view.signature_algorithm_oid, digest_name,
                                view.signature_value, to_verify)


def verify_raw_signature(certificate: x509.Certificate, signature_algorithm_oid: str, digest_name: str,
                         signature: bytes, data: bytes) -> str | None:
    """Check ``signature`` over ``data`` with the certificate's key. Tolerates ``sha256WithRSAEncryption`` as the
    SignerInfo algorithm (seen in real Json.NET signatures) by using the SignerInfo digest algorithm."""
    key = certificate.public_key()
    algorithm = _HASHES.get(digest_name)
    if algorithm is None:
        return f"unsupported digest {digest_name}"
    try:
        if isinstance(key, rsa.RSAPublicKey):
            if signature_algorithm_oid == "1.2.840.113549.1.1.10":
                key.verify(signature, data, padding.PSS(padding.MGF1(algorithm()), padding.PSS.AUTO), algorithm())
            else:
                key.verify(signature, data, padding.PKCS1v15(), algorithm())
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(algorithm()))
        else:
            return "unsupported public key type"
    except InvalidSignature:
        return "signature does not match"
    return None
