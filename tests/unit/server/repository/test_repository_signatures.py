"""The RepositorySignatures documents, read back the way NuGet reads them (``read_repository_signatures``: type
preference, ``allRepositorySigned`` only under 5.0.0, https contentUrl), and ``allRepositorySigned`` computed from
the served versions."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from cryptography import x509
from sqlalchemy import select
from tests.support.pki import TestPki
from tests.support.repository_signing import FEED_URL, OPERATOR, SigningFeed, feed_settings, write_trust_roots

from nuseal.enums import HashAlgorithmName
from nuseal.errors import ProtocolError
from nuseal.protocol.repository_signatures import RepositorySignatures, read_repository_signatures
from nuseal.protocol.service_index import ResourceKind, ServiceIndex
from nuseal.server.db.models import PackageVersion, RepositoryCertificate
from nuseal.server.services import repository_signatures as resource
from nuseal.server.services import rotation
from nuseal.server.services.errors import NotFoundError
from nuseal.x509 import certs


def _read(feed: SigningFeed, version: str) -> RepositorySignatures:
    body = resource.document(feed.ctx, version, FEED_URL).to_json()
    url = f"{FEED_URL}/v3/repository-signatures/{version}/index.json"
    return read_repository_signatures(body, source=url, resource_type=resource.resource_type(version))


def test_the_documents_list_every_published_certificate_as_nuget_reads_them(feed: SigningFeed,
                                                                            pki: TestPki) -> None:  # fmt: skip
    issued = feed.issue("second")
    second = feed.add_certificate(issued, activate=False)
    document = _read(feed, "5.0.0")
    assert document.all_repository_signed is True  # certificates published, nothing served unsigned
    entry = next(c for c in document.signing_certificates if c.fingerprint(HashAlgorithmName.SHA256) == second)
    der = issued.der
    assert entry.fingerprints == {
        "2.16.840.1.101.3.4.2.1": hashlib.sha256(der).hexdigest(),
        "2.16.840.1.101.3.4.2.2": hashlib.sha384(der).hexdigest(),
        "2.16.840.1.101.3.4.2.3": hashlib.sha512(der).hexdigest(),
    }
    assert entry.subject == certs.subject_string(issued.cert) and "CN=nuseal test second" in entry.subject
    assert entry.issuer == certs.issuer_string(issued.cert)
    assert entry.content_url == f"{FEED_URL}/v3/repository-signatures/certificates/{second}.crt"
    emitted = resource.document(feed.ctx, "5.0.0", FEED_URL).emit()
    raw = next(c for c in emitted["signingCertificates"] if second in c["contentUrl"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.0000000Z", raw["notBefore"])  # nuget.org's form
    assert x509.load_der_x509_certificate(resource.certificate_der(feed.ctx, second)).subject == issued.cert.subject
    for old in ("4.7.0", "4.9.0"):
        older = _read(feed, old)
        assert older.all_repository_signed is False  # clients 4.7-4.9 cannot install from a source saying true
        assert older.signing_certificates == document.signing_certificates


def test_a_4x_document_saying_true_would_be_refused_by_the_reader(feed: SigningFeed) -> None:
    body = resource.document(feed.ctx, "5.0.0", FEED_URL).to_json()
    with pytest.raises(ProtocolError, match=r"only RepositorySignatures/5\.0\.0 may say"):
        read_repository_signatures(body, source="x", resource_type="RepositorySignatures/4.7.0")


def test_all_repository_signed_is_computed_from_what_is_served(feed: SigningFeed) -> None:
    old = feed.add_certificate(activate=False)
    feed.publish("Contoso.Signed", "1.0.0")
    assert _read(feed, "5.0.0").all_repository_signed is True
    unsigned = feed.build("Contoso.Unsigned", "1.0.0", author_signed=True)
    version = feed.insert("Contoso.Unsigned", "1.0.0", unsigned, owners=("alice",), repo_cert=None,
                          author_signed=True)  # fmt: skip
    assert _read(feed, "5.0.0").all_repository_signed is False  # one served version without a repository signature
    with feed.ctx.db.transaction() as session:
        row = session.get(PackageVersion, version)
        assert row is not None
        session.delete(row)
    assert _read(feed, "5.0.0").all_repository_signed is True
    feed.publish("Contoso.Old", "1.0.0", repo_cert=old)
    rotation.retire(feed.ctx, OPERATOR, old)
    assert _read(feed, "5.0.0").all_repository_signed is True  # retired but still listed until re-signed
    rotation.revoke(feed.ctx, OPERATOR, old)
    document = _read(feed, "5.0.0")
    assert document.all_repository_signed is False  # a served package carries an unlisted certificate
    assert old not in [c.fingerprint(HashAlgorithmName.SHA256) for c in document.signing_certificates]


def test_no_certificate_means_not_all_signed(feed: SigningFeed) -> None:
    with feed.ctx.db.transaction() as session:
        for row in session.scalars(select(RepositoryCertificate)):
            row.unlisted_at = feed.clock()
    document = _read(feed, "5.0.0")
    assert (document.all_repository_signed, document.signing_certificates) == (False, [])


def test_unknown_versions_and_certificates_are_404(feed: SigningFeed) -> None:
    with pytest.raises(NotFoundError, match=r"no RepositorySignatures/3\.0\.0 resource"):
        resource.document(feed.ctx, "3.0.0", FEED_URL)
    with pytest.raises(NotFoundError, match="no repository certificate"):
        resource.certificate_der(feed.ctx, "ab" * 32)
    with pytest.raises(NotFoundError):
        resource.certificate_der(feed.ctx, "../etc/passwd")


def test_the_service_index_advertises_it_only_over_https(pki: TestPki, tmp_path: Path) -> None:
    roots = write_trust_roots(pki, tmp_path)
    https = feed_settings(tmp_path, f"sqlite:///{tmp_path / 'db'}", roots)
    entries = resource.repository_signature_resources(https)
    index = ServiceIndex(version="3.0.0", resources=entries)
    match = index.find(ResourceKind.REPOSITORY_SIGNATURES)
    assert match is not None and match.type == "RepositorySignatures/5.0.0"
    assert match.url == f"{FEED_URL}/v3/repository-signatures/5.0.0/index.json"
    assert sorted(e.type for e in entries) == [f"RepositorySignatures/{v}" for v in ("4.7.0", "4.9.0", "5.0.0")]
    assert all(e.comment == resource.COMMENT for e in entries)
    http = feed_settings(tmp_path, f"sqlite:///{tmp_path / 'db'}", roots, public_url="http://feed.example")
    assert resource.repository_signature_resources(http) == []
    assert resource.http_warning(http, "http://feed.example") is None
    dev = feed_settings(tmp_path, f"sqlite:///{tmp_path / 'db'}", roots, public_url="http://feed.example",
                        dev_allow_http_repository_signatures=True)  # fmt: skip
    assert next(e.url for e in resource.repository_signature_resources(dev)).startswith("http://feed.example/v3/")
    warning = resource.http_warning(dev, "http://feed.example")
    assert warning is not None and "clients refuse" in warning
