"""The documents the feed serves, built from the database on both backends: flat container, registration hives
(paging, SemVer levels, unlisted versions, dependencies), search, autocomplete, and the per-serial cache seen from
two server "processes" at once. Every document is parsed back with the protocol models the client uses."""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from tests.support.server_factories import OPERATOR, organization, user

from nuseal.protocol.package_content import PackageVersionsIndex
from nuseal.protocol.registration import RegistrationIndex, RegistrationLeaf, RegistrationPageDocument
from nuseal.protocol.search import AutocompleteIds, AutocompleteVersions, SearchResponse
from nuseal.protocol.service_index import ResourceKind, ServiceIndex
from nuseal.server.db.models import PackageVersion, VersionStatus
from nuseal.server.services import accounts, feed_state, packages
from nuseal.server.services.context import ServiceContext
from nuseal.server.services.feed_documents import FeedReader, Hive, Rendered, SearchQuery
from nuseal.server.services.permissions import Operator
from nuseal.versioning import NuGetVersion

BASE = "http://feed.test"
V = NuGetVersion.parse


@dataclass(frozen=True)
class Spec:
    version: str
    listed: bool = True
    metadata: dict[str, Any] | None = None
    semver2_dependency: bool = False
    status: str = VersionStatus.AVAILABLE.value


def add_package(ctx: ServiceContext, package_id: str, owner: str, specs: Sequence[Spec | str]) -> None:
    """Versions inserted as the push path leaves them (metadata JSON, blob keys), in one transaction."""
    at = ctx.now()
    with ctx.db.transaction() as session:
        found = session.query(packages.PackageRegistration).filter_by(lower_id=package_id.lower()).one_or_none()
        registration = found or packages.register(session, package_id, accounts.find_account(session, owner), at=at)
        for spec in specs:
            spec = Spec(spec) if isinstance(spec, str) else spec
            version = V(spec.version)
            available = spec.status == VersionStatus.AVAILABLE.value
            session.add(PackageVersion(
                registration_id=registration.id, version=version.normalized, lower_version=version.lower,
                full_version=version.full, is_prerelease=version.is_prerelease,
                is_semver2=version.is_semver2 or spec.semver2_dependency, listed=spec.listed, status=spec.status,
                pushed_at=at, package_blob=f"packages/{package_id.lower()}/{version.lower}/x.nupkg" if available
                else None, nuspec_blob=f"packages/{package_id.lower()}/{version.lower}/x.nuspec" if available
                else None, package_sha512="AAAA", package_size=1, published_at=at if available else None,
                package_metadata={"description": f"{package_id} {version.full}", "authors": "Ann, Bob",
                                  "tags": ["json"], **(spec.metadata or {})},
            ))  # fmt: skip
        feed_state.bump(session)


@pytest.fixture
def feed(service_ctx: ServiceContext) -> ServiceContext:
    for name in ("alice", "bob"):
        user(service_ctx, name)
    organization(service_ctx, "contoso", admins=["alice"])
    return service_ctx


def reader(ctx: ServiceContext) -> FeedReader:
    return FeedReader(ctx.db, BASE)


def body(rendered: Rendered | None) -> bytes:
    assert rendered is not None
    return rendered.body


