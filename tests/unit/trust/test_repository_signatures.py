"""RepositorySignatures as trust: fetching through the service index, and its effect on policy (spec §8).

The document itself and NuGet's reading rules are tested in ``tests/unit/protocol/test_repository_signatures.py``.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from tests.unit.trust.nuget_org_document import repository_signatures_document as document

from nuseal.codes import Messages
from nuseal.errors import FetchError, ProtocolError
from nuseal.protocol.repository_signatures import RepositorySignatures
from nuseal.record import replace
from nuseal.trust.policy_builder import apply_repository_info, repository_allow_list
from nuseal.trust.repository_signatures import (
    RepositorySignatureInfo,
    fetch_repository_signatures,
)
from nuseal.verify.policy import HashAlgorithmName, Placement, SignatureKind, VerificationPolicy

URL = "https://api.nuget.org/v3-index/repository-signatures/5.0.0/index.json"


def _info(doc: dict[str, Any]) -> RepositorySignatureInfo:
    return RepositorySignatureInfo(URL, RepositorySignatures.parse(doc, source=URL))


def _index(*types: str) -> dict[str, Any]:
    return {"version": "3.0.0", "resources": [{"@id": f"https://feed.test/{t}", "@type": t} for t in types]}


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


def test_fetch_prefers_5_0_0_and_reads_it_under_its_rules() -> None:
    index = _index("RepositorySignatures/4.7.0", "RepositorySignatures/5.0.0")
    client = _client({"https://feed.test/index.json": httpx.Response(200, json=index),
                      "https://feed.test/RepositorySignatures/5.0.0": httpx.Response(200, json=document())})
    info = fetch_repository_signatures(client, "https://feed.test/index.json")
    assert info is not None and info.url == "https://feed.test/RepositorySignatures/5.0.0"
    assert info.all_repository_signed is True


def test_fetch_refuses_all_signed_under_a_4x_type() -> None:
    client = _client({"https://feed.test/index.json": httpx.Response(200, json=_index("RepositorySignatures/4.7.0")),
                      "https://feed.test/RepositorySignatures/4.7.0": httpx.Response(200, json=document())})
    with pytest.raises(ProtocolError, match=re.escape("advertised as RepositorySignatures/4.7.0 but says")):
        fetch_repository_signatures(client, "https://feed.test/index.json")


def test_fetch_names_the_bad_field_of_a_malformed_document() -> None:
    doc = document()
    del doc["signingCertificates"][1]["notAfter"]
    index = {"version": "3.0.0", "resources": [{"@id": URL, "@type": "RepositorySignatures/5.0.0"}]}
    client = _client({"https://api.nuget.org/v3/index.json": httpx.Response(200, json=index),
                      URL: httpx.Response(200, json=doc)})
    with pytest.raises(ProtocolError) as err:
        fetch_repository_signatures(client, "https://api.nuget.org/v3/index.json")
    assert str(err.value) == (f"The RepositorySignatures resource at '{URL}' is invalid: "
                              "'signingCertificates[1].notAfter' is missing.")


def test_repository_allow_list_has_one_entry_per_listed_fingerprint() -> None:
    info = _info(document(extra_sha512=True))
    allow_list = repository_allow_list(info)
    assert len(allow_list.entries) == 6
    assert {e.algorithm for e in allow_list.entries} == {HashAlgorithmName.SHA256, HashAlgorithmName.SHA512}
    assert all(e.targets == frozenset({SignatureKind.REPOSITORY}) and e.placement == Placement.ANY
               for e in allow_list.entries)
    assert allow_list.require_non_empty is True
    assert allow_list.empty_message == Messages.REPO_NO_CERTIFICATES
    assert allow_list.no_match_message == Messages.REPO_CERT_NOT_LISTED


def test_all_repository_signed_tightens_the_policy() -> None:
    info = _info(document(all_signed=True))
    policy = apply_repository_info(VerificationPolicy.accept_mode(), info)
    assert policy.allow_unsigned is False and policy.allow_untrusted is False
    assert policy.unsigned_message == Messages.REPO_ALL_SIGNED_UNSIGNED
    assert policy.allow_lists[-1].name == "repositorySignatures"


def test_not_all_signed_leaves_accept_mode_alone_but_adds_the_list() -> None:
    info = RepositorySignatureInfo(URL, RepositorySignatures(all_repository_signed=False, signing_certificates=[]))
    policy = apply_repository_info(VerificationPolicy.accept_mode(), info)
    assert policy.allow_unsigned is True and policy.allow_untrusted is True
    assert policy.unsigned_message == Messages.NOT_SIGNED
    assert policy.allow_lists[-1].require_non_empty is False


def test_require_mode_message_wins_over_the_repository_message() -> None:
    info = _info(document(all_signed=True))
    base = VerificationPolicy.require_mode()
    base = replace(base, unsigned_message=Messages.REQUIRE_MODE_UNSIGNED)
    assert apply_repository_info(base, info).unsigned_message == Messages.REQUIRE_MODE_UNSIGNED
