"""Certificate names read from the DER (``der.name_attributes``) give the same summary strings and chain-building
keys as cryptography's ``Name`` objects, on every bundled root, every certificate the vectors carry and names built
to differ; where the DER reading cannot vouch for cryptography's values it steps aside."""

from __future__ import annotations

import importlib.resources
import zipfile
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID
from tests.conftest import VECTORS

from nuseal.cms.parse import load_primary_signature
from nuseal.x509 import certs
from nuseal.x509 import der as der_walker
from nuseal.x509.facts import Facts, _raw_name_key, name_key_digest


def _by_cryptography(entry: Facts, which: str) -> tuple[str, bytes]:
    """The summary string and key as they were made before the DER reading: from cryptography's Name."""
    name = entry.subject if which == "subject" else entry.issuer
    raw = entry.raw_subject if which == "subject" else entry.raw_issuer
    if name is None:
        return "#" + raw.hex(), _raw_name_key(raw)
    return certs.name_string(name), name_key_digest(name)


def _by_der(entry: Facts, which: str) -> tuple[str, bytes]:
    return certs._name_string_or_hex(entry, which), entry.subject_key if which == "subject" else entry.issuer_key


def _all_certificates() -> list[x509.Certificate]:
    found: dict[bytes, x509.Certificate] = {}
    for bundle in ("codesignctl.pem", "timestampctl.pem"):
        data = (importlib.resources.files("nuseal.x509") / "roots" / bundle).read_bytes()
        with certs.quiet():
            for certificate in x509.load_pem_x509_certificates(data):
                found[certificate.public_bytes(Encoding.DER)] = certificate
    for path in sorted(VECTORS.rglob("*.nupkg")):
        try:
            with zipfile.ZipFile(path) as archive:
                signature = archive.read(".signature.p7s")
            for certificate in load_primary_signature(signature).certificates:
                found[certs.der(certificate)] = certificate
        except Exception:  # unsigned, damaged or refused: not a source of certificates here
            continue
    return list(found.values())


def test_every_known_certificate_gets_the_same_names_and_keys() -> None:
    certificates = _all_certificates()
    assert len(certificates) > 200
    read_from_der = 0
    with certs.quiet():
        for certificate in certificates:
            entry = Facts(certificate)  # fresh: nothing remembered from another test
            for which in ("subject", "issuer"):
                assert _by_der(entry, which) == _by_cryptography(entry, which), (certificate.subject, which)
                raw = entry.raw_subject if which == "subject" else entry.raw_issuer
                read_from_der += der_walker.name_attributes(raw) is not None
    assert read_from_der > len(certificates)  # most names take the DER reading


def _certificate(name: x509.Name) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(7).not_valid_before(now).not_valid_after(now + timedelta(days=1))
            .sign(key, hashes.SHA256()))


NAMES = {
    "plain": (x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Plain Name, Inc."),
                         x509.NameAttribute(NameOID.COUNTRY_NAME, "US")]), True),
    "utf-8": (x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Zürich Ünïcode ✓")]), True),
    "bmp": (x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "BMP ü", _ASN1Type.BMPString)]), True),
    "universal": (x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Uni ü", _ASN1Type.UniversalString)]), True),
    "teletex ascii": (x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "t61", _ASN1Type.T61String)]), True),
    "teletex non-ascii": (x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "t61 é", _ASN1Type.T61String)]),
                          False),
    "multi-valued rdn": (x509.Name([x509.RelativeDistinguishedName([
        x509.NameAttribute(NameOID.COMMON_NAME, "a"), x509.NameAttribute(NameOID.SERIAL_NUMBER, "1")])]), True),
    "unique identifier": (x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "u"),
                                     x509.NameAttribute(NameOID.X500_UNIQUE_IDENTIFIER, b"\x01\x02",
                                                        _ASN1Type.BitString)]), False),
    "spaces and case": (x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "  Mixed   CASE ")]), True),
    "empty": (x509.Name([]), True),
}


@pytest.mark.parametrize("case", sorted(NAMES))
def test_built_names_read_the_same_or_step_aside(case: str) -> None:
    name, vouched = NAMES[case]
    entry = Facts(_certificate(name))
    assert (der_walker.name_attributes(entry.raw_subject) is not None) is vouched
    assert _by_der(entry, "subject") == _by_cryptography(entry, "subject")
    assert _by_der(entry, "issuer") == _by_cryptography(entry, "issuer")


def test_names_cryptography_refuses_are_not_vouched_for() -> None:
    cn = bytes.fromhex("300806035504030c0161")  # CN=a
    sequence = lambda *rdns: bytes([0x30, sum(map(len, rdns))]) + b"".join(rdns)  # noqa: E731
    rdn = lambda *pairs: bytes([0x31, sum(map(len, pairs))]) + b"".join(pairs)  # noqa: E731
    assert der_walker.name_attributes(sequence(rdn(cn))) == ((("2.5.4.3", "a"),),)
    with pytest.raises(ValueError):
        x509.RelativeDistinguishedName([])
    assert der_walker.name_attributes(sequence(rdn(cn), rdn())) is None  # an empty RDN
    with pytest.raises(ValueError):
        x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COMMON_NAME, "a")] * 2)
    assert der_walker.name_attributes(sequence(rdn(cn, cn))) is None  # a repeated attribute
    octets = bytes.fromhex("30080603550403040161")
    assert der_walker.name_attributes(sequence(rdn(octets))) is None  # an OCTET STRING value
    assert der_walker.name_attributes(sequence(rdn(cn))[:-1]) is None  # cut off