def test_the_service_index_advertises_every_resource_in_the_client_s_order(feed: ServiceContext) -> None:
    index = ServiceIndex.parse(reader(feed).service_index().body, source="index")
    assert index.url(ResourceKind.PACKAGE_BASE_ADDRESS) == f"{BASE}/v3/flatcontainer/"
    assert index.url(ResourceKind.PACKAGE_PUBLISH) == f"{BASE}/api/v2/package"
    assert index.find(ResourceKind.REGISTRATIONS_BASE_URL) == ("RegistrationsBaseUrl/3.6.0",
                                                              f"{BASE}/v3/registration-gz-semver2/")
    hives = {r.type: r.url for r in index.resources if str(r.type).startswith("RegistrationsBaseUrl")}
    assert hives == {"RegistrationsBaseUrl": f"{BASE}/v3/registration/",
                     "RegistrationsBaseUrl/3.0.0-rc": f"{BASE}/v3/registration/",
                     "RegistrationsBaseUrl/3.0.0-beta": f"{BASE}/v3/registration/",
                     "RegistrationsBaseUrl/3.4.0": f"{BASE}/v3/registration-gz/",
                     "RegistrationsBaseUrl/3.6.0": f"{BASE}/v3/registration-gz-semver2/"}
    assert index.url(ResourceKind.SEARCH_QUERY_SERVICE) == f"{BASE}/v3/search"
    assert index.url(ResourceKind.SEARCH_AUTOCOMPLETE_SERVICE) == f"{BASE}/v3/autocomplete"
    assert {str(r.type) for r in index.resources} >= {"SearchQueryService/3.5.0", "SearchAutocompleteService/3.5.0"}
    assert all(r.url.startswith(f"{BASE}/v3/") or r.url.startswith(f"{BASE}/api/") for r in index.resources)


def test_the_flat_container_lists_available_versions_sorted_normalized_lower_case(feed: ServiceContext) -> None:
    add_package(feed, "Contoso.Lib", "contoso", [
        "2.0.0", "1.0.0-Beta", "1.0.0", Spec("1.5.0", listed=False), "1.0.0.1", "3.0.0-rc.1+build.2",
        Spec("9.0.0", status="validating"), Spec("9.1.0", status="failed"),
    ])  # fmt: skip
    index = PackageVersionsIndex.parse(body(reader(feed).versions_index("contoso.lib")), source="x")
    assert [v.lower for v in index.versions] == ["1.0.0-beta", "1.0.0", "1.0.0.1", "1.5.0", "2.0.0", "3.0.0-rc.1"]
    assert reader(feed).versions_index("nothing.here") is None
    assert reader(feed).blob("contoso.lib", "9.0.0") is None and reader(feed).blob("contoso.lib", "9.1.0") is None
    ref = reader(feed).blob("contoso.lib", "1.5.0")  # unlisted versions stay downloadable
    assert ref is not None and ref.key == "packages/contoso.lib/1.5.0/x.nupkg"
    nuspec = reader(feed).blob("contoso.lib", "1.5.0", nuspec=True)
    assert nuspec is not None and nuspec.key.endswith(".nuspec")


def test_registrations_of_a_small_package_inline_one_page_with_every_field(feed: ServiceContext) -> None:
    metadata = {"title": "Contoso", "summary": "S", "icon_url": "https://i/", "license_url": "https://l/",
                "license_expression": "MIT", "project_url": "https://p/", "require_license_acceptance": True,
                "min_client_version": "4.0", "language": "en",
                "dependency_groups": [{"target_framework": "net8.0", "dependencies": [
                    {"id": "Newtonsoft.Json", "range": "[13.0.1, )", "include": [], "exclude": []}]},
                    {"target_framework": None, "dependencies": []}]}
    add_package(feed, "Contoso.Lib", "contoso", [Spec("1.0.0", metadata=metadata), Spec("2.0.0", listed=False)])
    hive = Hive.SEMVER1_GZ
    url = f"{BASE}/v3/registration-gz/contoso.lib/index.json"
    index = RegistrationIndex.parse(body(reader(feed).registration_index(hive, "contoso.lib")), source=url)
    assert (index.url, index.count) == (url, 1)
    [page] = index.items
    assert (page.count, page.lower, page.upper, page.parent) == (2, V("1.0.0"), V("2.0.0"), url)
    assert page.items is not None
    first, second = page.items
    entry = first.catalog_entry
    assert first.url == f"{BASE}/v3/registration-gz/contoso.lib/1.0.0.json"
    assert first.package_content == entry.package_content == \
        f"{BASE}/v3/flatcontainer/contoso.lib/1.0.0/contoso.lib.1.0.0.nupkg"
    assert (entry.id, entry.version, entry.title, entry.summary, entry.authors, entry.tags) == (
        "Contoso.Lib", V("1.0.0"), "Contoso", "S", "Ann, Bob", ["json"])
    assert (entry.icon_url, entry.license_url, entry.license_expression, entry.project_url) == (
        "https://i/", "https://l/", "MIT", "https://p/")
    assert (entry.require_license_acceptance, entry.min_client_version, entry.language) == (True, "4.0", "en")
    assert entry.listed is True and entry.published is not None and entry.published.year == feed.now().year
    assert entry.dependency_groups is not None
    dependency_group, empty = entry.dependency_groups
    assert dependency_group.target_framework == "net8.0" and dependency_group.dependencies is not None
    [dependency] = dependency_group.dependencies
    assert (dependency.id, dependency.range, dependency.registration) == (
        "Newtonsoft.Json", dependency.range, f"{BASE}/v3/registration-gz/newtonsoft.json/index.json")
    assert str(dependency.version_range) == "[13.0.1, )" and empty.dependencies is None
    unlisted = second.catalog_entry
    assert unlisted.listed is False and unlisted.published is not None and unlisted.published.year == 1900
    assert not unlisted.is_listed
    leaf = RegistrationLeaf.parse(body(reader(feed).registration_leaf(hive, "contoso.lib", "2.0.0")), source="l")
    assert (leaf.listed, leaf.registration, leaf.published and leaf.published.year) == (False, url, 1900)


