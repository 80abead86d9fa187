"""The RepositorySignatures document (server.md §C.3) and NuGet's rules for reading it (§C.4)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from tests.unit.trust.nuget_org_document import NUGET_ORG_FINGERPRINTS, SHA256_OID, SUBJECT
from tests.unit.trust.nuget_org_document import repository_signatures_document as document

from nuseal.errors import FetchError, ProtocolError
from nuseal.protocol.repository_signatures import (
    RepositorySignatures,
    read_repository_signatures,
)
from nuseal.protocol.service_index import ResourceKind, ServiceIndex
from nuseal.verify.policy import HashAlgorithmName

URL = "https://api.nuget.org/v3-index/repository-signatures/5.0.0/index.json"
V5, V49, V47 = ResourceKind.REPOSITORY_SIGNATURES.preferred


def _read(doc: dict[str, Any] | str, resource_type: str = V5, **options: bool) -> RepositorySignatures:
    return read_repository_signatures(doc, source=URL, resource_type=resource_type, **options)


def test_reads_nuget_orgs_document() -> None:
    signatures = _read(json.dumps(document()))
    assert signatures.all_repository_signed is True
    assert [c.fingerprint(HashAlgorithmName.SHA256) for c in signatures.signing_certificates] == NUGET_ORG_FINGERPRINTS
    assert signatures.signing_certificates[0].fingerprint(HashAlgorithmName.SHA512) is None
    newest = signatures.signing_certificates[2]
    assert newest.subject == SUBJECT
    assert (newest.not_before, newest.not_after) == (datetime(2024, 2, 23, tzinfo=UTC),
                                                     datetime(2027, 5, 18, 23, 59, 59, tzinfo=UTC))


def test_round_trip_writes_nuget_orgs_exact_document() -> None:
    original = document()
    signatures = _read(original)
    assert signatures.emit() == original  # field order, fingerprint case and the 7-digit date form included
    assert json.loads(signatures.to_json()) == original
    assert RepositorySignatures.parse(signatures.to_json(), source=URL) == signatures
    assert list(signatures.emit()["signingCertificates"][0]) == [
        "fingerprints", "subject", "issuer", "notBefore", "notAfter", "contentUrl"]


def test_fingerprints_keep_the_case_the_feed_published() -> None:
    upper = document(certificates=[(NUGET_ORG_FINGERPRINTS[0].upper(), "CN=CA", "2018-04-10T00:00:00Z",
                                    "2021-04-14T12:00:00Z")])
    cert = _read(upper).signing_certificates[0]
    assert cert.fingerprint(HashAlgorithmName.SHA256) == NUGET_ORG_FINGERPRINTS[0].upper()


@pytest.mark.parametrize(("fingerprints", "message"), [
    ({SHA256_OID: "xyz"}, "is not hexadecimal"),
    ({SHA256_OID: "abc"}, "is not hexadecimal"),
    ({"sha256": "ab" * 32}, "'sha256' is not a hash algorithm OID"),
    ({SHA256_OID: 5}, "input should be a valid string"),
])
def test_bad_fingerprints_are_refused(fingerprints: dict[str, Any], message: str) -> None:
    doc = document()
    doc["signingCertificates"][0]["fingerprints"] = fingerprints
    with pytest.raises(ProtocolError, match=re.escape(message)) as err:
        _read(doc)
    assert err.value.field.startswith("signingCertificates[0].fingerprints")


@pytest.mark.parametrize("field", ["allRepositorySigned", "signingCertificates"])
def test_missing_top_level_field_names_field_and_url(field: str) -> None:
    doc = document()
    del doc[field]
    with pytest.raises(ProtocolError) as err:
        _read(doc)
    assert str(err.value) == f"The RepositorySignatures resource at '{URL}' is invalid: '{field}' is missing."


@pytest.mark.parametrize("field", ["fingerprints", "subject", "issuer", "notBefore", "notAfter", "contentUrl"])
def test_missing_certificate_field_names_field_and_url(field: str) -> None:
    doc = document()
    del doc["signingCertificates"][1][field]
    with pytest.raises(ProtocolError) as err:
        _read(doc)
    assert f"'signingCertificates[1].{field}' is missing" in str(err.value) and URL in str(err.value)


def test_all_repository_signed_must_be_a_boolean() -> None:
    with pytest.raises(ProtocolError, match="at 'allRepositorySigned': input should be a valid boolean"):
        _read({"allRepositorySigned": "perhaps", "signingCertificates": []})


@pytest.mark.parametrize("resource_type", [V47, V49])
def test_only_5_0_0_may_say_all_repository_signed(resource_type: str) -> None:
    with pytest.raises(ProtocolError) as err:
        _read(document(all_signed=True), resource_type)
    assert str(err.value) == (f"The RepositorySignatures resource at '{URL}' is advertised as {resource_type} but "
                              "says allRepositorySigned: true, which only RepositorySignatures/5.0.0 may say.")
    assert err.value.field == "allRepositorySigned"
    assert _read(document(all_signed=False), resource_type).all_repository_signed is False


def test_a_server_serves_false_under_4x_and_the_real_value_under_5_0_0() -> None:
    signatures = _read(document(all_signed=True))
    assert signatures.served_as(V5) is signatures
    for resource_type in (V47, V49):
        served = signatures.served_as(resource_type)
        assert served.all_repository_signed is False
        assert served.signing_certificates == signatures.signing_certificates
        assert _read(served.emit(), resource_type) == served  # what it serves, it can read back
    with pytest.raises(ValueError, match="not a RepositorySignatures resource type"):
        signatures.served_as("PackageBaseAddress/3.0.0")


def test_content_url_must_be_https() -> None:
    with pytest.raises(FetchError, match=r"contentUrl of signingCertificates\[0\] .* must be an absolute https"):
        _read(document(content_base="http://api.nuget.org/certs"))
    # The scheme comparison is case-insensitive, as NuGet's.
    _read(document(content_base="HTTPS://api.nuget.org/certs"))


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
def test_plain_http_only_for_loopback_and_only_when_asked(host: str) -> None:
    doc = document(content_base=f"http://{host}:8080/certs")
    with pytest.raises(FetchError):
        _read(doc)
    _read(doc, allow_insecure_loopback=True)


@pytest.mark.parametrize("content_base", ["http://example.test/certs", "http://[::1/certs", "/relative/certs"])
def test_insecure_loopback_does_not_open_other_urls(content_base: str) -> None:
    with pytest.raises(FetchError, match="must be an absolute https URL"):
        _read(document(content_base=content_base), allow_insecure_loopback=True)


def _index(*types: str) -> dict[str, Any]:
    return {"version": "3.0.0", "resources": [{"@id": f"https://feed.test/{t}", "@type": t} for t in types]}


@pytest.mark.parametrize(("types", "expected"), [
    ((V47, V5), V5),
    ((V47, V49), V49),
    ((V47,), V47),
    (("PackageBaseAddress/3.0.0",), None),
])
def test_discovery_prefers_the_newest_type(types: tuple[str, ...], expected: str | None) -> None:
    match = ServiceIndex.parse(_index(*types), source="https://feed.test/index.json").find(
        ResourceKind.REPOSITORY_SIGNATURES)
    assert (match.type if match else None) == expected
    assert (match.url if match else None) == (f"https://feed.test/{expected}" if expected else None)
