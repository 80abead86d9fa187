"""NuGet's own client against ``nuseal serve`` (both backends): nuget.exe 5.8 under Mono pushes, searches,
installs by id (through the registration hive, then the flat container) and deletes (unlists). The full interop
suite comes later; this proves the routes accept exactly what nuget.exe sends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.support.feed_http import TIMEOUT, api_key, wait_available
from tests.support.feed_packages import build_package
from tests.support.nugetexe import NuGetExe
from tests.support.server_factories import user
from tests.support.server_fixtures import BACKENDS, DatabaseFactory, FeedServer, start_feed_server


@pytest.fixture(params=BACKENDS)
def feed(request: pytest.FixtureRequest, database_factory: DatabaseFactory, tmp_path: Path) -> Iterator[FeedServer]:
    server = start_feed_server(database_factory, request.param, tmp_path / "feed")
    user(server.ctx, "alice")
    yield server
    server.stop()


def test_nuget_exe_push_search_install_delete(feed: FeedServer, nuget_exe: NuGetExe, tmp_path: Path) -> None:
    key = api_key(feed.ctx, "alice")
    package = build_package(tmp_path / "Smoke.Feed.2.0.0.nupkg", "Smoke.Feed", "2.0.0",
                            dependencies=[("net8.0", [])])
    source = ["-Source", f"{feed.url}/v3/index.json"]

    code, stdout, stderr = nuget_exe.run("push", str(package), *source, "-ApiKey", key)
    assert code == 0 and "Your package was pushed." in stdout, stdout + stderr
    status = wait_available(feed.url, "Smoke.Feed", "2.0.0")  # the validation job made it available
    assert (status["status"], status["pushed_by"]) == ("available", "alice")

    code, stdout, stderr = nuget_exe.run("search", "Smoke", *source)
    assert code == 0 and "Smoke.Feed | 2.0.0" in stdout, stdout + stderr

    code, stdout, stderr = nuget_exe.run("install", "Smoke.Feed", *source, "-OutputDirectory", str(tmp_path / "out"))
    assert code == 0, stdout + stderr
    installed = tmp_path / "out" / "Smoke.Feed.2.0.0" / "Smoke.Feed.2.0.0.nupkg"
    assert installed.read_bytes() == package.read_bytes()

    code, stdout, stderr = nuget_exe.run("push", str(package), *source, "-ApiKey", key)
    assert code != 0 and "409" in stdout + stderr  # the same version again

    code, stdout, stderr = nuget_exe.run("delete", "Smoke.Feed", "2.0.0", *source, "-ApiKey", key)
    assert code == 0 and "Smoke.Feed 2.0.0 was deleted successfully." in stdout, stdout + stderr
    assert httpx.get(f"{feed.url}/api/v1/packages/Smoke.Feed/2.0.0", timeout=TIMEOUT).json()["listed"] is False
    code, stdout, stderr = nuget_exe.run("search", "Smoke", *source)
    assert code == 0 and "Smoke.Feed" not in stdout, stdout + stderr