def test_semver2_versions_only_in_the_semver2_hive(feed: ServiceContext) -> None:
    add_package(feed, "Contoso.Lib", "contoso", ["1.0.0", "2.0.0-beta.1", "2.0.0+build",
                                                 Spec("3.0.0", semver2_dependency=True)])
    add_package(feed, "Only.SemVer2", "contoso", ["1.0.0-a.b"])

    def versions(hive: Hive, lower_id: str) -> list[str]:
        index = RegistrationIndex.parse(body(reader(feed).registration_index(hive, lower_id)), source="x")
        return [leaf.catalog_entry.version.full for page in index.items for leaf in page.items or []]

    assert versions(Hive.SEMVER1, "contoso.lib") == versions(Hive.SEMVER1_GZ, "contoso.lib") == ["1.0.0"]
    assert versions(Hive.SEMVER2_GZ, "contoso.lib") == ["1.0.0", "2.0.0-beta.1", "2.0.0+build", "3.0.0"]
    assert reader(feed).registration_index(Hive.SEMVER1, "only.semver2") is None
    assert reader(feed).registration_leaf(Hive.SEMVER1, "contoso.lib", "3.0.0") is None
    assert reader(feed).registration_leaf(Hive.SEMVER2_GZ, "contoso.lib", "3.0.0") is not None


@pytest.mark.parametrize(("count", "inlined", "page_sizes"), [
    (127, True, [64, 63]), (128, False, [64, 64]), (130, False, [64, 64, 2]),
])
def test_registration_pages_hold_64_leaves_inlined_up_to_127_versions(
    feed: ServiceContext, count: int, inlined: bool, page_sizes: list[int]
) -> None:
    add_package(feed, "Big.Lib", "alice", [f"1.0.{n}" for n in range(count)])
    hive = Hive.SEMVER2_GZ
    index = RegistrationIndex.parse(body(reader(feed).registration_index(hive, "big.lib")), source="x")
    assert [page.count for page in index.items] == page_sizes
    assert all((page.items is not None) is inlined for page in index.items)
    first = index.items[0]
    assert (first.lower, first.upper) == (V("1.0.0"), V("1.0.63"))
    if inlined:
        assert first.url == f"{BASE}/v3/registration-gz-semver2/big.lib/index.json#page/1.0.0/1.0.63"
        return
    assert first.url == f"{BASE}/v3/registration-gz-semver2/big.lib/page/1.0.0/1.0.63.json"
    for page in index.items:
        assert page.url is not None
        lower, upper = page.url.rsplit("/page/", 1)[1].removesuffix(".json").split("/")
        document = RegistrationPageDocument.parse(body(reader(feed).registration_page(hive, "big.lib", lower, upper)),
                                                  source=page.url)
        assert (document.url, document.parent, document.count) == (page.url, index.url, page.count)
        assert document.items[0].catalog_entry.version == page.lower
    assert reader(feed).registration_page(hive, "big.lib", "1.0.0", "9.9.9") is None


