"""``nuseal serve --workers 2``: two HTTP worker processes under the serving process, on one port; a push through
one is served by both (fresh connections land on either); SIGTERM stops them all. Plus the two settings behind
it (``http_workers``, ``access_log``) from the environment."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import httpx
import pytest
from tests.support.feed_http import TIMEOUT, push
from tests.support.feed_packages import build_package
from tests.support.server_factories import OPERATOR, user
from tests.support.server_fixtures import make_context, start_serve

from nuseal.server.db.session import Database
from nuseal.server.services import apikeys
from nuseal.server.services.context import system_clock
from nuseal.server.settings import SettingsError, load_settings


def http_workers(pid: int) -> list[int]:
    """The worker processes uvicorn spawned under ``pid`` (multiprocessing's resource tracker left out)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            with contextlib.suppress(OSError):
                if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                    found.append(int(child))
    return found


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=10).status_code == 200
    except httpx.HTTPError:
        return False


def test_two_http_workers_serve_one_port(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = start_serve(["--data", str(data), "--port", "0", "--workers", "2", "--revocation-mode", "offline"],
                         tmp_path / "serve.log")
    try:
        deadline = time.monotonic() + 90
        while not (len(http_workers(server.process.pid)) == 2 and healthy(server.url)):
            # The port listens from the start; the worker processes accept once they have imported the app.
            assert time.monotonic() < deadline, f"no two workers answering in 90 s:\n{server.log_path.read_text()}"
            time.sleep(0.2)
        workers = http_workers(server.process.pid)
        ctx = make_context(Database(f"sqlite:///{data / 'nuseal.db'}"), data, system_clock)
        user(ctx, "alice")
        key = apikeys.create(ctx, OPERATOR, "alice").token
        assert push(server.url, key, build_package(tmp_path / "w.nupkg", "Workers.Lib", "1.0.0")).status_code == 201
        path = "/v3/flatcontainer/workers.lib/1.0.0/workers.lib.1.0.0.nupkg"
        answers = [httpx.get(server.url + path, timeout=TIMEOUT, headers={"Connection": "close"})
                   for _ in range(20)]  # new connections: the kernel spreads them over both workers
        assert {a.status_code for a in answers} == {200} and len({a.content for a in answers}) == 1
        started = [line for line in server.log_lines() if str(line.get("message", "")).startswith("Started server")]
        assert len(started) == 2  # one application per worker process
        ctx.db.dispose()
    finally:
        server.stop()
    assert all(not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
               for pid in workers)


def test_http_workers_and_access_log_settings() -> None:
    settings = load_settings({}, environ={"NUSEAL_HTTP_WORKERS": "3", "NUSEAL_ACCESS_LOG": "off"})
    assert (settings.http_workers, settings.access_log) == (3, False)
    assert load_settings({"http_workers": 2}).http_workers == 2
    assert load_settings({}).http_workers == 1 and load_settings({}).access_log is True
    with pytest.raises(SettingsError, match=r"NUSEAL_HTTP_WORKERS.*1 to 64"):
        load_settings({}, environ={"NUSEAL_HTTP_WORKERS": "0"})
