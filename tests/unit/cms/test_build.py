"""cms.build: exact NuGet structure of primary signatures and repository countersignatures."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from tests.support.pki import TEST_PASSWORD, IssuedCert, TestPki, new_rsa_key

from nuseal import oids
from nuseal.cms import build
from nuseal.cms import countersign as editor
from nuseal.cms.content import SignatureContent
from nuseal.cms.parse import load_primary_signature

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
CONTENT = SignatureContent(oids.SHA256, bytes(range(32))).to_bytes()
URL = "https://nuget.example/v3/index.json"


def sign(builder: build.PrimarySignatureBuilder, issued: IssuedCert, timestamp: bytes | None = None) -> bytes:
    value = issued.key.sign(builder.signed_attributes(), padding.PKCS1v15(), hashes.SHA256())
    return builder.build(value, timestamp=timestamp)


def author_builder(issued: IssuedCert) -> build.PrimarySignatureBuilder:
    return (
        build.PrimarySignatureBuilder.author()
        .with_signer(issued.cert, issued.chain)
        .with_signing_time(NOW)
        .with_content(CONTENT)
    )


def signer_info(signature: bytes) -> cms.SignerInfo:
    return cms.ContentInfo.load(signature)["content"]["signer_infos"][0]


def attribute_oids(info: cms.SignerInfo, which: str = "signed_attrs") -> list[str]:
    return [a["type"].dotted for a in info[which]]


def test_author_signature_has_nugets_exact_structure(pki: TestPki) -> None:
    signature = sign(author_builder(pki.leaf), pki.leaf)
    signed_data = cms.ContentInfo.load(signature)["content"]
    info = signed_data["signer_infos"][0]
    assert signed_data["version"].native == "v3"
    assert info["version"].native == "v3"
    assert info["sid"].name == "subject_key_identifier"
    assert [d["algorithm"].dotted for d in signed_data["digest_algorithms"]] == [oids.SHA256]
    assert signed_data["encap_content_info"]["content"].native == CONTENT
    assert info["signature_algorithm"]["algorithm"].dotted == oids.RSA_ENCRYPTION
    assert signed_data["crls"].native is None
    assert attribute_oids(info) == [
        oids.CONTENT_TYPE, oids.SIGNING_TIME, oids.COMMITMENT_TYPE_INDICATION, oids.MESSAGE_DIGEST,
        oids.SIGNING_CERTIFICATE_V2,
    ]  # fmt: skip
    raw = {a["type"].dotted: a["values"][0].dump() for a in info["signed_attrs"]}
    assert raw[oids.COMMITMENT_TYPE_INDICATION] == bytes.fromhex("300d060b2a864886f70d0109100601")
    assert raw[oids.SIGNING_TIME] == bytes.fromhex("170d3236303130323033303430355a")
    assert raw[oids.MESSAGE_DIGEST][2:] == hashlib.sha256(CONTENT).digest()
    certs = [c.chosen.dump() for c in signed_data["certificates"]]
    assert sorted(certs) == certs and len(certs) == 3  # leaf, intermediate, root; DER-sorted SET OF
    assert info["unsigned_attrs"].native is None


def test_ess_cert_id_v2_writes_sha256_explicitly_without_null(pki: TestPki) -> None:
    value = build.signing_certificate_v2_value(pki.leaf.cert, "sha256")
    ess = value[value.index(bytes.fromhex("300b0609608648016503040201")) :]
    assert ess.startswith(
        bytes.fromhex("300b06096086480165030402010420") + hashlib.sha256(pki.leaf.der).digest()
    )
    # issuerSerial: GeneralNames { [4] (constructed) issuer Name }, then the serial INTEGER.
    issuer = pki.leaf.cert.issuer.public_bytes()
    assert (
        bytes([0xA4]) + bytes([0x81, len(issuer)]) + issuer in value
        or b"\xa4" + bytes([len(issuer)]) + issuer in value
    )
    sha512 = build.signing_certificate_v2_value(pki.leaf.cert, "sha512")
    assert bytes.fromhex("300b0609608648016503040203") + bytes.fromhex("0440") in sha512


def test_signed_signature_verifies_with_openssl_and_loads_in_parser(
    pki: TestPki, pki_dir: Path, tmp_path: Path
) -> None:
    signature = sign(author_builder(pki.leaf), pki.leaf)
    path = tmp_path / "sig.p7s"
    path.write_bytes(signature)
    done = subprocess.run(
        ["openssl", "cms", "-verify", "-inform", "DER", "-in", str(path),
         "-CAfile", str(pki_dir / "root.pem"), "-purpose", "any", "-out", str(tmp_path / "content")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "content").read_bytes() == CONTENT
    loaded = load_primary_signature(signature)
    assert loaded.kind.value == "author"
    assert loaded.signer_certificate == pki.leaf.cert


def _certificate_without_ski(pki: TestPki) -> IssuedCert:
    key = new_rsa_key()
    issuer = pki.intermediate
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "no-ski")]))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(0x80 << 64)  # high bit set: DER needs a leading 00
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=30))
        .sign(issuer.key, hashes.SHA256())
    )
    return IssuedCert("no-ski", cert, key, issuer)


def test_certificate_without_ski_uses_issuer_and_serial_and_version_1(pki: TestPki) -> None:
    issued = _certificate_without_ski(pki)
    signature = sign(author_builder(issued), issued)
    signed_data = cms.ContentInfo.load(signature)["content"]
    info = signed_data["signer_infos"][0]
    assert signed_data["version"].native == "v1"
    assert info["version"].native == "v1"
    assert info["sid"].name == "issuer_and_serial_number"
    assert info["sid"].chosen["serial_number"].native == 0x80 << 64
    assert load_primary_signature(signature).signer_certificate == issued.cert


def test_repository_signature_attributes(pki: TestPki) -> None:
    builder = (
        build.PrimarySignatureBuilder.repository_signature(URL, ["alice", "bob"])
        .with_signer(pki.leaf.cert, pki.leaf.chain)
        .with_signing_time(NOW)
        .with_content(CONTENT)
    )
    info = signer_info(sign(builder, pki.leaf))
    raw = {a["type"].dotted: a["values"][0].dump() for a in info["signed_attrs"]}
    assert raw[oids.COMMITMENT_TYPE_INDICATION] == bytes.fromhex("300d060b2a864886f70d0109100602")
    assert raw[oids.NUGET_V3_SERVICE_INDEX_URL] == b"\x16" + bytes([len(URL)]) + URL.encode()
    assert raw[oids.NUGET_PACKAGE_OWNERS] == bytes.fromhex("300c") + b"\x0c\x05alice" + b"\x0c\x03bob"
    loaded = load_primary_signature(sign(builder, pki.leaf))
    assert (loaded.kind.value, loaded.service_index_url, tuple(loaded.owners)) == (
        "repository",
        URL,
        ("alice", "bob"),
    )


def test_empty_owners_means_no_attribute(pki: TestPki) -> None:
    builder = build.PrimarySignatureBuilder.repository_signature(URL, []).with_signer(pki.leaf.cert)
    info = signer_info(sign(builder.with_signing_time(NOW).with_content(CONTENT), pki.leaf))
    assert oids.NUGET_PACKAGE_OWNERS not in attribute_oids(info)


@pytest.mark.parametrize(
    ("url", "owners", "fragment"),
    [
        ("http://nuget.example/v3/index.json", [], "absolute https"),
        (
            "HTTPS://nuget.example/v3/index.json",
            [],
            "absolute https",
        ),  # NuGet's scheme check is case-sensitive
        ("/v3/index.json", [], "absolute https"),
        (URL, ["ok", "  "], "owner #2 is blank"),
    ],
)
def test_repository_signature_rejects_bad_url_or_owner(
    pki: TestPki, url: str, owners: list[str], fragment: str
) -> None:
    builder = build.PrimarySignatureBuilder.repository_signature(url, owners).with_signer(pki.leaf.cert)
    with pytest.raises(ValueError, match=fragment):
        builder.with_signing_time(NOW).with_content(CONTENT).signed_attributes()


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (
            lambda b: build.PrimarySignatureBuilder.author().with_signing_time(NOW).with_content(CONTENT),
            "certificate",
        ),
        (
            lambda b: build.PrimarySignatureBuilder.author().with_signer(b.certificate).with_content(CONTENT),
            "time",
        ),
        (
            lambda b: (
                build.PrimarySignatureBuilder.author().with_signer(b.certificate).with_signing_time(NOW)
            ),
            "content",
        ),
        (lambda b: b.with_hash_algorithm("sha1"), "unsupported hash"),
    ],
)
def test_builder_checks_required_fields_at_build_time(pki: TestPki, change: object, fragment: str) -> None:
    builder = change(author_builder(pki.leaf))  # type: ignore[operator]
    with pytest.raises(ValueError, match=fragment):
        builder.signed_attributes()


def test_builders_are_immutable(pki: TestPki) -> None:
    base = build.PrimarySignatureBuilder.author()
    changed = base.with_signer(pki.leaf.cert)
    assert base.certificate is None and changed.certificate is pki.leaf.cert


def test_add_timestamp_places_token_as_unsigned_attribute(pki: TestPki) -> None:
    signature = sign(author_builder(pki.leaf), pki.leaf)
    token = sign(author_builder(pki.tsa), pki.tsa)  # any ContentInfo stands in for the token here
    stamped = build.add_timestamp(signature, token)
    info = signer_info(stamped)
    assert attribute_oids(info, "unsigned_attrs") == [oids.SIGNATURE_TIMESTAMP_TOKEN]
    assert info["unsigned_attrs"][0]["values"][0].dump() == token
    # Signed attributes are untouched byte for byte, so the signature still verifies.
    assert info["signed_attrs"].dump() == signer_info(signature)["signed_attrs"].dump()
    assert load_primary_signature(stamped).timestamp_tokens == [token] or list(
        load_primary_signature(stamped).timestamp_tokens
    ) == [token]


def countersign(
    signature: bytes, issued: IssuedCert, owners: list[str]
) -> tuple[bytes, build.CountersignatureBuilder]:
    builder = (
        build.CountersignatureBuilder.repository(URL, owners)
        .with_signer(issued.cert, issued.chain)
        .with_signing_time(NOW)
    )
    primary_value = build.primary_signature_value(signature)
    value = issued.key.sign(builder.signed_attributes(primary_value), padding.PKCS1v15(), hashes.SHA256())
    counter = builder.build(primary_value, value)
    return editor.add_countersignature(signature, counter, builder.embedded_chain()), builder


def test_countersignature_signs_the_primary_signature_value(pki: TestPki) -> None:
    repo = pki.issue_leaf("repo-counter")
    signature = sign(author_builder(pki.leaf), pki.leaf)
    countersigned, _ = countersign(signature, repo, ["nuget"])
    info = signer_info(countersigned)
    assert attribute_oids(info, "unsigned_attrs") == [oids.COUNTERSIGNATURE]
    counter = cms.SignerInfo.load(info["unsigned_attrs"][0]["values"][0].dump())
    attrs = {a["type"].dotted: a["values"][0] for a in counter["signed_attrs"]}
    assert (
        attrs[oids.MESSAGE_DIGEST].native == hashlib.sha256(build.primary_signature_value(signature)).digest()
    )
    assert attrs[oids.COMMITMENT_TYPE_INDICATION].dump() == bytes.fromhex("300d060b2a864886f70d0109100602")
    assert set(attrs) >= {
        oids.NUGET_V3_SERVICE_INDEX_URL,
        oids.NUGET_PACKAGE_OWNERS,
        oids.SIGNING_CERTIFICATE_V2,
    }
    # The countersignature verifies over the DER SET of its signed attributes.
    repo.cert.public_key().verify(  # type: ignore[union-attr]
        counter["signature"].native,
        counter["signed_attrs"].untag().dump(),
        padding.PKCS1v15(),
        hashes.SHA256(),
    )
    certs = [c.chosen.dump() for c in cms.ContentInfo.load(countersigned)["content"]["certificates"]]
    assert repo.der in certs and len(certs) == len(set(certs)) == 4  # shared intermediate/root not repeated
    assert build.repository_countersigner_count(countersigned) == 1
    loaded = load_primary_signature(countersigned).countersignature()
    assert loaded is not None


def test_strip_repository_countersignatures_keeps_primary_intact(pki: TestPki) -> None:
    repo = pki.issue_leaf("repo-strip")
    signature = sign(author_builder(pki.leaf), pki.leaf)
    countersigned, _ = countersign(signature, repo, [])
    stripped = editor.strip_repository_countersignatures(countersigned)
    assert build.repository_countersigner_count(stripped) == 0
    assert signer_info(stripped)["unsigned_attrs"].native is None
    assert signer_info(stripped)["signed_attrs"].dump() == signer_info(signature)["signed_attrs"].dump()
    assert build.primary_signature_value(stripped) == build.primary_signature_value(signature)


def _asn1crypto_build(builder: build.PrimarySignatureBuilder, value: bytes, timestamp: bytes | None) -> bytes:
    """The same signature built from asn1crypto objects (how nuseal built it before issue 12): the reference."""
    from asn1crypto import algos, core
    from asn1crypto import x509 as asn1_x509

    assert builder.certificate is not None and builder.content is not None
    parsed = asn1_x509.Certificate.load(builder.certificate.public_bytes(Encoding.DER))
    if parsed.key_identifier is not None:
        sid, version = cms.SignerIdentifier({"subject_key_identifier": parsed.key_identifier}), "v3"
    else:
        sid = cms.SignerIdentifier({"issuer_and_serial_number": cms.IssuerAndSerialNumber(
            {"issuer": parsed.issuer, "serial_number": parsed.serial_number})})
        version = "v1"
    digest = algos.DigestAlgorithm({"algorithm": build.HASH_OIDS[builder.hash_algorithm], "parameters": core.Null()})
    info = cms.SignerInfo({
        "version": version, "sid": sid, "digest_algorithm": digest,
        "signed_attrs": cms.CMSAttributes.load(builder.signed_attributes()),
        "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": oids.RSA_ENCRYPTION,
                                                            "parameters": core.Null()}),
        "signature": value,
    })
    if timestamp is not None:
        info["unsigned_attrs"] = cms.CMSAttributes([cms.CMSAttribute.load(
            build.encode_attribute(oids.SIGNATURE_TIMESTAMP_TOKEN, timestamp))])
    chain = list({c.public_bytes(Encoding.DER): c for c in (builder.certificate, *builder.chain)}.values())
    signed_data = cms.SignedData({
        "version": version, "digest_algorithms": [digest],
        "encap_content_info": {"content_type": "data", "content": builder.content},
        "certificates": [asn1_x509.Certificate.load(c.public_bytes(Encoding.DER)) for c in chain],
        "signer_infos": [info],
    })
    return bytes(cms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump())


@pytest.mark.parametrize("hash_algorithm", ["sha256", "sha512"])
def test_signatures_are_byte_identical_to_an_asn1crypto_build(pki: TestPki, tsa_authority: object,
                                                              hash_algorithm: str) -> None:
    from nuseal.timestamp.client import InProcessTimestamper
    from nuseal.timestamp.tsa import TimestampAuthority

    assert isinstance(tsa_authority, TimestampAuthority)
    token = InProcessTimestamper(tsa_authority).timestamp(b"\x01" * 256, "SHA256")
    no_ski = _certificate_without_ski(pki)
    author = build.PrimarySignatureBuilder.author()
    repository = build.PrimarySignatureBuilder.repository_signature(URL, ["a", "b"])
    for issued, start in ((pki.leaf, author), (no_ski, author), (pki.leaf, repository)):
        builder = (start.with_signer(issued.cert, issued.chain).with_hash_algorithm(hash_algorithm)
                   .with_signing_time(NOW).with_content(CONTENT))
        for timestamp in (None, token):
            assert builder.build(b"\x05" * 256, timestamp=timestamp) == _asn1crypto_build(builder, b"\x05" * 256,
                                                                                           timestamp)


@pytest.mark.parametrize("when", [
    datetime(1950, 1, 1, tzinfo=UTC), datetime(2049, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone(timedelta(hours=-5))), datetime(2050, 1, 1, tzinfo=UTC),
])
def test_signing_time_is_encoded_as_asn1crypto_encodes_it(when: datetime) -> None:
    from asn1crypto import core

    utc = when.astimezone(UTC).replace(microsecond=0)
    reference = core.UTCTime(utc) if 1950 <= utc.year < 2050 else core.GeneralizedTime(utc)
    assert build._signing_time_value(when) == reference.dump()


@pytest.mark.parametrize("when", [datetime(1949, 12, 31, 23, 59, 59, tzinfo=UTC), datetime(1000, 1, 2, tzinfo=UTC),
                                  datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)])
def test_signing_time_outside_utctime_is_asn1crypto_generalized_time(when: datetime) -> None:
    from asn1crypto import core

    assert build._signing_time_value(when) == core.GeneralizedTime(when).dump()


def test_object_identifiers_are_encoded_as_asn1crypto_encodes_them() -> None:
    from asn1crypto import core

    every = [v for v in vars(oids).values() if isinstance(v, str) and v[:2] in ("0.", "1.", "2.")]
    assert len(every) > 20  # the probe saw nuseal's table
    for dotted in [*every, "2.999.1", "1.39.128", "2.5.4.3", "1.2.840.113549.1.9.16.2.47", "0.0"]:
        build._oid.cache_clear()
        assert build._oid(dotted) == core.ObjectIdentifier(dotted).dump(), dotted


@pytest.mark.parametrize("bad", ["", "1", "3.1", "1.40", "1.x.3", "1.-2"])
def test_invalid_object_identifiers_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid object identifier"):
        build._oid(bad)


def test_repository_attribute_values_are_encoded_as_asn1crypto_encodes_them() -> None:
    from asn1crypto import core

    url = "https://api.example.org/v3/index.json?" + "q" * 200  # a long form length
    assert build.service_index_url_value(url) == core.IA5String(url).dump()
    owners = ["microsoft", "Zoë Ünïcode", "x" * 300]
    assert build.package_owners_value(owners) == core.SequenceOf(spec=core.UTF8String, value=owners).dump()


def test_building_a_signature_does_not_import_asn1crypto(pki: TestPki, tmp_path: Path) -> None:
    leaf = pki.leaf.write_pfx(tmp_path / "leaf.pfx")
    code = (
        "import sys\nfrom datetime import UTC, datetime\nfrom pathlib import Path\n"
        "from nuseal.cms import build\nfrom nuseal.enums import HashAlgorithmName\n"
        "from nuseal.sign.signers import PfxSigner\n"
        f"s = PfxSigner.load(Path({str(leaf)!r}), {TEST_PASSWORD!r})\n"
        "b = build.PrimarySignatureBuilder.repository_signature('https://x.example/v3/index.json', ['o'])\n"
        "b = b.with_signer(s.certificate, s.chain).with_signing_time(datetime(2060, 1, 1, tzinfo=UTC))"
        ".with_content(b'c')\n"
        "attrs = b.signed_attributes()\nb.build(s.sign_raw(attrs, HashAlgorithmName.SHA256), signed_attributes=attrs)\n"
        "print(sorted(m for m in sys.modules if m.startswith('asn1crypto')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout
