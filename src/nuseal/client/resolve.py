"""Dependency resolution for ``nuseal install`` (NuGet's "lowest applicable version" behaviour).

Dependencies come from the nuspec ``<dependencies>``: flat ``<dependency>`` elements and every
``<group targetFramework=...>``. nuseal does no framework reduction: it takes the union of all groups (a
package that depends on X only for net462 still gets X). Resolution is cycle-safe (each id is resolved once
per pass) and bounded in depth; when a package reached later narrows the range of an id already chosen, the
choice is recomputed as the lowest version satisfying every range seen and the graph is walked again.
"""

from __future__ import annotations

import zipfile
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from nuseal.errors import NusealError, PackageFormatError
from nuseal.package.nuspec import MAX_NUSPEC_BYTES, PackageIdentity, parse_identity
from nuseal.versioning import NuGetVersion, VersionRange, lowest_applicable

MAX_DEPTH = 32
_MAX_PASSES = 16


class ResolveError(NusealError):
    """No set of versions satisfies the dependency graph, or the graph is too deep."""


@dataclass(frozen=True)
class Dependency:
    id: str
    range: VersionRange


@dataclass(frozen=True)
class Nuspec:
    """What install needs from a package's nuspec: identity, its entry name, the raw bytes, dependencies."""

    identity: PackageIdentity
    entry_name: str
    data: bytes
    dependencies: tuple[Dependency, ...]


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname if isinstance(element.tag, str) else ""


def read_nuspec(path: Path) -> Nuspec:
    """The root ``.nuspec`` of the package at ``path``; ``PackageFormatError`` naming the file otherwise."""
    try:
        with zipfile.ZipFile(path) as archive:
            candidates = [i for i in archive.infolist() if "/" not in i.filename and "\\" not in i.filename
                          and i.filename.lower().endswith(".nuspec")]
            if len(candidates) != 1:
                raise PackageFormatError(f"{path}: expected exactly one .nuspec at the package root, "
                                         f"found {len(candidates)}.")
            info = candidates[0]
            with archive.open(info) as stream:
                data = stream.read(MAX_NUSPEC_BYTES + 1)
    except (zipfile.BadZipFile, OSError) as exc:
        raise PackageFormatError(f"{path}: cannot read the package: {exc}") from exc
    if len(data) > MAX_NUSPEC_BYTES:
        raise PackageFormatError(f"{path}: {info.filename} is larger than {MAX_NUSPEC_BYTES} bytes.")
    identity = parse_identity(data, f"{path}!{info.filename}")
    return Nuspec(identity, info.filename, data, parse_dependencies(data, f"{path}!{info.filename}"))