def search(ctx: ServiceContext, **query: Any) -> SearchResponse:
    return SearchResponse.parse(reader(ctx).search(SearchQuery(**query)).body, source="search")


def test_search_filters_ranks_and_pages(feed: ServiceContext) -> None:
    add_package(feed, "Json", "alice", ["1.0.0"])
    add_package(feed, "Json.Extras", "alice", ["1.0.0", "2.0.0-beta"])
    add_package(feed, "Contoso.Json", "contoso", ["1.0.0"])
    add_package(feed, "Newtonsoft.Jsonish", "bob", [Spec("1.0.0", metadata={"title": "Fast"})])
    add_package(feed, "Serializer", "bob", [Spec("1.0.0", metadata={"title": "Json serializer", "tags": ["x"]})])
    add_package(feed, "Unlisted.Json", "bob", [Spec("1.0.0", listed=False)])
    add_package(feed, "Beta.Json", "bob", ["1.0.0-beta"])
    add_package(feed, "SemVer2.Json", "bob", ["1.0.0-a.1"])
    add_package(feed, "Tool.Json", "bob", [Spec("1.0.0", metadata={"package_types": [{"name": "DotnetTool",
                                                                                     "version": None}]})])
    found = search(feed, q="json")
    ids = [r.id for r in found.data]
    assert ids[:4] == ["Json", "Json.Extras", "Contoso.Json", "Tool.Json"]  # exact, prefix, then id word (by id)
    assert ids[4:] == ["Newtonsoft.Jsonish", "Serializer"]  # id substring, then title
    assert found.total_hits == 6 and "Unlisted.Json" not in ids  # unlisted, prerelease-only and SemVer2-only left out
    extras = found.data[1]
    assert [v.version.full for v in extras.versions] == ["1.0.0"] and extras.version == V("1.0.0")
    assert extras.versions[0].url == f"{BASE}/v3/registration/json.extras/1.0.0.json"
    assert extras.registration == f"{BASE}/v3/registration/json.extras/index.json"
    assert (extras.owners, extras.authors, extras.verified, extras.total_downloads) == (["alice"], ["Ann", "Bob"],
                                                                                        False, 0)
    assert [t.name for t in extras.package_types] == ["Dependency"]
    with_pre = search(feed, q="json", prerelease=True, semver2=True)
    assert {"Beta.Json", "SemVer2.Json"} <= {r.id for r in with_pre.data}
    assert next(r for r in with_pre.data if r.id == "Json.Extras").version == V("2.0.0-beta")
    assert next(r for r in with_pre.data if r.id == "SemVer2.Json").versions[0].url == \
        f"{BASE}/v3/registration-gz-semver2/semver2.json/1.0.0-a.1.json"
    assert "SemVer2.Json" not in {r.id for r in search(feed, q="json", prerelease=True).data}
    assert [r.id for r in search(feed, q="json", package_type="dotnettool").data] == ["Tool.Json"]
    paged = search(feed, q="json", skip=1, take=2)
    assert ([r.id for r in paged.data], paged.total_hits) == (["Json.Extras", "Contoso.Json"], 6)
    assert [r.id for r in search(feed, q="packageid:json").data] == ["Json"]
    assert [r.id for r in search(feed, q="owner:contoso").data] == ["Contoso.Json"]
    assert [r.id for r in search(feed, q="json title:fast").data] == ["Newtonsoft.Jsonish"]
    assert search(feed, q="json nothing-matches-this").data == []
    everything = search(feed)
    assert [r.id for r in everything.data] == [  # no query: every package, by id
        "Contoso.Json", "Json", "Json.Extras", "Newtonsoft.Jsonish", "Serializer", "Tool.Json"]


