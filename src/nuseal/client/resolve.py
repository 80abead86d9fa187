"""Dependency resolution for ``nuseal install`` (NuGet's "lowest applicable version" behaviour).

Dependencies come from the nuspec manifest (``nuseal.package.nuspec``): every ``<dependency>`` group (or the
pre-2.0 flat list). nuseal does no framework reduction: it takes the union of all groups (a
package that depends on X only for net462 still gets X). Resolution is cycle-safe (each id is resolved once
per pass) and bounded in depth; when a package reached later narrows the range of an id already chosen, the
choice is recomputed as the lowest version satisfying every range seen and the graph is walked again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nuseal.errors import NusealError
from nuseal.package.nuspec import Manifest, PackageIdentity, parse_manifest, read_nuspec_file
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


def read_nuspec(path: Path) -> Nuspec:
    """The root ``.nuspec`` of the package at ``path``; ``PackageFormatError`` naming the file otherwise."""
    found = read_nuspec_file(path)
    manifest = parse_manifest(found.data, found.where(path))
    return Nuspec(manifest.identity, found.entry_name, found.data, dependencies_of(manifest))


def dependencies_of(manifest: Manifest) -> tuple[Dependency, ...]:
    """Union of every dependency group (NuGet reads bare ``<dependency>`` elements only when there is no group);
    the first occurrence of an id and range keeps its place. Ranges of one id in several groups are all kept:
    resolution intersects them later."""
    found: list[Dependency] = []
    seen: set[tuple[str, str]] = set()
    for group in manifest.dependency_groups:
        for dependency in group.dependencies:
            key = (dependency.id.lower(), str(dependency.range))
            if key not in seen:
                seen.add(key)
                found.append(Dependency(dependency.id, dependency.range))
    return tuple(found)


def parse_dependencies(data: bytes, where: str) -> tuple[Dependency, ...]:
    """:func:`dependencies_of` the manifest in nuspec bytes."""
    return dependencies_of(parse_manifest(data, where))


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
