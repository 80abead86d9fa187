"""The V2 (OData, Atom) documents behind ``LegacyGallery``, on both backends: what nuget.exe list asks for
(latest stable, absolute latest, every version, ordered by id, paged with ``next`` links), read back the way
NuGet's V2 feed parser reads them (namespaces, ``d:Id``/``d:Version``/``d:Published``, ``content/@src``), with
escaping of every text, and the capabilities ``$metadata`` must announce. The nuget.exe end-to-end test is
tests/integration/server/test_nuget_exe_interop.py."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest
from lxml import etree
from tests.support.server_factories import organization, user
from tests.unit.server.services.test_feed_documents import BASE, Spec, add_package

from nuseal.protocol.service_index import ResourceKind, ServiceIndex
from nuseal.server.services.context import ServiceContext
from nuseal.server.services.errors import InvalidInputError
from nuseal.server.services.feed_documents import FeedReader, Rendered
from nuseal.server.services.legacy_feed import (
    ATOM,
    DATA,
    EDM,
    META,
    LatestFilter,
    LegacyFeed,
    V2Query,
    odata_literal,
    parse_filter,
    parse_order_by,
)

NS = {"a": ATOM, "d": DATA, "m": META, "edm": EDM}


@pytest.fixture
def feed(service_ctx: ServiceContext) -> ServiceContext:
    user(service_ctx, "alice")
    organization(service_ctx, "contoso", admins=["alice"])
    return service_ctx


def legacy(ctx: ServiceContext) -> LegacyFeed:
    return LegacyFeed(FeedReader(ctx.db, BASE))


def parse(rendered: Rendered | None) -> etree._Element:
    assert rendered is not None
    return etree.fromstring(rendered.body)


def entries(rendered: Rendered) -> list[str]:
    """``Id Version`` of each entry, as nuget.exe list prints them."""
    root = parse(rendered)
    return [f"{e.findtext('m:properties/d:Id', namespaces=NS)} {e.findtext('m:properties/d:Version', namespaces=NS)}"
            for e in root.findall("a:entry", NS)]


def next_link(rendered: Rendered) -> str | None:
    link = parse(rendered).find("a:link[@rel='next']", NS)
    return None if link is None else link.get("href")


def search(term: str = "", **options: object) -> V2Query:
    return V2Query("Search", search_term=term, **options)  # type: ignore[arg-type]


def test_the_service_index_advertises_the_v2_feed_as_nuget_org_does(feed: ServiceContext) -> None:
    index = ServiceIndex.parse(FeedReader(feed.db, BASE).service_index().body, source="index")
    assert index.find(ResourceKind.LEGACY_GALLERY) == ("LegacyGallery", f"{BASE}/api/v2")
    assert {r.url for r in index.resources if str(r.type).startswith("LegacyGallery")} == {f"{BASE}/api/v2"}
    assert {str(r.type) for r in index.resources} >= {"LegacyGallery", "LegacyGallery/2.0.0"}


def test_list_filters_latest_stable_absolute_latest_and_all_versions(feed: ServiceContext) -> None:
    add_package(feed, "Contoso.Lib", "contoso", ["1.0.0", "1.2.0", "2.0.0-beta", Spec("1.5.0", listed=False),
                                                 Spec("1.9.0", status="validating")])
    add_package(feed, "Alpha.Only", "contoso", ["0.1.0-alpha"])
    add_package(feed, "Sem.Two", "contoso", ["1.0.0", "3.0.0+build.7", "4.0.0-rc.1"])
    v2 = legacy(feed)
    latest = search(latest=LatestFilter.LATEST, order_by_id=True)
    assert entries(v2.query(latest)) == ["Contoso.Lib 1.2.0", "Sem.Two 1.0.0"]
    assert entries(v2.query(search(latest=LatestFilter.LATEST, order_by_id=True, semver2=True))) == [
        "Contoso.Lib 1.2.0", "Sem.Two 3.0.0+build.7"]  # SemVer 2 only with semVerLevel=2.0.0, metadata kept
    absolute = search(latest=LatestFilter.ABSOLUTE_LATEST, prerelease=True, order_by_id=True, semver2=True)
    assert entries(v2.query(absolute)) == ["Alpha.Only 0.1.0-alpha", "Contoso.Lib 2.0.0-beta", "Sem.Two 4.0.0-rc.1"]
    every = search(prerelease=True, order_by_id=True)
    assert entries(v2.query(every)) == ["Alpha.Only 0.1.0-alpha", "Contoso.Lib 1.0.0", "Contoso.Lib 1.2.0",
                                        "Contoso.Lib 2.0.0-beta", "Sem.Two 1.0.0"]  # unlisted and validating: never
    assert entries(v2.query(search("contoso.lib", latest=LatestFilter.LATEST))) == ["Contoso.Lib 1.2.0"]
    assert entries(v2.query(search("contoso", latest=LatestFilter.LATEST, order_by_id=True))) == [
        "Contoso.Lib 1.2.0", "Sem.Two 1.0.0"]  # the V3 search's matching: an owner's name matches too
    assert entries(v2.query(search("nothing.like.it"))) == []
    packages = V2Query("Packages", prerelease=True, latest=LatestFilter.ABSOLUTE_LATEST, order_by_id=True)
    assert entries(v2.query(packages)) == ["Alpha.Only 0.1.0-alpha", "Contoso.Lib 2.0.0-beta", "Sem.Two 1.0.0"]


def test_latest_flags_and_every_property_nuget_reads(feed: ServiceContext) -> None:
    metadata = {"title": "Contoso <Lib>", "summary": "S & s", "icon_url": "https://i/?a=1&b=2",
                "project_url": "https://p/", "license_url": "https://l/", "license_expression": "MIT",
                "require_license_acceptance": True, "min_client_version": "4.0", "tags": ["json", "xml"],
                "dependency_groups": [
                    {"target_framework": "net8.0", "dependencies": [{"id": "Newtonsoft.Json", "range": "[13.0.1, )"},
                                                                    {"id": "B", "range": "(, 2.0.0]"}]},
                    {"target_framework": "netstandard2.0", "dependencies": []}]}
    add_package(feed, "Contoso.Lib", "contoso", ["1.0.0", Spec("1.1.0", metadata=metadata), "2.0.0-beta"])
    root = parse(legacy(feed).query(search(prerelease=True, order_by_id=True)))
    assert root.get("{http://www.w3.org/XML/1998/namespace}base") == f"{BASE}/api/v2/"
    first, second, third = root.findall("a:entry", NS)
    flags = [(e.findtext("m:properties/d:IsLatestVersion", namespaces=NS),
              e.findtext("m:properties/d:IsAbsoluteLatestVersion", namespaces=NS)) for e in (first, second, third)]
    assert flags == [("false", "false"), ("true", "false"), ("false", "true")]
    p = second.find("m:properties", NS)
    assert p is not None
    assert second.findtext("a:title", namespaces=NS) == "Contoso.Lib"  # the id, as nuget.org's feed
    assert second.findtext("a:summary", namespaces=NS) == "S & s"
    assert second.findtext("a:author/a:name", namespaces=NS) == "Ann, Bob"
    content = second.find("a:content", NS)
    assert content is not None and content.get("src") == \
        f"{BASE}/v3/flatcontainer/contoso.lib/1.1.0/contoso.lib.1.1.0.nupkg"
    assert second.findtext("a:id", namespaces=NS) == f"{BASE}/api/v2/Packages(Id='Contoso.Lib',Version='1.1.0')"
    texts = {child.tag.split("}")[1]: child.text for child in p}
    assert texts["Title"] == "Contoso <Lib>" and texts["IconUrl"] == "https://i/?a=1&b=2"
    assert texts["Tags"] == "json xml" and texts["LicenseNames"] == "MIT"
    assert texts["Dependencies"] == "Newtonsoft.Json:[13.0.1, ):net8.0|B:(, 2.0.0]:net8.0|::netstandard2.0"
    assert (texts["RequireLicenseAcceptance"], texts["Listed"], texts["IsPrerelease"]) == ("true", "true", "false")
    assert texts["PackageHash"] == "AAAA" and texts["PackageHashAlgorithm"] == "SHA512"
    assert texts["Published"] is not None and texts["Published"].startswith(str(feed.now().year))
    assert p.find("d:ReleaseNotes", NS) is not None and p.find("d:ReleaseNotes", NS).get(f"{{{META}}}null") == "true"
    assert p.find("d:PackageSize", NS).get(f"{{{META}}}type") == "Edm.Int64"  # type: ignore[union-attr]


def test_texts_are_escaped_and_characters_xml_cannot_carry_are_dropped(feed: ServiceContext) -> None:
    description = "a <b> & 'c' \"d\" ]]> \x01\x1f é 🚀"
    add_package(feed, "Contoso.Lib", "contoso", [Spec("1.0.0", metadata={"description": description})])
    root = parse(legacy(feed).query(search()))
    assert root.findtext("a:entry/m:properties/d:Description", namespaces=NS) == "a <b> & 'c' \"d\" ]]>  é 🚀"


def test_pages_follow_with_next_links_until_the_last_one(feed: ServiceContext) -> None:
    add_package(feed, "Contoso.Lib", "contoso", [f"1.{minor}.0" for minor in range(7)])
    v2 = legacy(feed)
    query = search("contoso", order_by_id=True, top=3, semver2=True)
    seen: list[str] = []
    links = []
    while True:
        page = v2.query(query)
        seen += entries(page)
        link = next_link(page)
        if link is None:
            break
        links.append(link)
        parts = urlsplit(link)
        assert link.startswith(f"{BASE}/api/v2/Search()?")
        params = dict(parse_qsl(parts.query))
        assert params["searchTerm"] == "'contoso'" and params["$orderby"] == "Id" and params["semVerLevel"] == "2.0.0"
        query = search(odata_literal(params["searchTerm"], "searchTerm"), order_by_id=True, skip=int(params["$skip"]),
                       top=int(params["$top"]), semver2=True)
    assert seen == [f"Contoso.Lib 1.{minor}.0" for minor in range(7)]
    assert len(links) == 2 and "$skip=6" in links[-1]


def test_one_entry_by_key(feed: ServiceContext) -> None:
    add_package(feed, "Contoso.Lib", "contoso", ["1.0.0", Spec("2.0.0", listed=False)])
    v2 = legacy(feed)
    root = parse(v2.entry("CONTOSO.LIB", "1.0"))
    assert etree.QName(root).localname == "entry"
    assert root.findtext("m:properties/d:NormalizedVersion", namespaces=NS) == "1.0.0"
    assert v2.entry("contoso.lib", "2.0.0") is None  # unlisted: not in this feed
    assert v2.entry("contoso.lib", "not-a-version") is None and v2.entry("nope", "1.0.0") is None


def test_metadata_announces_search_and_absolute_latest_as_nuget_detects_them(feed: ServiceContext) -> None:
    root = parse(legacy(feed).metadata())
    # NuGet: the container holding the Packages entity set; its FunctionImport names; the entity's properties.
    [container] = [c for c in root.iter(f"{{{EDM}}}EntityContainer")
                   if c.find("edm:EntitySet[@Name='Packages']", NS) is not None]
    assert "Search" in {f.get("Name") for f in container.findall("edm:FunctionImport", NS)}
    entity_name = container.find("edm:EntitySet", NS).get("EntityType").rsplit(".", 1)[1]  # type: ignore[union-attr]
    [entity] = [e for e in root.iter(f"{{{EDM}}}EntityType") if e.get("Name") == entity_name]
    assert {"Id", "Version", "IsLatestVersion", "IsAbsoluteLatestVersion", "Published"} <= {
        p.get("Name") for p in entity.findall("edm:Property", NS)}
    service = parse(legacy(feed).service_document())
    assert [c.get("href") for c in service.iter("{http://www.w3.org/2007/app}collection")] == ["Packages"]


def test_odata_options_are_parsed_strictly() -> None:
    assert odata_literal("'it''s'", "searchTerm") == "it's"
    assert odata_literal("''", "searchTerm") == "" and odata_literal(None, "x") == ""
    assert odata_literal("bare", "searchTerm") == "bare"
    for bad in ("'open", "'a'b'", "'"):
        with pytest.raises(InvalidInputError, match="searchTerm"):
            odata_literal(bad, "searchTerm")
    assert parse_filter("IsLatestVersion") is LatestFilter.LATEST
    assert parse_filter(" IsAbsoluteLatestVersion  eq true") is LatestFilter.ABSOLUTE_LATEST
    assert parse_filter(None) is LatestFilter.NONE
    with pytest.raises(InvalidInputError, match=r"\$filter .Id eq 'x'. is not supported"):
        parse_filter("Id eq 'x'")
    assert parse_order_by("Id") is True and parse_order_by(None) is False
    with pytest.raises(InvalidInputError, match=r"\$orderby"):
        parse_order_by("DownloadCount desc")


def test_documents_change_with_the_feed_state(feed: ServiceContext) -> None:
    v2 = legacy(feed)
    assert entries(v2.query(search())) == []
    add_package(feed, "Contoso.Lib", "contoso", ["1.0.0"])  # bumps the serial: the cached page is not served
    assert entries(v2.query(search())) == ["Contoso.Lib 1.0.0"]