def test_autocomplete_ids_and_versions(feed: ServiceContext) -> None:
    add_package(feed, "Json", "alice", ["1.0.0", "1.1.0-beta", "2.0.0+meta", Spec("0.9.0", listed=False)])
    add_package(feed, "Contoso.Json", "contoso", ["1.0.0"])
    add_package(feed, "Jsonic", "alice", ["1.0.0-beta"])
    ids = AutocompleteIds.parse(reader(feed).autocomplete_ids(SearchQuery(q="JSON")).body, source="a")
    assert (ids.total_hits, ids.data) == (2, ["Json", "Contoso.Json"])  # prefix first; Jsonic is prerelease only
    with_pre = AutocompleteIds.parse(reader(feed).autocomplete_ids(SearchQuery(q="json", prerelease=True)).body,
                                     source="a")
    assert with_pre.data == ["Json", "Jsonic", "Contoso.Json"]

    def versions(**flags: bool) -> list[str]:
        return [v.full for v in AutocompleteVersions.parse(
            reader(feed).autocomplete_versions("JSON", **flags).body, source="v").data]

    assert versions(prerelease=False, semver2=False) == ["1.0.0"]
    assert versions(prerelease=True, semver2=False) == ["1.0.0", "1.1.0-beta"]
    assert versions(prerelease=True, semver2=True) == ["1.0.0", "1.1.0-beta", "2.0.0+meta"]
    assert versions(prerelease=True, semver2=True) == versions(prerelease=True, semver2=True)
    assert AutocompleteVersions.parse(reader(feed).autocomplete_versions("nope", prerelease=True, semver2=True).body,
                                      source="v").data == []


def test_every_change_reaches_readers_of_other_processes_at_once(feed: ServiceContext) -> None:
    first, second = reader(feed), reader(feed)  # two server processes: two caches, one database
    add_package(feed, "Contoso.Lib", "contoso", ["1.0.0"])
    before = body(first.versions_index("contoso.lib"))
    assert body(second.versions_index("contoso.lib")) == before
    assert [r.id for r in SearchResponse.parse(first.search(SearchQuery()).body, source="s").data] == ["Contoso.Lib"]
    cached = first.versions_index("contoso.lib")
    assert first.versions_index("contoso.lib") is cached  # unchanged feed: the cached document itself

    packages.set_listed(feed, Operator(), "Contoso.Lib", "1.0.0", listed=False)  # a change through the services
    assert SearchResponse.parse(second.search(SearchQuery()).body, source="s").data == []
    assert SearchResponse.parse(first.search(SearchQuery()).body, source="s").data == []
    assert first.versions_index("contoso.lib") is not cached

    packages.set_listed(feed, OPERATOR, "Contoso.Lib", "1.0.0", listed=True)
    packages.add_owner(feed, OPERATOR, "Contoso.Lib", "bob")
    [result] = SearchResponse.parse(first.search(SearchQuery()).body, source="s").data
    assert result.owners == ["bob", "contoso"]
    packages.delete_version(feed, OPERATOR, "Contoso.Lib", "1.0.0")
    assert second.versions_index("contoso.lib") is None and first.blob("contoso.lib", "1.0.0") is None


def test_rendered_documents_have_strong_etags_and_a_gzip_form() -> None:
    rendered = Rendered.of(b'{"a":1}')
    assert rendered.etag.startswith('"') and rendered.etag.endswith('"') and len(rendered.etag) == 34
    assert rendered.gzip_etag != rendered.etag and gzip.decompress(rendered.gzip_body) == b'{"a":1}'
    assert rendered.gzip_body is rendered.gzip_body  # compressed once
