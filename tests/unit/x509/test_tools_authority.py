"""``create_authority`` and certificates issued under it (the feed's development PKI)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography import x509

from nuseal.timestamp.client import InProcessTimestamper
from nuseal.timestamp.tsa import TimestampAuthority
from nuseal.x509 import certs, tools

NOW = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)


def test_an_authority_issues_code_signing_and_timestamping_certificates() -> None:
    root, root_key = tools.create_authority("CN=Dev Root, O=Tests", now=NOW)
    constraints = root.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and root.subject == root.issuer
    usage = root.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign and not usage.digital_signature
    leaf, _ = tools.create_certificate("CN=Dev Repo", now=NOW, issuer=(root, root_key))
    leaf.verify_directly_issued_by(root)
    assert leaf.issuer == root.subject and tools.check_signing_certificate(leaf, NOW) == []
    assert leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier == (
        root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest)
    tsa_cert, tsa_key = tools.create_certificate("CN=Dev TSA", now=NOW, timestamping=True, issuer=(root, root_key))
    stamper = InProcessTimestamper(TimestampAuthority(tsa_cert, tsa_key, [root], clock=lambda: NOW),
                                   clock=lambda: NOW)  # fmt: skip
    assert stamper.timestamp(b"signature value", "sha256")  # the TSA accepts a certificate issued this way
    assert certs.is_self_issued(root) and not certs.is_self_issued(leaf)


def test_authority_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="key size 1024 is not supported"):
        tools.create_authority("CN=x", now=NOW, key_size=1024)
    with pytest.raises(ValueError, match="at least one day"):
        tools.create_authority("CN=x", now=NOW, days=0)
