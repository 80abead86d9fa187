"""Schemathesis over the feed's OpenAPI schema, against a real ``nuseal serve`` on both backends: every GET
operation (status API, search, autocomplete, service index, flat container, registrations, the certificates and
required signer of the governance API) fed schema examples, boundary values and random input, checked for server
errors, undocumented statuses and content types, response bodies that break their schema, valid input refused,
``Allow`` headers of 405 answers, and authentication (schemathesis holds a valid API key with the management
scopes, through its OpenAPI-aware auth configuration, so the governance operations answer more than 401/403).
Contoso has a registered certificate and every generated ``sha256`` path value is its fingerprint, so the one-
certificate GET answers 200 (checked against its schema) and not only 403 for the accounts the key does not act
for: without it, schemathesis's "only 401/403" warning depended on how many cases the time budget allowed.
Bounded: a fixed seed and a time budget per backend."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.feed_http import api_key, push
from tests.support.feed_packages import build_package
from tests.support.pki import TestPki
from tests.support.server_factories import OPERATOR, organization, user
from tests.support.server_fixtures import BACKENDS, DatabaseFactory, FeedServer, start_feed_server

from nuseal.server.services import certificates

#: Seconds of generated requests per backend (the run stops when spent, whatever is left).
BUDGET = 40


@pytest.fixture(params=BACKENDS)
def feed(request: pytest.FixtureRequest, database_factory: DatabaseFactory, pki: TestPki, tmp_path: Path
         ) -> Iterator[FeedServer]:  # fmt: skip
    server = start_feed_server(database_factory, request.param, tmp_path / "feed")
    user(server.ctx, "alice")
    organization(server.ctx, "contoso", admins=["alice"])
    # The schema's examples name Contoso.Lib 1.0.0: with it present they reach the 200 answers, not only 404s.
    key = api_key(server.ctx, "contoso", "alice")
    for version in ("1.0.0", "2.0.0-beta.1"):
        assert push(server.url, key, build_package(tmp_path / f"{version}.nupkg", "Contoso.Lib", version)).status_code \
            == 201
    # Registered after the pushes: an account with a certificate gets unsigned pushes refused (nuget.org's rule).
    certificates.register(server.ctx, OPERATOR, "contoso", pki.leaf.der, "leaf.cer")
    yield server
    server.stop()


#: schemathesis's configuration: the API key for the schema's ``APIKeyHeader`` security scheme, and the fingerprint
#: of contoso's registered certificate for the ``sha256`` path parameter.
CONFIG = """\
[auth.openapi.APIKeyHeader]
api_key = "${NUSEAL_SCHEMATHESIS_KEY}"

[parameters]
"path.sha256" = "${NUSEAL_SCHEMATHESIS_SHA256}"
"""


def test_schemathesis_finds_nothing_wrong_with_the_json_api(feed: FeedServer, pki: TestPki, tmp_path: Path) -> None:
    # The examples name contoso and Contoso.Lib; the key acts for contoso with every scope the GETs need.
    key = api_key(feed.ctx, "contoso", "alice", scopes=("account:certificates", "package:signer", "package:push"))
    (tmp_path / "schemathesis.toml").write_text(CONFIG)
    schemathesis = str(Path(sys.executable).with_name("schemathesis"))
    command = [schemathesis, "--config-file", str(tmp_path / "schemathesis.toml"), "run",
               f"{feed.url}/api/openapi.json", "--include-method", "GET", "--checks", "all",
               "--phases", "examples,coverage,fuzzing", "--max-examples", "25", "--seed", "1", "--workers", "1",
               "--max-time", str(BUDGET), "--request-timeout", "10", "--no-color"]  # fmt: skip
    values = {"NUSEAL_SCHEMATHESIS_KEY": key, "NUSEAL_SCHEMATHESIS_SHA256": hashlib.sha256(pki.leaf.der).hexdigest()}
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=BUDGET * 4, check=False,
                          env=os.environ | values)  # fmt: skip
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    selected = re.search(r"Selected: (\d+)/", report)
    assert selected is not None and int(selected[1]) >= 25, report  # every JSON, V3 and V2 GET operation
    assert f"Tested: {selected[1]}" in report and " passed" in report  # none left out
    assert "Authentication failed" not in report, report  # the governance GETs were really exercised
