"""NuGet's own client against ``nuseal serve`` (both backends), end to end: nuget.exe 5.8 under Mono pushes, lists
(through the V2 ``LegacyGallery`` feed the service index advertises), searches, installs by id and by id and
version (registration hive, then flat container), refuses a duplicate, and deletes (unlists): the version leaves
``list`` and search but still installs by its exact version, as on nuget.org.

Every nuget.exe call costs about 1.7 s, so the other versions are pushed over HTTP, and paging (a full page of 30
makes nuget.exe ask for the next one) is proven in the same ``list -AllVersions``.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from tests.support.feed_http import TIMEOUT, api_key, push, wait_available
from tests.support.feed_packages import build_package
from tests.support.nugetexe import NuGetExe
from tests.support.server_factories import user
from tests.support.server_fixtures import BACKENDS, DatabaseFactory, FeedServer, start_feed_server

#: More versions than one page of nuget.exe's list (30), so that it must follow with $skip=30.
PAGED_VERSIONS = [f"0.{minor}.0" for minor in range(1, 31)]


@pytest.fixture(params=BACKENDS)
def feed(request: pytest.FixtureRequest, database_factory: DatabaseFactory, tmp_path: Path) -> Iterator[FeedServer]:
    server = start_feed_server(database_factory, request.param, tmp_path / "feed")
    user(server.ctx, "alice")
    yield server
    server.stop()


def _listed(stdout: str) -> list[str]:
    """``Id Version`` lines of nuget.exe list's output."""
    return [line.strip() for line in stdout.splitlines() if line.startswith("Interop.")]


def _ok(result: tuple[int, str, str]) -> str:
    code, stdout, stderr = result
    assert code == 0, stdout + stderr
    return stdout


def test_nuget_exe_push_list_install_delete(feed: FeedServer, nuget_exe: NuGetExe, tmp_path: Path) -> None:
    key = api_key(feed.ctx, "alice")
    source = ["-Source", f"{feed.url}/v3/index.json"]
    built: dict[str, Path] = {}
    for version in ["1.0.0", "1.1.0", "2.0.0-beta", *PAGED_VERSIONS]:
        built[version] = build_package(tmp_path / f"Interop.Feed.{version}.nupkg", "Interop.Feed", version,
                                       description=f"Version {version}: <it's> & more", dependencies=[("net8.0", [])])
    other = build_package(tmp_path / "Interop.Other.3.0.0.nupkg", "Interop.Other", "3.0.0")

    stdout = _ok(nuget_exe.run("push", str(built["1.1.0"]), *source, "-ApiKey", key))
    assert "Your package was pushed." in stdout
    with ThreadPoolExecutor(4) as pool:  # four clients at once: the pushes are set-up here, not the subject
        pushed = list(pool.map(lambda path: push(feed.url, key, path).status_code,
                               [path for version, path in built.items() if version != "1.1.0"] + [other]))
    assert pushed == [201] * len(built)  # every version but 1.1.0, plus Interop.Other
    status = wait_available(feed.url, "Interop.Feed", "1.1.0")  # the validation job made it available
    assert (status["status"], status["pushed_by"]) == ("available", "alice")

    # list: the latest stable version of each id; -Prerelease: the absolute latest; -AllVersions: every listed
    # version, newest first per id, across two pages.
    assert _listed(_ok(nuget_exe.run("list", "Interop", *source))) == ["Interop.Feed 1.1.0", "Interop.Other 3.0.0"]
    assert _listed(_ok(nuget_exe.run("list", "Interop.Feed", "-Prerelease", *source))) == [
        "Interop.Feed 2.0.0-beta"]
    everything = _listed(_ok(nuget_exe.run("list", "-AllVersions", "-Prerelease", *source)))
    assert len(everything) == len(built) + 1 > 30
    assert sorted(everything) == sorted([f"Interop.Feed {v}" for v in built] + ["Interop.Other 3.0.0"])

    stdout = _ok(nuget_exe.run("search", "Interop.Feed", *source))
    assert "Interop.Feed | 1.1.0" in stdout

    out = tmp_path / "out"
    _ok(nuget_exe.run("install", "Interop.Feed", *source, "-OutputDirectory", str(out)))
    assert (out / "Interop.Feed.1.1.0" / "Interop.Feed.1.1.0.nupkg").read_bytes() == built["1.1.0"].read_bytes()
    _ok(nuget_exe.run("install", "Interop.Feed", "-Version", "1.0.0", *source, "-OutputDirectory", str(out)))
    assert (out / "Interop.Feed.1.0.0" / "Interop.Feed.1.0.0.nupkg").read_bytes() == built["1.0.0"].read_bytes()

    code, stdout, stderr = nuget_exe.run("push", str(built["1.1.0"]), *source, "-ApiKey", key)
    assert code != 0 and "409" in stdout + stderr, (code, stdout, stderr)  # the same version again

    stdout = _ok(nuget_exe.run("delete", "Interop.Feed", "1.1.0", *source, "-ApiKey", key))
    assert "Interop.Feed 1.1.0 was deleted successfully." in stdout
    assert httpx.get(f"{feed.url}/api/v1/packages/Interop.Feed/1.1.0", timeout=TIMEOUT).json()["listed"] is False
    # Unlisted: gone from list (the latest stable is 1.0.0 again) and search, still installable by exact version.
    assert _listed(_ok(nuget_exe.run("list", "Interop", *source))) == ["Interop.Feed 1.0.0", "Interop.Other 3.0.0"]
    unlisted_out = tmp_path / "after-delete"
    _ok(nuget_exe.run("install", "Interop.Feed", "-Version", "1.1.0", *source, "-OutputDirectory", str(unlisted_out)))
    installed = unlisted_out / "Interop.Feed.1.1.0" / "Interop.Feed.1.1.0.nupkg"
    assert installed.read_bytes() == built["1.1.0"].read_bytes()
