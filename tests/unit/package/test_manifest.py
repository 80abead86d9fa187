"""The full nuspec manifest reader: every field, NuGet's strict refusals with messages naming the field, and every
real vector's manifest."""

from __future__ import annotations

import pytest
from tests.unit.package.helpers import ManifestRow, manifest

from nuseal.errors import PackageFormatError
from nuseal.package.nuspec import (
    ManifestDependency,
    ManifestDependencyGroup,
    ManifestLicense,
    ManifestPackageType,
    ManifestRepository,
    parse_manifest,
    read_manifest,
)
from nuseal.versioning import NuGetVersion, VersionRange

FULL = b"""<?xml version="1.0" encoding="utf-8"?>
<package xmlns="http://schemas.microsoft.com/packaging/2013/05/nuspec.xsd">
  <metadata minClientVersion="3.3">
    <id>Contoso.Lib</id>
    <version>1.2.0-beta.1+build.7</version>
    <title>Contoso Library</title>
    <authors>Ann, Bob ,</authors>
    <owners>contoso</owners>
    <requireLicenseAcceptance>True</requireLicenseAcceptance>
    <developmentDependency> false </developmentDependency>
    <license type="expression" version="1.0.0">MIT OR Apache-2.0</license>
    <licenseUrl>https://licenses.nuget.org/MIT</licenseUrl>
    <icon>images/icon.png</icon>
    <iconUrl>https://contoso.example/icon.png</iconUrl>
    <readme>docs/README.md</readme>
    <projectUrl>https://contoso.example/</projectUrl>
    <description>  A library.  </description>
    <summary>Short.</summary>
    <releaseNotes>Fixed things.</releaseNotes>
    <copyright>(c) Contoso</copyright>
    <language>en-US</language>
    <tags>json  serializer,fast</tags>
    <serviceable>true</serviceable>
    <repository type="git" url="https://github.com/contoso/lib" branch="main" commit="abc123" />
    <packageTypes><packageType name="Dependency" /><packageType name="DotnetTool" version="1.0" /></packageTypes>
    <dependencies>
      <group targetFramework="net8.0">
        <dependency id="Newtonsoft.Json" version="[13.0.1, )" exclude="Build,Analyzers" />
        <dependency id="Any.Version" />
      </group>
      <group />
      <dependency id="Ignored.Because.Groups.Exist" version="1.0" />
    </dependencies>
  </metadata>
  <files><file src="x" target="y" /></files>
</package>
"""


def test_every_field_is_read() -> None:
    m = parse_manifest(FULL, "full.nuspec")
    assert (m.id, m.original_version, m.version) == ("Contoso.Lib", "1.2.0-beta.1+build.7",
                                                     NuGetVersion.parse("1.2.0-beta.1"))
    assert m.version.full == "1.2.0-beta.1+build.7" and m.identity.version == "1.2.0-beta.1"
    assert (m.title, m.authors, m.author_list, m.owners) == ("Contoso Library", "Ann, Bob ,", ("Ann", "Bob"),
                                                             "contoso")
    assert (m.require_license_acceptance, m.development_dependency, m.serviceable) == (True, False, True)
    assert m.license == ManifestLicense("expression", "MIT OR Apache-2.0", "1.0.0")
    assert (m.license_url, m.icon, m.icon_url, m.readme, m.project_url) == (
        "https://licenses.nuget.org/MIT", "images/icon.png", "https://contoso.example/icon.png", "docs/README.md",
        "https://contoso.example/")
    assert (m.description, m.summary, m.release_notes, m.copyright, m.language) == (
        "A library.", "Short.", "Fixed things.", "(c) Contoso", "en-US")
    assert m.tags == ("json", "serializer", "fast")
    assert m.min_client_version == "3.3"
    assert m.repository == ManifestRepository("git", "https://github.com/contoso/lib", "main", "abc123")
    assert m.package_types == (ManifestPackageType("Dependency"), ManifestPackageType("DotnetTool", "1.0"))
    assert m.dependency_groups == (
        ManifestDependencyGroup("net8.0", (
            ManifestDependency("Newtonsoft.Json", VersionRange.parse("[13.0.1, )"), (), ("Build", "Analyzers")),
            ManifestDependency("Any.Version", VersionRange.ALL),
        )),
        ManifestDependencyGroup(None, ()),
    )


