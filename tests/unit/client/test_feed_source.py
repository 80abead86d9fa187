"""FeedSource against canned nuget.org-shaped documents over httpx.MockTransport (no network)."""

from __future__ import annotations

import copy
import re
from typing import Any

import httpx
import pytest
from tests.unit.protocol.canned import decoded
from tests.unit.trust.nuget_org_document import repository_signatures_document

from nuseal.client.source import FeedSource
from nuseal.errors import FetchError, ProtocolError
from nuseal.versioning import NuGetVersion

INDEX = "https://feed.test/v3/index.json"
REG = "https://api.nuget.org/v3/registration5-gz-semver2/"
V = NuGetVersion.parse


def _source(routes: dict[str, Any]) -> FeedSource:
    def handler(request: httpx.Request) -> httpx.Response:
        answer = routes.get(str(request.url))
        return httpx.Response(404) if answer is None else httpx.Response(200, json=answer)
    return FeedSource(httpx.Client(transport=httpx.MockTransport(handler)), INDEX)


def _index(*resources: tuple[str, str]) -> dict[str, Any]:
    return {"version": "3.0.0", "resources": [{"@id": url, "@type": t} for url, t in resources]}


def test_flat_container_versions_and_package_url() -> None:
    source = _source({INDEX: _index(("https://feed.test/flat", "PackageBaseAddress/3.0.0")),
                      "https://feed.test/flat/contoso.lib/index.json": decoded("flat_container_versions.json")})
    assert source.versions("Contoso.Lib") == [V("1.0.0"), V("1.5.0"), V("2.0.0-beta.1"), V("2.0.0")]
    assert source.versions("Missing") == []
    assert source.package_url("Contoso.Lib", V("2.0.0-Beta.1")) == \
        "https://feed.test/flat/contoso.lib/2.0.0-beta.1/contoso.lib.2.0.0-beta.1.nupkg"


def test_registration_fallback_follows_linked_pages_and_skips_unlisted() -> None:
    source = _source({INDEX: _index((REG, "RegistrationsBaseUrl/3.6.0")),
                      f"{REG}contoso.lib/index.json": decoded("registration_index.json"),
                      f"{REG}contoso.lib/page/1.0.0/1.5.0.json": decoded("registration_page.json")})
    # 1.0.0 is unlisted (listed: false) in the linked page; the inlined page gives the 2.0.0 versions.
    assert source.versions("Contoso.Lib") == [V("1.5.0"), V("2.0.0-beta.1"), V("2.0.0")]
    assert source.package_url("Contoso.Lib", V("2.0.0")) == \
        "https://api.nuget.org/v3-flatcontainer/contoso.lib/2.0.0/contoso.lib.2.0.0.nupkg"
    with pytest.raises(FetchError, match=re.escape("does not list package 'Contoso.Lib 1.0.0'")):
        source.package_url("Contoso.Lib", V("1.0.0"))


def test_a_malformed_registration_is_a_protocol_error_naming_url_and_field() -> None:
    broken = copy.deepcopy(decoded("registration_page.json"))
    del broken["items"][1]["catalogEntry"]["version"]
    source = _source({INDEX: _index((REG, "RegistrationsBaseUrl/3.6.0")),
                      f"{REG}contoso.lib/index.json": decoded("registration_index.json"),
                      f"{REG}contoso.lib/page/1.0.0/1.5.0.json": broken})
    with pytest.raises(ProtocolError) as err:
        source.versions("Contoso.Lib")
    assert str(err.value) == (f"The registration page at '{REG}contoso.lib/page/1.0.0/1.5.0.json' is invalid: "
                              "'items[1].catalogEntry.version' is missing.")


def test_no_usable_resource_is_a_clear_error() -> None:
    source = _source({INDEX: _index(("https://feed.test/q", "SearchQueryService/3.0.0-beta"))})
    with pytest.raises(FetchError, match="has neither a PackageBaseAddress nor a RegistrationsBaseUrl"):
        source.versions("A")


def test_repository_signatures_come_from_the_preferred_type() -> None:
    five = "https://feed.test/rs/5.0.0/index.json"
    source = _source({INDEX: _index(("https://feed.test/rs/4.7.0/index.json", "RepositorySignatures/4.7.0"),
                                    (five, "RepositorySignatures/5.0.0")),
                      five: repository_signatures_document(all_signed=True)})
    info = source.repository_signatures()
    assert info is not None and info.url == five and info.all_repository_signed and len(info.certificates) == 3
    assert _source({INDEX: _index()}).repository_signatures() is None
