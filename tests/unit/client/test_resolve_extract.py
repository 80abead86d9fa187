"""Dependency resolution (lowest applicable, conflicts, cycles, depth) and safe entry names."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from nuseal.client.extract import ExtractionLimits, UnsafePackageError, extract_content, safe_relative_path
from nuseal.client.resolve import Dependency, ResolveError, parse_dependencies, resolve
from nuseal.versioning import NuGetVersion, VersionRange

V = NuGetVersion.parse


def _graph(edges: dict[tuple[str, str], list[tuple[str, str]]]):  # type: ignore[no-untyped-def]
    versions: dict[str, list[NuGetVersion]] = {}
    for pid, ver in edges:
        versions.setdefault(pid.lower(), []).append(V(ver))

    def available(pid: str) -> list[NuGetVersion]:
        return versions.get(pid.lower(), [])

    def deps(pid: str, ver: NuGetVersion) -> tuple[Dependency, ...]:
        return tuple(Dependency(d, VersionRange.parse(r)) for d, r in edges[(pid, ver.normalized)])

    return available, deps


def test_conflicting_cousins_raise_to_lowest_common_version() -> None:
    available, deps = _graph({
        ("A", "1.0.0"): [("B", "1.0"), ("C", "1.0")],
        ("B", "1.0.0"): [("D", "1.0")],
        ("C", "1.0.0"): [("D", "[1.5,)")],
        ("D", "1.0.0"): [], ("D", "1.5.0"): [], ("D", "2.0.0"): [],
    })
    picked = {(r.id, r.version.normalized) for r in resolve("A", V("1.0.0"), available, deps)}
    assert picked == {("A", "1.0.0"), ("B", "1.0.0"), ("C", "1.0.0"), ("D", "1.5.0")}


def test_cycle_terminates_and_depth_is_bounded() -> None:
    available, deps = _graph({("A", "1.0.0"): [("B", "1.0")], ("B", "1.0.0"): [("A", "1.0")]})
    assert [r.id for r in resolve("A", V("1.0.0"), available, deps)] == ["A", "B"]
    chain = {(f"P{i}", "1.0.0"): [(f"P{i + 1}", "1.0")] for i in range(5)} | {("P5", "1.0.0"): []}
    available, deps = _graph(chain)
    with pytest.raises(ResolveError, match="deeper than 3"):
        resolve("P0", V("1.0.0"), available, deps, max_depth=3)


def test_unsatisfiable_range_names_the_dependency() -> None:
    available, deps = _graph({("A", "1.0.0"): [("B", "[2.0]")], ("B", "1.0.0"): []})
    with pytest.raises(ResolveError, match=r"'B' in \[2.0\] \(dependency of A 1.0.0\)"):
        resolve("A", V("1.0.0"), available, deps)


def test_dependency_groups_are_unioned() -> None:
    nuspec = (b'<package><metadata><id>X</id><version>1.0</version><dependencies>'
              b'<group targetFramework="net462"><dependency id="A" version="1.0" /></group>'
              b'<group targetFramework="netstandard2.0"><dependency id="B" version="[2.0,3.0)" /></group>'
              b'<group targetFramework="netstandard2.1" /></dependencies></metadata></package>')
    assert [(d.id, str(d.range)) for d in parse_dependencies(nuspec, "x")] == [("A", "1.0"), ("B", "[2.0,3.0)")]


@pytest.mark.parametrize("name", ["../x", "a/../../x", "/x", "\\x", "C:x", "a\\..\\x", "%2e%2e/x", "a\x00b"])
def test_unsafe_names_are_refused(name: str) -> None:
    with pytest.raises(UnsafePackageError, match="Package entry"):
        safe_relative_path(name)


def test_percent_encoded_names_are_unescaped() -> None:
    assert str(safe_relative_path("content/a%20b.txt")) == "content/a b.txt"


def test_symlink_and_total_size_limits(tmp_path: Path) -> None:
    link = tmp_path / "link.nupkg"
    with zipfile.ZipFile(link, "w") as z:
        info = zipfile.ZipInfo("lib/evil")
        info.create_system = 3
        info.external_attr = (0o120777 << 16)
        z.writestr(info, "/etc/passwd")
    (tmp_path / "out").mkdir()
    with pytest.raises(UnsafePackageError, match="'lib/evil' is a symbolic link"):
        extract_content(link, tmp_path / "out")
    big = tmp_path / "big.nupkg"
    with zipfile.ZipFile(big, "w", zipfile.ZIP_STORED) as z:
        z.writestr("a.bin", b"x" * 600)
        z.writestr("b.bin", b"y" * 600)
    with pytest.raises(UnsafePackageError, match=r"'b\.bin' takes the package past 1000"):
        extract_content(big, tmp_path / "out", limits=ExtractionLimits(max_total_bytes=1000))
