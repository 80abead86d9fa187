"""200 concurrent pushes of distinct and duplicate versions, over real HTTP:

- ``scale``: two ``nuseal serve`` processes on one PostgreSQL database and one S3 bucket, the pushes alternating
  between them;
- ``embedded``: one ``nuseal serve`` on SQLite (one writer at a time: busy waits must never surface as 5xx or
  "database is locked").

Ten new ids with ten versions each, every version pushed twice (half of the duplicates with the same bytes, half
with other bytes), shuffled, from 16 client threads. Then: no 5xx, one 201 and one 409 per version, every version
stored once (one row, one package blob and one nuspec, nothing left in ``incoming/``), served with the bytes of the
push that won, and the same documents (flat container, registration, search) from every server process.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from tests.support.feed_http import TIMEOUT, api_key, push
from tests.support.feed_packages import build_package
from tests.support.server_factories import user
from tests.support.server_fixtures import DatabaseFactory, FeedServer, ServeProcess, start_feed_server

from nuseal.server.db.models import PackageOwner, PackageRegistration, PackageVersion, VersionStatus

IDS = [f"Race.Lib{index}" for index in range(10)]
VERSIONS = [f"1.{minor}.0" for minor in range(10)]
#: The whole run must stay well inside this (it takes 10-40 s on the shared 2-core machine).
BUDGET_SECONDS = 240


@dataclass(frozen=True)
class Attempt:
    package_id: str
    version: str
    data: bytes
    server: int = 0


@dataclass
class Cluster:
    feed: FeedServer
    others: list[ServeProcess]

    @property
    def urls(self) -> list[str]:
        return [self.feed.url, *(p.url for p in self.others)]


@pytest.fixture(params=[("scale", 2), ("embedded", 1)], ids=["postgres-s3-two-servers", "sqlite-one-server"])
def cluster(request: pytest.FixtureRequest, database_factory: DatabaseFactory, tmp_path: Path) -> Iterator[Cluster]:
    backend, processes = request.param
    feed = start_feed_server(database_factory, backend, tmp_path / "feed")
    others = [feed.another_process(tmp_path / f"serve{n}.log") for n in range(1, processes)]
    user(feed.ctx, "alice")
    yield Cluster(feed, others)
    for other in others:
        other.stop()
    feed.stop()


def attempts(folder: Path) -> list[Attempt]:
    planned: list[Attempt] = []
    for i, package_id in enumerate(IDS):
        for j, version in enumerate(VERSIONS):
            first = build_package(folder / f"{package_id}.{version}.a.nupkg", package_id, version).read_bytes()
            same = (i + j) % 2 == 0
            second = first if same else build_package(folder / f"{package_id}.{version}.b.nupkg", package_id,
                                                      version, description="Another upload.").read_bytes()
            planned += [Attempt(package_id, version, first), Attempt(package_id, version, second)]
    random.Random(20301).shuffle(planned)
    return [Attempt(a.package_id, a.version, a.data, server=n % 2) for n, a in enumerate(planned)]


def test_concurrent_distinct_and_duplicate_pushes(cluster: Cluster, tmp_path: Path) -> None:
    feed = cluster.feed
    key = api_key(feed.ctx, "alice")
    planned = attempts(tmp_path)
    assert len(planned) == 200
    urls = cluster.urls

    def send(attempt: Attempt) -> tuple[Attempt, int, str]:
        answer = push(urls[attempt.server % len(urls)], key, attempt.data)
        return attempt, answer.status_code, answer.text

    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(send, planned))
    elapsed = time.monotonic() - started
    assert elapsed < BUDGET_SECONDS

    statuses = Counter(status for _, status, _ in results)
    assert statuses == {201: 100, 409: 100}, [(a.package_id, a.version, s, t) for a, s, t in results
                                              if s not in (201, 409)][:5]
    winners: dict[tuple[str, str], bytes] = {}
    per_version: dict[tuple[str, str], list[int]] = defaultdict(list)
    for attempt, status, text in results:
        per_version[(attempt.package_id, attempt.version)].append(status)
        if status == 201:
            winners[(attempt.package_id, attempt.version)] = attempt.data
        else:
            assert text == (f"A package with ID '{attempt.package_id}' and version '{attempt.version}' already "
                            "exists and cannot be modified.")
    assert all(sorted(s) == [201, 409] for s in per_version.values())
    logged = [line for serve in (feed.serve, *cluster.others) for line in serve.log_lines()
              if line.get("level") in ("ERROR", "CRITICAL")]
    assert logged == []  # no traceback, no "database is locked" behind a 409 either

    # Stored once: one row per version (available), one registration and one owner per id.
    with feed.ctx.db.reading() as session:
        rows = session.execute(select(PackageRegistration.package_id, PackageVersion.version, PackageVersion.status,
                                      PackageVersion.findings).join(PackageVersion)).all()  # fmt: skip
        assert sorted((r.package_id, r.version) for r in rows) == sorted(winners)
        assert {r.status for r in rows} == {VersionStatus.AVAILABLE.value}, [
            (r.package_id, r.version, r.findings) for r in rows if r.status != VersionStatus.AVAILABLE.value][:3]
        assert session.scalar(select(func.count()).select_from(PackageRegistration)) == len(IDS)
        assert session.scalar(select(func.count()).select_from(PackageOwner)) == len(IDS)
    keys = list(feed.ctx.blobs.list_keys())
    # nothing left in incoming/; the pushed bytes kept under uploads/ (validation.py), the served ones in packages/
    assert [k for k in keys if not k.startswith(("packages/", "uploads/"))] == []
    served = [k for k in keys if k.startswith("packages/")]
    assert len([k for k in served if k.endswith(".nupkg")]) == len([k for k in served if k.endswith(".nuspec")]) == 100
    assert len({k.rsplit("/", 1)[0] for k in served}) == 100  # one folder per version, no strays
    assert len([k for k in keys if k.startswith("uploads/")]) == 100

    # Served: the winner's bytes, and the same documents from every process.
    with httpx.Client(timeout=TIMEOUT) as client:
        for (package_id, version), data in winners.items():
            lower = package_id.lower()
            for url in urls:
                got = client.get(f"{url}/v3/flatcontainer/{lower}/{version}/{lower}.{version}.nupkg")
                assert got.status_code == 200 and got.content == data, (url, package_id, version)
        for package_id in IDS:
            lower = package_id.lower()
            # Each process hands out its own URLs (its own port): compared with the base URL taken out.
            documents = [(client.get(f"{url}/v3/flatcontainer/{lower}/index.json").json(),
                          client.get(f"{url}/v3/registration/{lower}/index.json").text.replace(url, "BASE"))
                         for url in urls]
            assert documents[0][0] == {"versions": VERSIONS}
            assert all(d == documents[0] for d in documents)
        searches = [client.get(f"{url}/v3/search?q=Race&take=100").text.replace(url, "BASE") for url in urls]
        assert json.loads(searches[0])["totalHits"] == len(IDS) and all(s == searches[0] for s in searches)
