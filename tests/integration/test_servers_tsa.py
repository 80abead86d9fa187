"""nuseal's TSA over real HTTP: ``tsa.make_server`` and the session ``tsa_server`` fixture."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from asn1crypto import tsp
from tests.support.servers import LoopbackServer
from tests.support.servers import timestamp_request as make_request

from nuseal.timestamp.tsa import MAX_REQUEST_BYTES, TimestampAuthority, TimeStampResponse, make_server

HEADERS = {"Content-Type": "application/timestamp-query"}


@pytest.fixture
def nuseal_tsa_url(tsa_authority: TimestampAuthority) -> Iterator[str]:
    server = make_server(tsa_authority, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_make_server_grants_over_http(nuseal_tsa_url: str) -> None:
    response = httpx.post(nuseal_tsa_url, content=make_request(nonce=7), headers=HEADERS)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/timestamp-reply"
    parsed = TimeStampResponse.load(response.content)
    assert parsed["status"]["status"].native == "granted"
    tst = parsed["time_stamp_token"]["content"]["encap_content_info"]["content"].parsed
    assert tst["nonce"].native == 7


def test_make_server_http_errors(nuseal_tsa_url: str) -> None:
    assert httpx.get(nuseal_tsa_url).status_code == 405
    assert httpx.post(nuseal_tsa_url, content=b"x", headers={"Content-Type": "text/plain"}).status_code == 415
    big = b"\x00" * (MAX_REQUEST_BYTES + 1)
    assert httpx.post(nuseal_tsa_url, content=big, headers=HEADERS).status_code == 413
    garbage = httpx.post(nuseal_tsa_url, content=b"garbage", headers=HEADERS)
    assert garbage.status_code == 200
    assert TimeStampResponse.load(garbage.content)["status"]["status"].native == "rejection"


def test_openssl_query_through_http_verifies(nuseal_tsa_url: str, pki_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data.bin"
    data.write_bytes(b"payload")
    query = tmp_path / "q.tsq"
    subprocess.run(["openssl", "ts", "-query", "-data", str(data), "-sha512", "-cert", "-out", str(query)],
                   check=True, capture_output=True)  # fmt: skip
    reply = tmp_path / "r.tsr"
    reply.write_bytes(httpx.post(nuseal_tsa_url, content=query.read_bytes(), headers=HEADERS).content)
    result = subprocess.run(
        ["openssl", "ts", "-verify", "-queryfile", str(query), "-in", str(reply),
         "-CAfile", str(pki_dir / "root.pem"), "-untrusted", str(pki_dir / "intermediate.pem")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert "Verification: OK" in result.stdout, result.stderr


def test_session_tsa_server_fixture(tsa_server: LoopbackServer) -> None:
    response = httpx.post(tsa_server.url, content=make_request(), headers=HEADERS)
    assert tsp.TimeStampResp.load(response.content)["status"]["status"].native == "granted"
    with tsa_server.stopped(), pytest.raises(httpx.ConnectError):
        httpx.post(tsa_server.url, content=make_request(), headers=HEADERS, timeout=2)
    assert httpx.post(tsa_server.url, content=make_request(), headers=HEADERS).status_code == 200