def parse_dependencies(data: bytes, where: str) -> tuple[Dependency, ...]:
    """Union of every dependency group (and ungrouped dependencies), first occurrence of an id wins its
    place; ranges of the same id in several groups are intersected by resolution later, so all are kept."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, remove_comments=True)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise PackageFormatError(f"{where}: the nuspec is not well-formed XML: {exc}") from exc
    metadata = next((c for c in root if _local(c) == "metadata"), None)
    deps_el = next((c for c in metadata if _local(c) == "dependencies"), None) if metadata is not None else None
    if deps_el is None:
        return ()
    elements: list[etree._Element] = []
    for child in deps_el:
        if _local(child) == "dependency":
            elements.append(child)
        elif _local(child) == "group":
            elements.extend(c for c in child if _local(c) == "dependency")
    found: list[Dependency] = []
    seen: set[tuple[str, str]] = set()
    for el in elements:
        dep_id = (el.get("id") or "").strip()
        if not dep_id:
            raise PackageFormatError(f"{where}: a <dependency> has no id.")
        text = el.get("version") or ""
        try:
            # NuGet reads a missing or empty version attribute as "any version".
            version_range = VersionRange.parse(text) if text.strip() else VersionRange.ALL
        except ValueError as exc:
            raise PackageFormatError(f"{where}: dependency '{dep_id}': {exc}.") from exc
        key = (dep_id.lower(), text.strip())
        if key not in seen:
            seen.add(key)
            found.append(Dependency(dep_id, version_range))
    return tuple(found)


@dataclass(frozen=True)
class Resolved:
    """One package of the resolved graph; ``depth`` 0 is the requested package."""

    id: str
    version: NuGetVersion
    depth: int


#: ``available(id)`` → every version any source has; ``dependencies(id, version)`` → its nuspec dependencies.
AvailableVersions = Callable[[str], list[NuGetVersion]]
DependenciesOf = Callable[[str, NuGetVersion], tuple[Dependency, ...]]


def resolve(root_id: str, root_version: NuGetVersion, available: AvailableVersions,
            dependencies: DependenciesOf, *, max_depth: int = MAX_DEPTH) -> list[Resolved]:
    """The packages to install, breadth first from the root. ``ResolveError`` when a range has no candidate,
    ranges of one id cannot all be met, or the graph is deeper than ``max_depth``."""
    pinned: dict[str, NuGetVersion] = {root_id.lower(): root_version}
    for _ in range(_MAX_PASSES):
        chosen, ranges, names = _walk(root_id, root_version, pinned, available, dependencies, max_depth)
        conflicts = {key for key, version in chosen.items() if not all(r.satisfies(version) for r, _ in ranges[key])}
        if not conflicts:
            return [Resolved(names[key], version, depth) for key, (version, depth) in _ordered(chosen, names,
                                                                                             root_id, dependencies)]
        for key in conflicts:
            if key == root_id.lower():
                wanted = ", ".join(f"{r} (from {parent})" for r, parent in ranges[key])
                raise ResolveError(f"'{names[key]} {root_version}' was requested but the graph needs {wanted}.")
            best = lowest_applicable([r for r, _ in ranges[key]], available(names[key]))
            if best is None:
                wanted = ", ".join(f"{r} (from {parent})" for r, parent in ranges[key])
                raise ResolveError(f"No version of '{names[key]}' satisfies every dependency on it: {wanted}.")
            pinned[key] = best
    raise ResolveError(f"Dependency resolution for '{root_id}' did not settle after {_MAX_PASSES} passes.")


def _walk(root_id: str, root_version: NuGetVersion, pinned: dict[str, NuGetVersion], available: AvailableVersions,
          dependencies: DependenciesOf, max_depth: int,
          ) -> tuple[dict[str, NuGetVersion], dict[str, list[tuple[VersionRange, str]]], dict[str, str]]:
    chosen: dict[str, NuGetVersion] = {root_id.lower(): root_version}
    names = {root_id.lower(): root_id}
    ranges: dict[str, list[tuple[VersionRange, str]]] = {root_id.lower(): []}
    queue: deque[tuple[str, int]] = deque([(root_id.lower(), 0)])
    while queue:
        key, depth = queue.popleft()
        parent = f"{names[key]} {chosen[key]}"
        for dep in dependencies(names[key], chosen[key]):
            dep_key = dep.id.lower()
            ranges.setdefault(dep_key, []).append((dep.range, parent))
            if dep_key in chosen:
                continue  # already placed: cycle-safe; conflicts are checked after the walk
            if depth + 1 > max_depth:
                raise ResolveError(f"The dependency graph of '{root_id}' is deeper than {max_depth} "
                                   f"(at '{dep.id}' from {parent}).")
            names[dep_key] = dep.id
            # A pin comes from an earlier pass and satisfies every range seen then.
            version = pinned.get(dep_key) or lowest_applicable([dep.range], available(dep.id))
            if version is None:
                raise ResolveError(f"Unable to find a version of '{dep.id}' in {dep.range} (dependency of {parent}).")
            chosen[dep_key] = version
            queue.append((dep_key, depth + 1))
    return chosen, ranges, names


def _ordered(chosen: dict[str, NuGetVersion], names: dict[str, str], root_id: str,
             dependencies: DependenciesOf) -> list[tuple[str, tuple[NuGetVersion, int]]]:
    """Chosen packages with their breadth-first depth from the root."""
    depths = {root_id.lower(): 0}
    queue = deque([root_id.lower()])
    while queue:
        key = queue.popleft()
        for dep in dependencies(names[key], chosen[key]):
            dep_key = dep.id.lower()
            if dep_key not in depths:
                depths[dep_key] = depths[key] + 1
                queue.append(dep_key)
    return [(key, (chosen[key], depths[key])) for key in sorted(depths, key=lambda k: (depths[k], k))]
