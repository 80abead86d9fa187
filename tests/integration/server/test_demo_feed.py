"""The README's first command: ``scripts/run`` installs nuseal and runs ``nuseal serve --demo``. Here the nuseal part
runs as a real process on a free loopback port, and every URL it prints must answer: the service index, the demo
package's ``.nupkg`` (the demo package, byte for byte what the feed stores), its registration, search and status;
the printed API key pushes another package. A second start on the same data keeps the package and prints a new key.
"""

from __future__ import annotations

import io
import queue
import re
import threading
import zipfile
from pathlib import Path

import httpx
import pytest
from tests.support.feed_http import TIMEOUT, push
from tests.support.feed_packages import build_package
from tests.support.server_fixtures import ServeProcess, start_serve

from nuseal.server.services.demo import DEMO_PACKAGE_ID, DEMO_USER, DEMO_VERSION

REPO = Path(__file__).resolve().parents[3]
#: The labels of the lines ``serve --demo`` prints after its "listening" line, in order.
LABELS = ("service index", "user", "API key", "package", ".nupkg", "registration", "search", "status", "install",
          "push")


def demo_lines(server: ServeProcess) -> dict[str, str]:
    """The demo block (``label value`` lines after "demo feed ready:"), read within 60 s."""
    stdout = server.process.stdout
    assert stdout is not None
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for _ in range(len(LABELS) + 1):
            lines.put(stdout.readline())

    threading.Thread(target=read, daemon=True).start()
    try:
        got = [lines.get(timeout=60) for _ in range(len(LABELS) + 1)]
    except queue.Empty:
        pytest.fail(f"nuseal serve --demo did not print its demo block in 60 s; log:\n{server.log_path.read_text()}")
    assert got[0] == "demo feed ready:\n"
    block = {}
    for line in got[1:]:
        match = re.match(r"  (\S.*?) {2,}(\S.*)$", line)
        assert match is not None, line
        block[match.group(1)] = match.group(2)
    assert tuple(block) == LABELS
    return block


def test_demo_feed_prints_urls_that_answer(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = start_serve(["--demo", "--data", str(data), "--port", "0"], tmp_path / "serve.log")
    try:
        block = demo_lines(server)
        url = server.url
        assert block["service index"] == f"{url}/v3/index.json"
        assert block["user"] == DEMO_USER
        assert block["package"] == f"{DEMO_PACKAGE_ID} {DEMO_VERSION}"  # no "(validating)": it is served
        assert block["install"] == (f"nuseal install {DEMO_PACKAGE_ID} --source {url}/v3/index.json "
                                    "--allow-insecure-loopback")
        assert block["push"].endswith(f"--source {url}/v3/index.json --api-key {block['API key']}")
        with httpx.Client(timeout=TIMEOUT) as client:
            index = client.get(block["service index"])
            assert index.status_code == 200
            types = {r["@type"]: r["@id"] for r in index.json()["resources"]}
            assert types["PackageBaseAddress/3.0.0"] == f"{url}/v3/flatcontainer/"

            nupkg = client.get(block[".nupkg"])
            assert nupkg.status_code == 200
            with zipfile.ZipFile(io.BytesIO(nupkg.content)) as archive:
                nuspec = archive.read(f"{DEMO_PACKAGE_ID}.nuspec").decode()
            assert f"<id>{DEMO_PACKAGE_ID}</id>" in nuspec and f"<version>{DEMO_VERSION}</version>" in nuspec

            registration = client.get(block["registration"])
            assert registration.status_code == 200
            assert [leaf["catalogEntry"]["version"] for page in registration.json()["items"]
                    for leaf in page["items"]] == [DEMO_VERSION]
            search = client.get(block["search"])
            assert search.status_code == 200 and [d["id"] for d in search.json()["data"]] == [DEMO_PACKAGE_ID]
            status = client.get(block["status"])
            assert status.status_code == 200
            assert (status.json()["status"], status.json()["pushed_by"]) == ("available", DEMO_USER)

        other = build_package(tmp_path / "other.nupkg", "Demo.Other", "2.0.0")
        assert push(url, block["API key"], other).status_code == 201
        assert push(url, block["API key"] + "x", other).status_code == 401  # the check above can fail
    finally:
        server.stop()

    again = start_serve(["--demo", "--data", str(data), "--port", "0"], tmp_path / "serve2.log")
    try:
        second = demo_lines(again)
        assert second["API key"] != block["API key"]
        assert second["package"] == f"{DEMO_PACKAGE_ID} {DEMO_VERSION}"  # still there, not pushed again
        answer = httpx.get(second[".nupkg"], timeout=TIMEOUT)
        assert answer.status_code == 200 and answer.content == nupkg.content
        assert push(again.url, second["API key"], other).status_code == 409
    finally:
        again.stop()


def test_readme_starts_with_the_demo_then_the_tests() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = readme.split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip()]
    assert commands[:2] == ["scripts/run", "scripts/test"]
    assert readme.index("```bash\n") < readme.index("\n## ")  # the first thing a reader runs
    run = (REPO / "scripts" / "run").read_text()
    assert "scripts/install" in run and "serve --demo" in run
