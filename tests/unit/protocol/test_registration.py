"""Registration index / page / leaf and the catalog entry in nuget.org's shapes (server.md §E.4)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from tests.unit.protocol.canned import body, decoded

from nuseal.errors import ProtocolError
from nuseal.protocol.registration import (
    CatalogEntry,
    RegistrationIndex,
    RegistrationLeaf,
    RegistrationLeafItem,
    RegistrationPage,
    RegistrationPageDocument,
)
from nuseal.versioning import NuGetVersion, VersionRange

BASE = "https://api.nuget.org/v3/registration5-gz-semver2/contoso.lib/"
INDEX_URL = f"{BASE}index.json"
V = NuGetVersion.parse


@pytest.fixture(scope="module")
def index() -> RegistrationIndex:
    return RegistrationIndex.parse(body("registration_index.json"), source=INDEX_URL)


def test_index_with_a_linked_and_an_inlined_page(index: RegistrationIndex) -> None:
    linked, inlined = index.items
    assert index.count == 2 and index.type == ["catalog:CatalogRoot", "PackageRegistration", "catalog:Permalink"]
    assert linked.items is None and linked.url == f"{BASE}page/1.0.0/1.5.0.json"
    assert (linked.lower, linked.upper, linked.count) == (V("1.0.0"), V("1.5.0"), 2)
    assert inlined.items is not None and inlined.parent == INDEX_URL
    assert [leaf.catalog_entry.version for leaf in inlined.items] == [V("2.0.0-beta.1"), V("2.0.0")]
    assert index.commit_time_stamp == datetime(2024, 3, 1, 10, 15, 30, 123456, tzinfo=UTC)


def test_catalog_entry_fields(index: RegistrationIndex) -> None:
    assert index.items[1].items is not None
    beta, stable = (leaf.catalog_entry for leaf in index.items[1].items)
    assert beta.version.full == "2.0.0-beta.1+build.7" and beta.version.is_semver2
    assert beta.authors == "Contoso" and beta.tags == ["contoso", "utilities"]
    assert beta.license_expression == "MIT" and beta.require_license_acceptance is False
    assert beta.published == datetime(2023, 12, 24, 7, 59, 41, 137000, tzinfo=UTC)
    assert beta.dependency_groups is not None
    netstandard, net8 = beta.dependency_groups
    assert netstandard.target_framework == ".NETStandard2.0" and net8.dependencies is None
    assert netstandard.dependencies is not None
    memory, core = netstandard.dependencies
    assert memory.range == VersionRange.parse("[4.5.5, )") and memory.registration is not None
    assert core.range == VersionRange.ALL and core.version_range.is_all
    assert stable.deprecation is not None
    assert stable.deprecation.reasons == ["Legacy", "CriticalBugs"]
    assert stable.deprecation.alternate_package is not None and stable.deprecation.alternate_package.range == "*"
    assert stable.vulnerabilities is not None and stable.vulnerabilities[0].severity == 2
    assert stable.is_listed


def test_the_linked_page_document(index: RegistrationIndex) -> None:
    page = RegistrationPageDocument.parse(body("registration_page.json"), source=index.items[0].url or "")
    unlisted, old = (leaf.catalog_entry for leaf in page.items)
    assert page.parent == INDEX_URL and page.count == 2
    assert unlisted.listed is False and not unlisted.is_listed
    assert old.authors == ["Contoso", "Fabrikam"]
    assert old.dependency_groups is not None and old.dependency_groups[0].dependencies is not None
    empty_range, no_range = old.dependency_groups[0].dependencies
    assert empty_range.range is None and no_range.range is None  # "" and absent both mean "(, )"
    assert empty_range.version_range == VersionRange.ALL


def test_nuget_org_marks_unlisted_with_a_1900_published_date_when_listed_is_absent() -> None:
    entry = {"@id": "https://x.test/e.json", "id": "A", "version": "1.0.0"}
    assert CatalogEntry.model_validate({**entry, "published": "1900-01-01T00:00:00+00:00"}).is_listed is False
    assert CatalogEntry.model_validate({**entry, "published": "2020-01-01T00:00:00+00:00"}).is_listed is True
    assert CatalogEntry.model_validate(entry).is_listed is True
    assert CatalogEntry.model_validate({**entry, "listed": True, "published": "1900-01-01T00:00:00Z"}).is_listed


def test_the_leaf_document() -> None:
    leaf = RegistrationLeaf.parse(body("registration_leaf.json"), source=f"{BASE}2.0.0.json")
    assert leaf.catalog_entry == "https://api.nuget.org/v3/catalog0/data/2024.03.01.10.15.30/contoso.lib.2.0.0.json"
    assert leaf.listed is True and leaf.type == ["Package", "http://schema.nuget.org/catalog#Permalink"]


@pytest.mark.parametrize(("model", "name"), [
    (RegistrationIndex, "registration_index.json"),
    (RegistrationPageDocument, "registration_page.json"),
    (RegistrationLeaf, "registration_leaf.json"),
])
def test_round_trips(model: type[RegistrationIndex | RegistrationPageDocument | RegistrationLeaf], name: str) -> None:
    parsed = model.parse(body(name), source=name)
    again = model.parse(parsed.to_json(), source=name)
    assert again == parsed and again.emit() == parsed.emit()


def test_emitted_values_are_written_as_nuget_writes_them(index: RegistrationIndex) -> None:
    emitted = index.emit()
    page = emitted["items"][1]
    beta, stable = page["items"]
    assert beta["catalogEntry"]["version"] == "2.0.0-beta.1+build.7"          # full version, metadata kept
    assert page["lower"] == "2.0.0-beta.1"                                     # bounds normalized
    assert beta["catalogEntry"]["dependencyGroups"][0]["dependencies"][1]["range"] == "(, )"
    assert beta["catalogEntry"]["published"] == "2023-12-24T07:59:41.1370000Z"
    assert stable["catalogEntry"]["vulnerabilities"] == [
        {"advisoryUrl": "https://github.com/advisories/GHSA-xxxx-yyyy-zzzz", "severity": "2"}]
    assert list(emitted) == ["@id", "@type", "commitId", "commitTimeStamp", "count", "items", "@context"]
    assert "items" not in emitted["items"][0] and "parent" not in emitted["items"][0]  # None is not written
    assert list(stable["catalogEntry"])[:3] == ["@id", "@type", "authors"]


def test_builders_compute_counts_and_bounds() -> None:
    def leaf(version: str) -> RegistrationLeafItem:
        v = V(version)
        return RegistrationLeafItem(url=f"{BASE}{v.lower}.json", package_content=f"https://f.test/{v.lower}.nupkg",
                                    catalog_entry=CatalogEntry(url=f"{BASE}{v.lower}.json#c", id="Contoso.Lib",
                                                               version=v))
    leaves = [leaf("1.0.0"), leaf("2.0.0-rc.1"), leaf("1.10.0")]
    inline = RegistrationPage.inline(f"{INDEX_URL}#page", INDEX_URL, leaves)
    assert (inline.count, str(inline.lower), str(inline.upper)) == (3, "1.0.0", "2.0.0-rc.1")
    linked = RegistrationPage.linked(f"{BASE}page/x.json", leaves)
    assert linked.items is None and linked.parent is None
    document = RegistrationPageDocument.of(f"{BASE}page/x.json", INDEX_URL, leaves)
    assert document.items == leaves and document.parent == INDEX_URL
    index = RegistrationIndex.of(INDEX_URL, [inline, linked])
    assert RegistrationIndex.parse(index.to_json(), source=INDEX_URL) == index and index.count == 2
    with pytest.raises(ValueError, match="at least one leaf"):
        RegistrationPage.inline("u", "p", [])


def _broken(change: Any) -> dict[str, Any]:
    document = copy.deepcopy(decoded("registration_index.json"))
    change(document)
    return document


def _entry(document: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = document["items"][1]["items"][1]["catalogEntry"]
    return entry


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: _entry(d).pop("version"), "'items[1].items[1].catalogEntry.version' is missing"),
    (lambda d: _entry(d).update(version="2.x"),
     "at 'items[1].items[1].catalogEntry.version': '2.x' is not a valid NuGet version"),
    (lambda d: _entry(d).update(authors=5),
     "at 'items[1].items[1].catalogEntry.authors': must be a string or an array of strings"),
    (lambda d: _entry(d).update(listed="maybe"), "at 'items[1].items[1].catalogEntry.listed': input should be"),
    (lambda d: _entry(d).update(published="yesterday"),
     "at 'items[1].items[1].catalogEntry.published': 'yesterday' is not an ISO 8601 date and time"),
    (lambda d: _entry(d)["vulnerabilities"][0].update(severity="High"),
     "at 'items[1].items[1].catalogEntry.vulnerabilities[0].severity'"),
    (lambda d: d["items"][1]["items"][0]["catalogEntry"]["dependencyGroups"][0]["dependencies"][0].update(
        range="[2.0,1.0]"), "'[2.0,1.0]' is not a valid version range (the lower bound is above the upper bound)"),
    (lambda d: d["items"][1]["items"][0].pop("packageContent"), "'items[1].items[0].packageContent' is missing"),
    (lambda d: d["items"][0].pop("@id"), "at 'items[0]': a page without 'items' needs an '@id'"),
    (lambda d: d["items"][0].update(lower="one"), "at 'items[0].lower': 'one' is not a valid NuGet version"),
    (lambda d: d.update(items={}), "at 'items': input should be a valid list"),
    (lambda d: d.pop("count"), "'count' is missing"),
])
def test_malformed_registrations_name_the_document_url_and_field(change: Any, message: str) -> None:
    with pytest.raises(ProtocolError) as err:
        RegistrationIndex.parse(json.dumps(_broken(change)), source=INDEX_URL)
    assert str(err.value).startswith(f"The registration index at '{INDEX_URL}' is invalid")
    assert message in str(err.value)
    assert "\n" not in str(err.value) and "pydantic" not in str(err.value)


def test_a_page_document_must_have_items() -> None:
    page = decoded("registration_page.json")
    del page["items"]
    with pytest.raises(ProtocolError, match="'items' is missing"):
        RegistrationPageDocument.parse(page, source="p")
