"""Loading NuGet primary signatures and repository countersignatures with NuGet's load-time rules (spec §4.3-4.7).

Structures are read at the load boundary by ``nuseal.cms.der`` the way .NET's ``SignedCms.Decode`` reads them (its
DER walker, with asn1crypto judging anything unusual), so that malformed DER is judged when the signature is
loaded (NU3003, or NU3031 inside a countersignature) and never surfaces later as a stray exception. The
NuGet-specific rules (exactly one signer, signing-certificate-v2 matching, commitment types, service index URL,
owners, countersignature placement) are written here because no library knows them. Signature *checks* (digest +
signature) are in ``verify_signer_signature`` so that the verifier can report them with NuGet's codes at the right
point of its pipeline.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from cryptography import x509

from nuseal import oids
from nuseal.cms import der
from nuseal.cms.algorithms import verify_raw_signature
from nuseal.cms.content import SignatureContent
from nuseal.cms.der import ASN1_ERRORS, Algorithm, Attribute, SignerFields, Unusual
from nuseal.codes import Messages, NuCode
from nuseal.enums import SignatureKind
from nuseal.errors import SignatureFormatError
from nuseal.record import Struct, field, replace
from nuseal.x509 import certs

if TYPE_CHECKING:
    from asn1crypto import cms

__all__ = ["EssCertId", "PrimarySignature", "RepositoryCountersignature", "SignerView", "build_signer_view",
           "hash_name", "is_valid_service_index_url", "load_certificates", "load_primary_signature",
           "verify_raw_signature", "verify_signer_signature"]


def _attribute_values(attrs: tuple[Attribute, ...] | None, oid: str) -> list[tuple[bytes, ...]]:
    """All attributes with ``oid``: the DER of each value, one tuple per attribute occurrence."""
    return der.values_of(attrs, oid)


def hash_name(oid: str) -> str:
    """hashlib name for a digest OID, ``ValueError`` for unknown ones."""
    names = {oids.SHA1: "sha1", **oids.SHA2_HASHES, "1.2.840.113549.2.5": "md5"}
    if oid not in names:
        raise ValueError(f"unsupported digest algorithm {oid}")
    return names[oid]


class EssCertId(Struct, frozen=True):
    """One ESSCertID(v2) entry of a signing-certificate(-v2) attribute."""

    hash_algorithm_oid: str
    cert_hash: bytes
    issuer_name: bytes | None  # DER of the directoryName
    serial_number: int | None


class SignerView(Struct, frozen=True):
    """Facts about one SignerInfo (primary, countersigner, or timestamp token signer), all read at load time."""

    raw: bytes  # the SignerInfo's DER
    certificate: x509.Certificate | None
    kind: SignatureKind
    digest_algorithm_oid: str
    signature_algorithm_oid: str
    signature_value: bytes
    signing_time: datetime | None
    service_index_url: str | None
    owners: tuple[str, ...]
    timestamp_tokens: tuple[bytes, ...]
    signature_parameters: bytes | None = None
    signed_attributes: tuple[Attribute, ...] | None = None
    unsigned_attributes: tuple[Attribute, ...] | None = None
    #: DER of the signed attributes as signed: the original bytes re-tagged as SET OF (RFC 5652 §5.4).
    signed_attributes_der: bytes | None = None
    #: The messageDigest value, None when there is not exactly one (readable) value.
    message_digest: bytes | None = None

    @property
    def digest_name(self) -> str:
        return hash_name(self.digest_algorithm_oid)

    @property
    def signature_algorithm(self) -> Algorithm:
        return Algorithm(self.signature_algorithm_oid, self.signature_parameters)

    @property
    def has_signing_time(self) -> bool:
        """A signing-time attribute is present (NuGet checks presence only, never the value)."""
        return bool(_attribute_values(self.signed_attributes, oids.SIGNING_TIME))

    @property
    def signer_info(self) -> cms.SignerInfo:
        """The SignerInfo as an asn1crypto object (for ``nuseal inspect``; verification never needs it)."""
        from asn1crypto import cms

        return cms.SignerInfo.load(self.raw)


class _SignerFacts:
    """What a signature says through its signer: certificate, repository service index and owners."""

    __slots__ = ()  # a mixin of records (nuseal.record.Struct)
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


class RepositoryCountersignature(_SignerFacts, Struct, frozen=True):
    """The repository countersignature on an author primary signature (spec §4.6)."""

    signer: SignerView
    primary_signature_value: bytes


class PrimarySignature(_SignerFacts, Struct, frozen=True):
    """A loaded ``.signature.p7s``: the one primary signer, its certificates and content."""

    raw: bytes
    version: int  # the SignedData version
    certificates: tuple[x509.Certificate, ...]
    content_bytes: bytes
    content: SignatureContent
    signer: SignerView
    _countersigners: tuple[SignerView, ...] = field(default=())

    @property
    def signed_data(self) -> cms.SignedData:
        """The SignedData as an asn1crypto object (for ``nuseal inspect``; verification never needs it)."""
        from asn1crypto import cms

        return cms.ContentInfo.load(self.raw)["content"]

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

    @property
    def countersignature_kinds(self) -> tuple[SignatureKind, ...]:
        """The kind of each countersignature, in order (a feed refuses author ones, server.md §B.2)."""
        return tuple(c.kind for c in self._countersigners)


def _resolve_signer_certificate(fields: SignerFields, loaded: tuple[x509.Certificate, ...]) -> x509.Certificate | None:
    """.NET's ``SignerInfo.Certificate``: the bag certificate with the SID's serial number whose issuer name reads
    the same (ordinal string comparison, so case matters and the string encoding does not), or the one whose subject
    key identifier (its extension, else the SHA-1 of its key) equals the SID's."""
    if fields.issuer is not None:
        wanted = der.name_text(fields.issuer)
        for cert in loaded:
            if certs.facts(cert).serial_number == fields.serial_number and _issuer_text(cert) == wanted:
                return cert
        return None
    for cert in loaded:
        if _key_identifier(cert) == fields.subject_key_identifier:
            return cert
    return None