def test_a_minimal_manifest_has_empty_defaults() -> None:
    m = parse_manifest(b"<package><metadata><id>A</id><version>1.0</version></metadata></package>")
    assert (m.id, m.version.normalized, m.title, m.tags, m.dependency_groups, m.package_types, m.license) == (
        "A", "1.0.0", None, (), (), (), None)
    assert (m.require_license_acceptance, m.repository, m.min_client_version) == (False, None, None)


def test_the_pre_2_0_flat_dependency_list_is_one_group_for_every_framework() -> None:
    m = parse_manifest(b'<package><metadata><id>A</id><version>1.0</version><dependencies>'
                       b'<dependency id="B" version="2.0" /></dependencies></metadata></package>')
    flat = ManifestDependency("B", VersionRange.parse("2.0"))
    assert m.dependency_groups == (ManifestDependencyGroup(None, (flat,)),)


@pytest.mark.parametrize(("metadata", "message"), [
    (b"<id>A</id><id>B</id><version>1.0</version>", "duplicate metadata elements: <id>"),
    (b"<id>A</id><version>1.0</version><title>x</title><tags/><title>y</title><tags/>",
     "duplicate metadata elements: <tags>, <title>"),
    (b"<id>A</id><version>1.0</version><requireLicenseAcceptance>yes</requireLicenseAcceptance>",
     r"<metadata><requireLicenseAcceptance> is 'yes', expected true or false"),
    (b"<id>A</id><version>1.0</version><developmentDependency>1</developmentDependency>",
     "<developmentDependency> is '1'"),
    (b'<id>A</id><version>1.0</version><dependencies><group targetFramework="net8.0">'
     b'<dependency id="B" version="[1.0" /></group></dependencies>',
     r'<dependency id="B"> in <group targetFramework="net8.0">: \'\[1.0\' is not a valid version range'),
    (b'<id>A</id><version>1.0</version><dependencies><dependency version="1.0" /></dependencies>',
     "a <dependency> in <dependencies> has no id"),
    (b"<id>A</id><version>1.0</version><packageTypes><packageType /></packageTypes>", "<packageType> has no name"),
    (b"<id>A</id><version>one</version>", r"<metadata><version>: 'one' is not a valid NuGet version"),
    (b"<version>1.0</version>", r"no package id \(<metadata><id>\)"),
])
def test_strict_refusals_name_the_field(metadata: bytes, message: str) -> None:
    with pytest.raises(PackageFormatError, match=rf"^pkg!x\.nuspec: .*{message}"):
        parse_manifest(b"<package><metadata>" + metadata + b"</metadata></package>", "pkg!x.nuspec")


def test_min_client_version_must_be_a_version() -> None:
    with pytest.raises(PackageFormatError, match='minClientVersion="latest"> is not a version'):
        parse_manifest(b'<package><metadata minClientVersion="latest"><id>A</id><version>1.0</version>'
                       b"</metadata></package>")


def test_utf16_with_a_doctype_is_refused_too() -> None:
    text = '<?xml version="1.0" encoding="utf-16"?><!DOCTYPE package><package><metadata/></package>'
    with pytest.raises(PackageFormatError, match="declares a DTD"):
        parse_manifest(text.encode("utf-16"))


READABLE = [r for r in manifest() if r.kind != "corrupt"]


@pytest.mark.parametrize("row", READABLE, ids=[r.path.name for r in READABLE])
def test_every_real_vector_reads_strictly(row: ManifestRow) -> None:
    m = read_manifest(row.path)
    assert m.id == row.package_id
    assert m.description  # every nuget.org package has one
    for group in m.dependency_groups:
        assert all(d.id for d in group.dependencies)
