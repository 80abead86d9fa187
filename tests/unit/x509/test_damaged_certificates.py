"""Certificates that load but are damaged inside (names, extensions, keys are parsed lazily by cryptography):
every certificate fact nuseal reads answers plainly, chain building reports statuses, nothing raises, and
cryptography's RFC 5280 warnings stay inside the library."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from tests.conftest import VECTORS
from tests.fuzz import mutants

from nuseal import oids
from nuseal.x509 import certs
from nuseal.x509.chain import ChainStatus, build_chain

FIXTURES = VECTORS / "fixtures"
ROOT, INTERMEDIATE, LEAF = (
    (FIXTURES / f"{name}.crt").read_bytes() for name in ("root", "intermediate", "leaf"))
AT = datetime(2020, 1, 1, tzinfo=UTC)


def _damaged(der: bytes, edit: Callable[[list[mutants.Node]], None]) -> bytes:
    """``der`` with ``edit`` applied to the TBSCertificate's fields (re-encoded, so it still parses as DER)."""
    tree = mutants.parse_der(der)
    assert tree.children is not None and tree.children[0].children is not None
    edit(tree.children[0].children)
    return tree.encode()


def _unknown_key_algorithm(fields: list[mutants.Node]) -> None:
    spki = fields[6]
    assert spki.children is not None and spki.children[0].children is not None
    spki.children[0].children[0] = mutants.parse_der(mutants.oid_der("1.2.840.113549.1.1.99"))


def _empty_rdn_in_subject(fields: list[mutants.Node]) -> None:
    subject = fields[5]
    assert subject.children is not None
    subject.children[0] = mutants.Node(b"\x31", b"", 0, 0)


def _duplicate_extension(fields: list[mutants.Node]) -> None:
    extensions = fields[7].children[0]  # type: ignore[index]
    assert extensions.children is not None
    extensions.children.append(extensions.children[-1])


def _version_4(fields: list[mutants.Node]) -> None:
    version = fields[0].children[0]  # type: ignore[index]
    version.content = b"\x03"


def _chain(leaf: bytes, intermediate: bytes) -> ChainStatus:
    result = build_chain(certs.load_der(leaf), extra_certificates=[certs.load_der(intermediate)],
                         trust_anchors=(certs.load_der(ROOT),), usage_eku=oids.CODE_SIGNING_EKU,
                         verification_time=AT, revocation=None)
    return result.status


def test_undamaged_chain_is_trusted() -> None:
    assert _chain(LEAF, INTERMEDIATE) == ChainStatus.NO_ERROR


def test_unsupported_version_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unsupported certificate version"):
        certs.load_der(_damaged(INTERMEDIATE, _version_4))


def test_unknown_key_algorithm() -> None:
    certificate = certs.load_der(_damaged(INTERMEDIATE, _unknown_key_algorithm))
    assert certs.public_key(certificate) is None
    assert certs.rsa_key_bits(certificate) is None
    assert certs.summarize(certificate).subject.startswith("CN=intermediate.test.test")
    # The leaf's signature cannot be checked with an undecodable issuer key.
    assert _chain(LEAF, _damaged(INTERMEDIATE, _unknown_key_algorithm)) & ChainStatus.NOT_SIGNATURE_VALID


def test_undecodable_subject() -> None:
    damaged = _damaged(INTERMEDIATE, _empty_rdn_in_subject)
    certificate = certs.load_der(damaged)
    assert certs.subject(certificate) is None
    summary = certs.summarize(certificate)
    assert summary.subject.startswith("#30") and summary.issuer.startswith("CN=root.test.test")
    assert certs.subject_string(certificate) == summary.subject
    # No certificate carries the leaf's issuer name any more: the chain stops at the leaf.
    assert _chain(LEAF, damaged) & ChainStatus.PARTIAL_CHAIN


def test_duplicate_extension() -> None:
    damaged = _damaged(LEAF, _duplicate_extension)
    certificate = certs.load_der(damaged)
    assert certs.extensions(certificate) is None
    assert certs.extended_key_usages(certificate) == frozenset()
    assert [code for code, _ in certs.check_certificate(certificate, AT, "author primary signature")] == []
    assert _chain(damaged, INTERMEDIATE) & ChainStatus.INVALID_EXTENSION


def test_rfc5280_warnings_stay_inside() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # building the name warns too: that is the test's own doing
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "u" * 76)])
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(1).not_valid_before(AT).not_valid_after(AT + timedelta(days=1))
                   .sign(key, hashes.SHA256()))
    der = certificate.public_bytes(Encoding.DER)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = certs.load_der(der)
        assert certs.summarize(loaded).subject == "OU=" + "u" * 76
        assert certs.is_self_issued(loaded)
        assert certs.extended_key_usages(loaded) is None