_Text = tuple[tuple[tuple[str, str], ...], ...]


def _issuer_text(certificate: x509.Certificate) -> _Text | None:
    """``der.name_text`` of the issuer as encoded (kept with the certificate); None when it cannot be read, so that
    such a bag certificate is nobody's match."""
    entry = certs.facts(certificate)
    if "issuer_text" not in entry.memo:
        try:
            text: _Text | None = der.name_text(entry.raw_issuer)
        except ASN1_ERRORS:
            text = None
        entry.memo["issuer_text"] = text
    return entry.memo["issuer_text"]  # type: ignore[return-value]


def _key_identifier(certificate: x509.Certificate) -> bytes | None:
    entry = certs.facts(certificate)
    if entry.subject_key_identifier is not None:
        return entry.subject_key_identifier
    key = entry.public_key
    if key is None:
        return None
    try:
        return x509.SubjectKeyIdentifier.from_public_key(key).digest
    except (ValueError, TypeError):
        return None


def _signature_kind(attrs: tuple[Attribute, ...] | None) -> SignatureKind:
    """Commitment-type-indication → kind (spec §4.3); both origin and receipt → NU3000."""
    kinds: set[SignatureKind] = set()
    for values in _attribute_values(attrs, oids.COMMITMENT_TYPE_INDICATION):
        for value in values:
            parts = der.tlvs(der.contents_of(value, 0x30))
            oid = der.oid_of(parts[0])
            if len(parts) > 1 and not der.contents_of(parts[1], 0x30):
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


def _parse_ess_cert_ids(value: bytes, v2: bool) -> list[EssCertId]:
    """Decode SigningCertificate(V2) tolerantly, as NuGet reads it (spec §4.4).

    Decoded by hand over the DER because asn1crypto's ESSCertIDv2 model fills in the DEFAULT algorithm and
    would hide whether it was encoded; we accept both forms, with or without NULL parameters.
    """
    outer = der.tlvs(der.contents_of(value, 0x30))
    if not outer or outer[0][0] != 0x30:
        raise ValueError("signing-certificate attribute without certs")
    entries: list[EssCertId] = []
    for item in der.tlvs(der.contents_of(outer[0])):
        parts = der.tlvs(der.contents_of(item, 0x30))
        algorithm = oids.SHA256 if v2 else oids.SHA1
        index = 0
        if v2 and parts and parts[0][0] == 0x30:
            algorithm = der.oid_of(der.tlvs(der.contents_of(parts[0]))[0])
            index = 1
        if index >= len(parts) or parts[index][0] != 0x04:
            raise ValueError("ESSCertID without certHash")
        cert_hash = der.contents_of(parts[index])
        issuer_name: bytes | None = None
        serial: int | None = None
        if index + 1 < len(parts):
            issuer_serial = der.tlvs(der.contents_of(parts[index + 1], 0x30))
            if len(issuer_serial) < 2:
                raise ValueError("IssuerSerial without serialNumber")
            general_names = der.tlvs(der.contents_of(issuer_serial[0], 0x30))
            if len(general_names) != 1 or general_names[0][0] != 0xA4:  # [4] directoryName
                raise ValueError("The ASN.1 data is unsupported.")
            issuer_name = der.contents_of(general_names[0])
            der.name_text(issuer_name)  # the name must be readable, as .NET decodes it
            serial = der.integer_of(issuer_serial[1])
        entries.append(EssCertId(algorithm, cert_hash, issuer_name, serial))
    return entries


