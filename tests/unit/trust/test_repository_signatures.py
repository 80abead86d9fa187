
"""RepositorySignatures resource: parsing, https rules, discovery, fetching, policy effects (spec §8)."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
from tests.unit.trust.nuget_org_document import NUGET_ORG_FINGERPRINTS, SUBJECT
from tests.unit.trust.nuget_org_document import repository_signatures_document as document

from nuseal.codes import Messages
from nuseal.errors import FetchError
from nuseal.trust.policy_builder import apply_repository_info, repository_allow_list
from nuseal.trust.repository_signatures import (
    RepositorySignatureInfo,
    fetch_repository_signatures,
    find_repository_signatures_url,
    parse_repository_signatures,
)
from nuseal.verify.policy import HashAlgorithmName, Placement, SignatureKind, VerificationPolicy

URL = "https://api.nuget.org/v3-index/repository-signatures/5.0.0/index.json"


def test_parses_a_realistic_document() -> None:
    info = parse_repository_signatures(json.dumps(document()), URL)
    assert info.all_repository_signed is True
    assert [c.fingerprint(HashAlgorithmName.SHA256) for c in info.certificates] == NUGET_ORG_FINGERPRINTS
    assert info.certificates[0].subject == SUBJECT
    assert info.certificates[2].not_after.startswith("2027-05-18")


@pytest.mark.parametrize("field", ["allRepositorySigned", "signingCertificates"])
def test_missing_top_level_field_names_field_and_url(field: str) -> None:
    doc = document()
    del doc[field]
    with pytest.raises(FetchError) as err:
        parse_repository_signatures(doc, URL)
    assert field in str(err.value) and URL in str(err.value)


@pytest.mark.parametrize("field", ["fingerprints", "subject", "issuer", "notBefore", "notAfter", "contentUrl"])
def test_missing_certificate_field_names_field_and_url(field: str) -> None:
    doc = document()
    del doc["signingCertificates"][1][field]
    with pytest.raises(FetchError) as err:
        parse_repository_signatures(doc, URL)
    assert f"signingCertificates[1].{field}" in str(err.value) and URL in str(err.value)


def test_content_url_must_be_https() -> None:
    with pytest.raises(FetchError, match=r"contentUrl.*https"):
        parse_repository_signatures(document(content_base="http://api.nuget.org/certs"), URL)
    # The scheme comparison is case-insensitive, as NuGet's.
    parse_repository_signatures(document(content_base="HTTPS://api.nuget.org/certs"), URL)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
def test_plain_http_only_for_loopback_and_only_when_asked(host: str) -> None:
    doc = document(content_base=f"http://{host}:8080/certs")
    with pytest.raises(FetchError):
        parse_repository_signatures(doc, URL)
    parse_repository_signatures(doc, URL, allow_insecure_loopback=True)


def test_insecure_loopback_does_not_open_other_hosts() -> None:
    with pytest.raises(FetchError):
        parse_repository_signatures(document(content_base="http://example.test/certs"), URL,
                                    allow_insecure_loopback=True)


def _index(*types: str) -> dict[str, Any]:
    return {"version": "3.0.0", "resources": [{"@id": f"https://feed.test/{t}", "@type": t} for t in types]}


@pytest.mark.parametrize(("types", "expected"), [
    (("RepositorySignatures/4.7.0", "RepositorySignatures/5.0.0"), "RepositorySignatures/5.0.0"),
    (("RepositorySignatures/4.7.0", "RepositorySignatures/4.9.0"), "RepositorySignatures/4.9.0"),
    (("RepositorySignatures/4.7.0",), "RepositorySignatures/4.7.0"),
    (("PackageBaseAddress/3.0.0",), None),
])
def test_discovery_prefers_the_newest_type(types: tuple[str, ...], expected: str | None) -> None:
    found = find_repository_signatures_url(_index(*types), "https://feed.test/index.json")
    assert found == (f"https://feed.test/{expected}" if expected else None)


def _client(routes: dict[str, httpx.Response | Exception]) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        answer = routes.get(str(request.url))
        if answer is None:
            return httpx.Response(404)
        if isinstance(answer, Exception):
            raise answer
        return answer
    return httpx.Client(transport=httpx.MockTransport(handler))


def test_fetch_follows_the_service_index() -> None:
    index = {"version": "3.0.0", "resources": [{"@id": URL, "@type": "RepositorySignatures/5.0.0"}]}
    client = _client({"https://api.nuget.org/v3/index.json": httpx.Response(200, json=index),
                      URL: httpx.Response(200, json=document())})
    info = fetch_repository_signatures(client, "https://api.nuget.org/v3/index.json")
    assert info is not None and len(info.certificates) == 3 and info.url == URL


def test_fetch_returns_none_without_the_resource() -> None:
    client = _client({"https://feed.test/index.json": httpx.Response(200, json=_index("SearchQueryService"))})
    assert fetch_repository_signatures(client, "https://feed.test/index.json") is None


def test_fetch_refuses_an_http_resource() -> None:
    index = {"version": "3.0.0", "resources": [{"@id": "http://feed.test/rs.json",
                                                "@type": "RepositorySignatures/5.0.0"}]}
    client = _client({"https://feed.test/index.json": httpx.Response(200, json=index)})
    with pytest.raises(FetchError, match=re.escape("http://feed.test/rs.json")):
        fetch_repository_signatures(client, "https://feed.test/index.json")


@pytest.mark.parametrize(("answer", "message"), [
    (httpx.Response(500), "HTTP 500"),
    (httpx.Response(200, content=b"{not json"), "not valid JSON"),
    (httpx.ConnectTimeout("slow"), "Timed out"),
    (httpx.ConnectError("refused"), "Could not fetch"),
])
def test_fetch_errors_are_clear(answer: httpx.Response | Exception, message: str) -> None:
    client = _client({"https://feed.test/index.json": answer})
    with pytest.raises(FetchError) as err:
        fetch_repository_signatures(client, "https://feed.test/index.json")
    assert message in str(err.value) and "https://feed.test/index.json" in str(err.value)


def test_repository_allow_list_has_one_entry_per_listed_fingerprint() -> None:
    info = parse_repository_signatures(document(extra_sha512=True), URL)
    allow_list = repository_allow_list(info)
    assert len(allow_list.entries) == 6
    assert {e.algorithm for e in allow_list.entries} == {HashAlgorithmName.SHA256, HashAlgorithmName.SHA512}
    assert all(e.targets == frozenset({SignatureKind.REPOSITORY}) and e.placement == Placement.ANY
               for e in allow_list.entries)
    assert allow_list.require_non_empty is True
    assert allow_list.empty_message == Messages.REPO_NO_CERTIFICATES
    assert allow_list.no_match_message == Messages.REPO_CERT_NOT_LISTED


def test_all_repository_signed_tightens_the_policy() -> None:
    info = parse_repository_signatures(document(all_signed=True), URL)
    policy = apply_repository_info(VerificationPolicy.accept_mode(), info)
    assert policy.allow_unsigned is False and policy.allow_untrusted is False
    assert policy.unsigned_message == Messages.REPO_ALL_SIGNED_UNSIGNED
    assert policy.allow_lists[-1].name == "repositorySignatures"


def test_not_all_signed_leaves_accept_mode_alone_but_adds_the_list() -> None:
    info = RepositorySignatureInfo(URL, False, ())
    policy = apply_repository_info(VerificationPolicy.accept_mode(), info)
    assert policy.allow_unsigned is True and policy.allow_untrusted is True
    assert policy.unsigned_message == Messages.NOT_SIGNED
    assert policy.allow_lists[-1].require_non_empty is False


def test_require_mode_message_wins_over_the_repository_message() -> None:
    info = parse_repository_signatures(document(all_signed=True), URL)
    base = VerificationPolicy.require_mode()
    base = type(base)(**{**base.__dict__, "unsigned_message": Messages.REQUIRE_MODE_UNSIGNED})
    assert apply_repository_info(base, info).unsigned_message == Messages.REQUIRE_MODE_UNSIGNED
