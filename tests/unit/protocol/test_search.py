"""Search and autocomplete responses (server.md §E.5) and the flat container's versions index (§E.2)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.unit.protocol.canned import body, decoded

from nuseal.errors import ProtocolError
from nuseal.protocol.package_content import PackageVersionsIndex, nuspec_url, package_url, versions_url
from nuseal.protocol.search import AutocompleteIds, AutocompleteVersions, SearchResponse
from nuseal.versioning import NuGetVersion

V = NuGetVersion.parse
SEARCH = "https://azuresearch-usnc.nuget.org/query?q=contoso&semVerLevel=2.0.0"


@pytest.fixture(scope="module")
def search() -> SearchResponse:
    return SearchResponse.parse(body("search.json"), source=SEARCH)


def test_search_results(search: SearchResponse) -> None:
    lib, tool = search.data
    assert search.total_hits == 2
    assert (lib.id, lib.version, lib.verified, lib.total_downloads) == ("Contoso.Lib", V("2.0.0"), True, 1234567)
    assert [v.version.full for v in lib.versions] == ["1.5.0", "2.0.0-beta.1+build.7", "2.0.0"]
    assert lib.versions[0].url.endswith("/contoso.lib/1.5.0.json") and lib.versions[0].downloads == 1000000
    assert [t.name for t in lib.package_types] == ["Dependency"]
    assert lib.owners == ["contoso", "fabrikam"] and tool.owners == "contoso"
    assert lib.deprecation is not None and lib.deprecation.reasons == ["Legacy"]
    assert lib.vulnerabilities is not None and lib.vulnerabilities[0].severity == 2
    assert tool.vulnerabilities == [] and [t.name for t in tool.package_types] == ["DotnetTool"]


def test_search_round_trip_keeps_nugets_spelling(search: SearchResponse) -> None:
    emitted = search.emit()
    assert SearchResponse.parse(search.to_json(), source=SEARCH) == search
    lib = emitted["data"][0]
    assert lib["vulnerabilities"] == [{"advisoryUrl": "https://github.com/advisories/GHSA-xxxx-yyyy-zzzz",
                                       "severity": 2}]  # a number in search, a string in registration
    assert lib["versions"][1] == {"@id": "https://api.nuget.org/v3/registration5-gz-semver2/contoso.lib/"
                                         "2.0.0-beta.1.json", "version": "2.0.0-beta.1+build.7", "downloads": 567}
    assert emitted["data"][1]["owners"] == "contoso" and "deprecation" not in emitted["data"][1]
    assert list(emitted) == ["@context", "totalHits", "data"]


def test_search_results_from_servers_before_3_5_0_have_no_package_types() -> None:
    document = decoded("search.json")
    del document["data"][1]["packageTypes"]
    assert SearchResponse.parse(document, source=SEARCH).data[1].package_types == []


@pytest.mark.parametrize(("field", "message"), [
    ("versions", "'data[0].versions' is missing"),
    ("id", "'data[0].id' is missing"),
    ("version", "'data[0].version' is missing"),
])
def test_search_results_need_id_version_and_versions(field: str, message: str) -> None:
    document = decoded("search.json")
    del document["data"][0][field]
    with pytest.raises(ProtocolError) as err:
        SearchResponse.parse(document, source=SEARCH)
    assert str(err.value) == f"The search response at '{SEARCH}' is invalid: {message}."


def test_autocomplete_ids_and_versions() -> None:
    ids = AutocompleteIds.parse(body("autocomplete_ids.json"), source="https://s.test/autocomplete?q=contoso")
    assert ids.total_hits == 3 and ids.data == ["Contoso.Lib", "Contoso.Lib2", "Contoso.Tool"]
    versions = AutocompleteVersions.parse(body("autocomplete_versions.json"), source="https://s.test/a?id=contoso.lib")
    assert versions.data == [V("1.0.0"), V("1.5.0"), V("2.0.0-beta.1"), V("2.0.0")]
    assert versions.emit()["data"][2] == "2.0.0-beta.1+build.7"
    assert AutocompleteVersions.parse(versions.to_json(), source="x") == versions
    assert AutocompleteIds.parse(ids.to_json(), source="x") == ids
    with pytest.raises(ProtocolError, match="'totalHits' is missing"):
        AutocompleteIds.parse({"data": []}, source="x")


def test_flat_container_versions_are_written_normalized_and_lower_case() -> None:
    index = PackageVersionsIndex.parse(body("flat_container_versions.json"), source="f")
    assert index.versions == [V("1.0.0"), V("1.5.0"), V("2.0.0-beta.1"), V("2.0.0")]
    built = PackageVersionsIndex(versions=[V("1.0"), V("2.0.0.0-Beta.1+meta"), V("3.0.0.1")])
    assert built.emit() == {"versions": ["1.0.0", "2.0.0-beta.1", "3.0.0.1"]}
    with pytest.raises(ProtocolError, match=r"at 'versions\[1\]': 'x' is not a valid NuGet version"):
        PackageVersionsIndex.parse({"versions": ["1.0.0", "x"]}, source="f")


def test_flat_container_urls_are_lower_case() -> None:
    version = V("1.0.0-Beta")
    assert versions_url("https://f.test/flat", "Contoso.Lib") == "https://f.test/flat/contoso.lib/index.json"
    assert package_url("https://f.test/flat/", "Contoso.Lib", version) == \
        "https://f.test/flat/contoso.lib/1.0.0-beta/contoso.lib.1.0.0-beta.nupkg"
    assert nuspec_url("https://f.test/flat/", "Contoso.Lib", version) == \
        "https://f.test/flat/contoso.lib/1.0.0-beta/contoso.lib.nuspec"


_labels = st.lists(st.sampled_from(["alpha", "Beta", "1", "rc-2"]), max_size=2)
_versions = st.builds(lambda n, labels: NuGetVersion(*n, release_labels=tuple(labels)),
                      st.tuples(st.integers(0, 99), st.integers(0, 99), st.integers(0, 99), st.integers(0, 3)),
                      _labels)


@given(st.lists(_versions, max_size=8))
def test_flat_container_round_trip(versions: list[NuGetVersion]) -> None:
    index = PackageVersionsIndex(versions=versions)
    again = PackageVersionsIndex.parse(index.to_json(), source="f")
    assert again == index and again.emit() == index.emit()
    assert all(text == text.lower() for text in index.emit()["versions"])
