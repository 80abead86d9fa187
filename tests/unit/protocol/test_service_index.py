"""Service index: nuget.org's document, the resource type table and NuGet's lookup rules (server.md §E.1)."""

from __future__ import annotations

from typing import Any

import pytest
from tests.unit.protocol.canned import body, decoded

from nuseal.errors import ProtocolError
from nuseal.protocol.service_index import Match, ResourceKind, ServiceIndex, ServiceIndexResource

URL = "https://api.nuget.org/v3/index.json"


@pytest.fixture(scope="module")
def nuget_org() -> ServiceIndex:
    return ServiceIndex.parse(body("nuget_org_service_index.json"), source=URL)


@pytest.mark.parametrize(("kind", "expected"), [
    (ResourceKind.PACKAGE_BASE_ADDRESS, Match("PackageBaseAddress/3.0.0", "https://api.nuget.org/v3-flatcontainer/")),
    (ResourceKind.PACKAGE_PUBLISH, Match("PackagePublish/2.0.0", "https://www.nuget.org/api/v2/package")),
    # /Versioned beats /3.6.0, which beats the semver1 hives listed earlier in the document.
    (ResourceKind.REGISTRATIONS_BASE_URL,
     Match("RegistrationsBaseUrl/Versioned", "https://api.nuget.org/v3/registration5-gz-semver2/")),
    # NuGet looks for /Versioned, /3.4.0, /3.0.0-beta: nuget.org's unversioned and /3.0.0-rc entries do not count.
    (ResourceKind.SEARCH_QUERY_SERVICE,
     Match("SearchQueryService/3.0.0-beta", "https://azuresearch-usnc.nuget.org/query")),
    (ResourceKind.SEARCH_AUTOCOMPLETE_SERVICE,
     Match("SearchAutocompleteService/3.0.0-beta", "https://azuresearch-usnc.nuget.org/autocomplete")),
    (ResourceKind.SYMBOL_PACKAGE_PUBLISH,
     Match("SymbolPackagePublish/4.9.0", "https://www.nuget.org/api/v2/symbolpackage")),
    (ResourceKind.REPOSITORY_SIGNATURES,
     Match("RepositorySignatures/5.0.0", "https://api.nuget.org/v3-index/repository-signatures/5.0.0/index.json")),
    (ResourceKind.README_URI_TEMPLATE,
     Match("ReadmeUriTemplate/6.13.0", "https://api.nuget.org/v3-flatcontainer/{lower_id}/{lower_version}/readme")),
    (ResourceKind.VULNERABILITY_INFO,
     Match("VulnerabilityInfo/6.7.0", "https://api.nuget.org/v3/vulnerabilities/index.json")),
])
def test_nuget_org_resources_are_found_as_nuget_finds_them(nuget_org: ServiceIndex, kind: ResourceKind,
                                                          expected: Match) -> None:
    assert nuget_org.find(kind) == expected
    assert nuget_org.url(kind) == expected.url


def test_unknown_fields_are_tolerated_and_dropped_on_emit(nuget_org: ServiceIndex) -> None:
    assert len(nuget_org.resources) == 32
    versioned = next(r for r in nuget_org.resources if r.types == ["RegistrationsBaseUrl/Versioned"])
    assert "clientVersion" not in ServiceIndex(version="3.0.0", resources=[versioned]).emit()["resources"][0]
    assert nuget_org.context == {"@vocab": "http://schema.nuget.org/services#",
                                 "comment": "http://www.w3.org/2000/01/rdf-schema#comment"}


def test_round_trip(nuget_org: ServiceIndex) -> None:
    emitted = nuget_org.emit()
    assert ServiceIndex.parse(nuget_org.to_json(), source=URL) == nuget_org
    assert list(emitted) == ["version", "resources", "@context"]
    assert list(emitted["resources"][0]) == ["@id", "@type", "comment"]
    assert "comment" not in emitted["resources"][7]  # LegacyGallery has none; None is not written


