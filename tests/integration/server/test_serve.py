"""``nuseal serve`` as a real process on a free loopback port: /health over HTTP and HTTPS (test PKI), the
embedded database migrated at start-up, JSON access-log lines, 503 when storage breaks, clear start-up errors."""

from __future__ import annotations

import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.support.server_fixtures import DatabaseFactory, ServeProcess, TlsFiles, start_serve

from nuseal.server.db import migrate
from nuseal.server.db.session import Database

NUSEAL = str(Path(sys.executable).with_name("nuseal"))


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServeProcess]:
    server = start_serve(["--data", str(tmp_path / "data"), "--port", "0"], tmp_path / "serve.log")
    yield server
    server.stop()


def test_health_over_http_with_the_embedded_database_migrated(served: ServeProcess, tmp_path: Path) -> None:
    assert served.url.startswith("http://127.0.0.1:")
    response = httpx.get(f"{served.url}/health", timeout=30, headers={"User-Agent": "nuseal-test"})
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "storage": "ok"}}
    assert response.headers["cache-control"] == "no-store"
    assert httpx.get(f"{served.url}/nothing-here", timeout=30).status_code == 404

    db = Database(f"sqlite:///{tmp_path / 'data' / 'nuseal.db'}")
    try:
        assert migrate.current_revision(db) == migrate.head_revision()
    finally:
        db.dispose()
    assert (tmp_path / "data" / "blobs" / "incoming").is_dir()

    assert served.stop() == -signal.SIGTERM
    assert any(line["message"] == "Application shutdown complete." for line in served.log_lines())
    access = [line for line in served.log_lines() if line.get("logger") == "nuseal.access"]
    health = next(line for line in access if line["path"] == "/health")
    assert (health["method"], health["status"], health["client"], health["user_agent"]) == (
        "GET", 200, "127.0.0.1", "nuseal-test"
    )
    assert isinstance(health["bytes"], int) and health["bytes"] > 0
    assert isinstance(health["duration_ms"], float | int)
    assert any(line["path"] == "/nothing-here" and line["status"] == 404 for line in access)
    # every line on stderr is JSON, uvicorn's own included
    assert all(text.startswith("{") for text in served.log_path.read_text().splitlines())


def test_health_over_https_with_a_certificate_from_the_test_pki(tls_files: TlsFiles, tmp_path: Path) -> None:
    server = start_serve(
        ["--data", str(tmp_path / "data"), "--port", "0", "--tls-cert", str(tls_files.chain),
         "--tls-key", str(tls_files.key)],
        tmp_path / "serve.log",
    )  # fmt: skip
    try:
        assert server.url.startswith("https://127.0.0.1:")
        context = ssl.create_default_context(cafile=str(tls_files.ca_bundle))
        response = httpx.get(f"{server.url}/health", verify=context, timeout=30)
        assert response.status_code == 200 and response.json()["status"] == "ok"
        with pytest.raises(httpx.ConnectError):  # the default trust store does not know the test PKI
            httpx.get(f"{server.url}/health", timeout=30)
        with pytest.raises(httpx.HTTPError):  # plain HTTP to the TLS port
            httpx.get(server.url.replace("https://", "http://") + "/health", timeout=30)
    finally:
        assert server.stop() == -signal.SIGTERM


def test_health_is_503_when_storage_is_unusable(served: ServeProcess, tmp_path: Path) -> None:
    blobs = tmp_path / "data" / "blobs"
    shutil.rmtree(blobs)
    blobs.write_text("not a folder any more")
    response = httpx.get(f"{served.url}/health", timeout=30)
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "checks": {"database": "ok", "storage": "unavailable"}}
    served.stop()
    warnings = [line for line in served.log_lines() if line.get("level") == "WARNING"]
    assert any("storage unavailable: cannot create the blob folder" in str(line["message"]) for line in warnings)


def test_public_url_and_settings_from_config_and_environment(tmp_path: Path) -> None:
    config = tmp_path / "nuseal.toml"
    config.write_text('public_url = "https://nuget.example.com/feed"\nport = 0\n')
    server = start_serve(["--config", str(config)], tmp_path / "serve.log",
                         env={"NUSEAL_DATA": str(tmp_path / "env-data")})  # fmt: skip
    try:
        assert httpx.get(f"{server.url}/health", timeout=30).status_code == 200
    finally:
        server.stop()
    assert (tmp_path / "env-data" / "nuseal.db").is_file()


def run_serve(*args: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("NUSEAL_")}
    return subprocess.run([NUSEAL, "serve", *args], capture_output=True, text=True, timeout=120, check=False,
                          env=environment)  # fmt: skip


def test_start_up_errors_are_one_line_and_exit_1(tmp_path: Path, tls_files: TlsFiles) -> None:
    not_pem = tmp_path / "roots.pem"
    not_pem.write_text("no certificates here")
    cases = [
        (["--port", "70000"], "error: invalid port 70000 (option --port)"),
        (["--tls-cert", str(tls_files.chain)], "error: --tls-cert (option --tls-cert) needs --tls-key as well"),
        (["--trust-roots", str(not_pem)], "error: "),
        (["--storage", "s3://bucket?acl=x"], "error: invalid S3 storage URL"),
    ]
    for args, message in cases:
        result = run_serve("--data", str(tmp_path / "data"), *args)
        assert result.returncode == 1, (args, result.stderr)
        assert result.stderr.startswith(message) and result.stderr.count("\n") == 1, result.stderr
        assert "Traceback" not in result.stderr


def test_a_busy_port_is_a_clear_error(served: ServeProcess, tmp_path: Path) -> None:
    port = served.url.rsplit(":", 1)[1]
    result = run_serve("--data", str(tmp_path / "other"), "--port", port)
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}: ")


def test_an_unmigrated_external_database_is_refused(database_factory: DatabaseFactory, tmp_path: Path) -> None:
    server = database_factory.postgres()
    server.psql("CREATE DATABASE serve_unmigrated")
    result = run_serve("--data", str(tmp_path / "data"), "--database-url", server.url("serve_unmigrated"))
    assert result.returncode == 1
    assert "is empty, this nuseal needs revision" in result.stderr and "nuseal admin migrate" in result.stderr
    assert result.stderr.count("\n") == 1 and result.stdout == ""


def test_a_server_the_tests_started_ends_with_the_process_that_started_it(tmp_path: Path) -> None:
    # A fixture that fails before its yield never calls stop(): the server must not outlive the test process.
    starter = ("import sys; from pathlib import Path; from tests.support.server_fixtures import start_serve; "
               "folder = Path(sys.argv[1]); "
               "print(start_serve(['--data', str(folder / 'data'), '--port', '0'], folder / 'serve.log').process.pid)")
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run([sys.executable, "-c", starter, str(tmp_path)], capture_output=True, text=True, timeout=120,
                          cwd=root, check=True)  # fmt: skip
    pid = int(done.stdout.split()[-1])
    for _ in range(100):
        if _gone(pid):
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    pytest.fail(f"nuseal serve (pid {pid}) still ran 10 s after the process that started it ended")


def _gone(pid: int) -> bool:
    """Ended: no such process, or a zombie not yet reaped by its new parent."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (FileNotFoundError, IndexError):
        return True