def _check_signing_certificate_attributes(
    attrs: tuple[Attribute, ...] | None, certificate: x509.Certificate, kind: SignatureKind, code: NuCode
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
            except ASN1_ERRORS as exc:
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
            except ASN1_ERRORS as exc:
                raise SignatureFormatError("The signing-certificate attribute is invalid.", code) from exc
            # NuGet quirk: the SHA-1 certHash of ESSCertID v1 is never compared, only its length (spec §4.4).
            # We keep that: refusing here would reject signatures NuGet accepts.
            if entries and (len(entries[0].cert_hash) != 20 or (
                    entries[0].serial_number is not None and not _issuer_serial_matches(entries[0], certificate))):
                raise SignatureFormatError(
                    "A certificate referenced by the signing-certificate attribute could not be found.", code)


def _issuer_serial_matches(entry: EssCertId, certificate: x509.Certificate) -> bool:
    """NuGet ``AreSerialNumbersEqual`` and ``AreGeneralNamesEqual``: the serial number, and the directoryName's
    ``X500DistinguishedName.Name`` string equal to the certificate's issuer's, ordinally (``der.name_text``)."""
    if entry.serial_number is None or entry.issuer_name is None:
        return True
    if entry.serial_number != certs.facts(certificate).serial_number:
        return False
    issuer = _issuer_text(certificate)
    if issuer is None:  # unreadable: raise the parse error, as .NET's decoder does (NU3003 at the load boundary)
        issuer = der.name_text(certs.raw_name(certificate, "issuer"))
    return der.name_text(entry.issuer_name) == issuer


def _ess_matches(entry: EssCertId, certificate: x509.Certificate) -> bool:
    """NuGet's ``SignatureUtility.IsMatch``: issuerSerial (if present) then certHash, on ``certs[0]`` only."""
    if not _issuer_serial_matches(entry, certificate):
        return False
    digest = hashlib.new(oids.SHA2_HASHES[entry.hash_algorithm_oid], certs.der(certificate)).digest()
    return digest == entry.cert_hash


def _service_index_url(attrs: tuple[Attribute, ...] | None, code: NuCode) -> str | None:
    values = _attribute_values(attrs, oids.NUGET_V3_SERVICE_INDEX_URL)
    if not values:
        return None
    if len(values) != 1 or len(values[0]) != 1:
        raise SignatureFormatError(
            "Exactly one nuget-v3-service-index-url attribute value is required.", NuCode.NU3000)
    raw = values[0][0]
    try:
        url = _ia5_string(raw)
    except ASN1_ERRORS as exc:
        raise SignatureFormatError("The nuget-v3-service-index-url attribute is invalid.", NuCode.NU3000) from exc
    if not is_valid_service_index_url(url):
        raise SignatureFormatError("The nuget-v3-service-index-url attribute value is invalid.", NuCode.NU3000)
    del code
    return str(url)


def _ia5_string(raw: bytes) -> str:
    try:
        if raw[:1] == b"\x16":
            return der.contents_of(raw).decode("ascii")
    except Unusual:
        pass
    from asn1crypto import core  # other forms (constructed, BER): asn1crypto reads or refuses them

    return str(core.IA5String.load(raw, strict=True).native)


def is_valid_service_index_url(url: str) -> bool:
    """NuGet requires an absolute ``https`` URI (case-sensitive scheme check, spec §4.5)."""
    parts = urlsplit(url)
    return url.startswith("https://") and parts.scheme == "https" and bool(parts.netloc)


def _owners(attrs: tuple[Attribute, ...] | None) -> tuple[str, ...]:
    values = _attribute_values(attrs, oids.NUGET_PACKAGE_OWNERS)
    if not values:
        return ()
    if len(values) != 1 or len(values[0]) != 1:
        raise SignatureFormatError("Exactly one nuget-package-owners attribute value is required.", NuCode.NU3000)
    try:
        owners = _utf8_strings(values[0][0])
    except ASN1_ERRORS as exc:
        raise SignatureFormatError("The nuget-package-owners attribute is invalid.", NuCode.NU3000) from exc
    if not owners or any(not owner.strip() for owner in owners):
        raise SignatureFormatError("The nuget-package-owners attribute is invalid.", NuCode.NU3000)
    return owners


def _utf8_strings(raw: bytes) -> tuple[str, ...]:
    """A SEQUENCE OF UTF8String."""
    try:
        if raw[:1] == b"\x30":
            items = der.tlvs(der.contents_of(raw))
            if all(item[:1] == b"\x0c" and item[1:2] != b"\x80" for item in items):
                return tuple(der.contents_of(item).decode("utf-8") for item in items)
    except Unusual:
        pass
    from asn1crypto import core  # other forms: asn1crypto reads or refuses them

    return tuple(str(item.native) for item in core.SequenceOf.load(raw, spec=core.UTF8String, strict=True))


def _signing_time(attrs: tuple[Attribute, ...] | None) -> datetime | None:
    values = _attribute_values(attrs, oids.SIGNING_TIME)
    if not values or not values[0]:
        return None
    try:
        return der.simple_time(values[0][0])
    except der.DECODE_ERRORS:
        pass
    from asn1crypto import cms  # other time forms (offsets, no seconds, fractions of minutes): asn1crypto's reading

    try:
        parsed = cms.Time.load(values[0][0], strict=True).native
    except ASN1_ERRORS:
        return None
    return parsed if isinstance(parsed, datetime) else None


def _message_digest(attrs: tuple[Attribute, ...] | None) -> bytes | None:
    values = _attribute_values(attrs, oids.MESSAGE_DIGEST)
    if len(values) != 1 or len(values[0]) != 1:
        return None
    try:
        return der.octet_string(values[0][0])
    except der.DECODE_ERRORS:
        pass
    from asn1crypto import core  # other forms: asn1crypto reads or refuses them

    try:
        return bytes(core.OctetString.load(values[0][0], strict=True).native)
    except ASN1_ERRORS:
        return None  # .NET: the check fails (NU3012 / NU3021), the signature still loads


def _timestamp_tokens(attrs: tuple[Attribute, ...] | None) -> tuple[bytes, ...]:
    return tuple(token for values in _attribute_values(attrs, oids.SIGNATURE_TIMESTAMP_TOKEN) for token in values)


def build_signer_view(
    fields: SignerFields, loaded: tuple[x509.Certificate, ...], *, with_nuget_attributes: bool = True,
) -> SignerView:
    """The facts of a SignerInfo read by ``nuseal.cms.der``; NuGet attribute rule violations raise
    ``SignatureFormatError``. ``loaded`` are the SignedData's certificates."""
    signed = fields.signed_attributes
    try:  # ``der.where``'s wording, without a context manager per signer
        kind = _signature_kind(signed) if with_nuget_attributes else SignatureKind.UNKNOWN
    except ASN1_ERRORS as exc:
        raise ValueError(f"commitment-type-indication attribute: {der.reason(exc)}") from exc
    return SignerView(
        raw=fields.raw,
        certificate=_resolve_signer_certificate(fields, loaded),
        kind=kind,
        digest_algorithm_oid=fields.digest_algorithm.oid,
        signature_algorithm_oid=fields.signature_algorithm.oid,
        signature_value=fields.signature,
        signing_time=_signing_time(signed),
        service_index_url=None,
        owners=(),
        timestamp_tokens=_timestamp_tokens(fields.unsigned_attributes),
        signature_parameters=fields.signature_algorithm.parameters,
        signed_attributes=signed,
        unsigned_attributes=fields.unsigned_attributes,
        signed_attributes_der=fields.signed_attributes_der,
        message_digest=_message_digest(signed),
    )


def load_certificates(bag: tuple[bytes, ...]) -> tuple[x509.Certificate, ...]:
    """The bag (certificate DERs) loaded by cryptography, as .NET's ``SignedCms.Certificates`` loads it:
    ``ValueError`` if one fails. The same certificate in another signature is the same object (``x509.facts``)."""
    loaded = []
    for index, certificate in enumerate(bag, start=1):
        try:
            loaded.append(certs.load_der(certificate))
        except ASN1_ERRORS:  # cryptography refuses it: load it again to raise the worded error
            loaded.append(_load_worded(certificate, index))
    return tuple(loaded)


def _load_worded(certificate: bytes, index: int) -> x509.Certificate:
    """``certs.load_der`` with the error worded as the load boundary reports it (the certificate's number, and
    asn1crypto's reason when it has one). Only for a certificate that failed to load, so that the bag of a valid
    signature is loaded without a context manager per certificate."""
    with der.where(f"certificate #{index}"):
        try:
            return certs.load_der(certificate)
        except ValueError:
            _asn1crypto_reading(certificate)  # its wording of the error, when it has one
            raise


def _asn1crypto_reading(certificate: bytes) -> None:
    """Raise asn1crypto's error for a certificate it cannot read either: the reason nuseal has always given
    (asn1crypto used to read the bag before cryptography)."""
    from asn1crypto import x509 as asn1_x509

    asn1_x509.Certificate.load(certificate).dump()


def read_signer_info(raw: bytes) -> SignerFields:
    """One SignerInfo (a countersigner) read eagerly: by the DER walker, or by asn1crypto when the walker does not
    read it (asn1crypto's errors are raised then)."""
    try:
        return der.read_signer_info(raw)
    except der.DECODE_ERRORS:
        pass
    from asn1crypto import cms

    return der.signer_info_fields(cms.SignerInfo.load(raw, strict=True))


def load_primary_signature(der_bytes: bytes) -> PrimarySignature:
    """Load ``.signature.p7s`` bytes with every load-time rule of spec §4.7.

    Raises ``SignatureFormatError`` with NU3003 (not CMS, or malformed anywhere .NET would notice while decoding),
    NU3009, NU3010, NU3011, NU3000, NU3007, NU3031 (a malformed countersignature). Nothing else escapes: this is
    the boundary where asn1crypto's and cryptography's errors become NU codes.
    """
    try:
        with certs.quiet():
            return _load_primary_signature(der_bytes)
    except SignatureFormatError:
        raise
    except ASN1_ERRORS as exc:  # malformed DER, a certificate cryptography refuses (NuGet: CryptographicException)
        raise SignatureFormatError(f"{Messages.SIGNATURE_INVALID} ({der.reason(exc)})", NuCode.NU3003) from exc


def _load_primary_signature(der_bytes: bytes) -> PrimarySignature:
    signed_data = der.signed_data_fields(der_bytes)
    signer_infos = signed_data.signer_infos
    if signed_data.content_error is not None:
        raise ValueError(f"SignedData encapContentInfo: {signed_data.content_error}")
    content_bytes = signed_data.content
    if len(signer_infos) != 1:
        raise SignatureFormatError(Messages.NOT_ONE_PRIMARY, NuCode.NU3009)
    cert_objects = load_certificates(signed_data.certificates)
    signer = build_signer_view(signer_infos[0], cert_objects)
    if signer.certificate is None:
        raise SignatureFormatError(Messages.NO_SIGNING_CERT, NuCode.NU3010)
    attrs = signer.signed_attributes
    _check_signing_certificate_attributes(attrs, signer.certificate, signer.kind, NuCode.NU3011)
    if content_bytes is None:
        raise SignatureFormatError(Messages.CONTENT_INVALID, NuCode.NU3000)
    content = SignatureContent.parse(content_bytes)
    if signer.kind is not SignatureKind.UNKNOWN and not signer.has_signing_time:
        # NuGet checks that a signing-time attribute is present; its value is never read.
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
    countersigners = _load_countersigners(signer, cert_objects)
    return PrimarySignature(der_bytes, signed_data.version, cert_objects, content_bytes, content, signer,
                            countersigners)


def _replace(view: SignerView, **changes: Any) -> SignerView:
    return replace(view, **changes)


def _load_countersigners(signer: SignerView, loaded: tuple[x509.Certificate, ...]) -> tuple[SignerView, ...]:
    """Countersigner SignerInfos, each read whole; repository ones get the NU3031 attribute rules (spec §4.3).
    Anything malformed inside a countersignature is NU3031."""
    views: list[SignerView] = []
    for values in _attribute_values(signer.unsigned_attributes, oids.COUNTERSIGNATURE):
        for value in values:
            try:
                view = build_signer_view(read_signer_info(value), loaded)
                if view.kind is SignatureKind.REPOSITORY:
                    view = _load_repository_countersigner(view)
            except SignatureFormatError:
                raise
            except ASN1_ERRORS as exc:
                raise SignatureFormatError(f"{Messages.COUNTERSIGNATURE_INVALID} ({der.reason(exc)})",
                                           NuCode.NU3031) from exc
            views.append(view)
    return tuple(views)


def _load_repository_countersigner(view: SignerView) -> SignerView:
    attrs = view.signed_attributes
    if view.certificate is None:
        # NuGet reports a countersignature without certificate as NU3034 at verify time (spec §6.6); keep the view.
        return view
    _check_signing_certificate_attributes(attrs, view.certificate, SignatureKind.REPOSITORY, NuCode.NU3031)
    if not view.has_signing_time:
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
    return verify_raw_signature(view.certificate, view.signature_algorithm, view.digest_algorithm_oid, digest_name,
                                view.signature_value, to_verify)