@pytest.mark.parametrize("kind", list(ResourceKind))
def test_the_table_prefers_and_advertises_type_strings_of_its_own_resource(kind: ResourceKind) -> None:
    name = kind.preferred[-1].split("/")[0]
    assert all(t.split("/")[0] == name for t in (*kind.preferred, *kind.advertised))
    assert len(set(kind.preferred)) == len(kind.preferred)


def test_a_server_advertising_the_table_is_readable_by_the_table() -> None:
    resources = [ServiceIndexResource(url=f"https://feed.test/{kind.name.lower()}/", type=t)
                 for kind in ResourceKind for t in kind.advertised]
    index = ServiceIndex.parse(ServiceIndex(version="3.0.0", resources=resources).to_json(), source="feed")
    for kind in ResourceKind:
        match = index.find(kind)
        assert match is not None and match.url == f"https://feed.test/{kind.name.lower()}/"
        assert match.type in kind.advertised


def _index(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"version": "3.0.0", "resources": list(resources)}


def test_type_may_be_an_array_and_non_strings_in_it_are_ignored() -> None:
    index = ServiceIndex.parse(_index({"@id": "https://f.test/flat/", "@type": [5, "PackageBaseAddress/3.0.0"]}),
                               source="f")
    assert index.find(ResourceKind.PACKAGE_BASE_ADDRESS) == Match("PackageBaseAddress/3.0.0", "https://f.test/flat/")
    assert index.emit()["resources"][0]["@type"] == ["PackageBaseAddress/3.0.0"]


def test_resources_nuget_would_skip_are_skipped() -> None:
    index = ServiceIndex.parse(_index(
        {"@type": "PackageBaseAddress/3.0.0"},                            # no @id
        {"@id": 7, "@type": "PackageBaseAddress/3.0.0"},                  # @id not a string
        {"@id": "https://f.test/x/", "@type": {"a": 1}},                  # @type neither string nor array
        "not an object",
        {"@id": "relative/flat/", "@type": "PackageBaseAddress/3.0.0"},   # kept, but not absolute: never found
        {"@id": "https://f.test/flat/", "@type": "PackageBaseAddress/3.0.0"},
    ), source="f")
    assert [r.url for r in index.resources] == ["relative/flat/", "https://f.test/flat/"]
    assert index.url(ResourceKind.PACKAGE_BASE_ADDRESS) == "https://f.test/flat/"


def test_type_strings_compare_exactly() -> None:
    index = ServiceIndex.parse(_index({"@id": "https://f.test/flat/", "@type": "packagebaseaddress/3.0.0"}),
                               source="f")
    assert index.find(ResourceKind.PACKAGE_BASE_ADDRESS) is None


@pytest.mark.parametrize(("document", "message"), [
    ({"resources": []}, "'version' is missing"),
    ({"version": "2.0.0", "resources": []}, "service index version '2.0.0' is not supported"),
    ({"version": "3.0", "resources": []}, "exactly three numeric parts"),
    ({"version": 3, "resources": []}, "at 'version': input should be a valid string (found 3)"),
    ({"version": "3.0.0"}, "'resources' is missing"),
    ({"version": "3.0.0", "resources": {"a": 1}}, "at 'resources': input should be a valid list"),
])
def test_malformed_indexes_name_the_document_url_and_field(document: dict[str, Any], message: str) -> None:
    with pytest.raises(ProtocolError) as err:
        ServiceIndex.parse(document, source=URL)
    assert str(err.value).startswith(f"The service index at '{URL}' is invalid")
    assert message in str(err.value)
    assert err.value.document == f"The service index at '{URL}'"


@pytest.mark.parametrize(("data", "message"), [
    (b"{not json", "is not valid JSON"),
    (b"\xff\xfe", "is not valid JSON"),
    (b"[1, 2]", "is not a JSON object"),
    (b'"text"', "is not a JSON object"),
])
def test_bodies_that_are_not_json_objects(data: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=f"The service index at '{URL}' {message}"):
        ServiceIndex.parse(data, source=URL)


def test_decoded_and_raw_documents_parse_alike() -> None:
    assert ServiceIndex.parse(decoded("nuget_org_service_index.json"), source=URL) == \
        ServiceIndex.parse(body("nuget_org_service_index.json").decode(), source=URL)
