"""HttpTimestamper against the loopback TSA: success, HTTP errors, responder down, timeout."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import httpx
import pytest
from asn1crypto import cms
from tests.support.servers import LoopbackServer

from nuseal.errors import FetchError, TimestampError
from nuseal.timestamp.client import HttpTimestamper

SIGNATURE_VALUE = bytes(range(256))


def test_http_round_trip_verifies_with_openssl(tsa_server: LoopbackServer, pki_dir: Path, tmp_path: Path) -> None:
    token = HttpTimestamper(tsa_server.url).timestamp(SIGNATURE_VALUE, "SHA256")
    tst = cms.ContentInfo.load(token)["content"]["encap_content_info"]["content"].parsed
    assert tst["message_imprint"]["hashed_message"].native == hashlib.sha256(SIGNATURE_VALUE).digest()
    (tmp_path / "tok.der").write_bytes(token)
    (tmp_path / "data.bin").write_bytes(SIGNATURE_VALUE)
    result = subprocess.run(
        ["openssl", "ts", "-verify", "-data", str(tmp_path / "data.bin"), "-in", str(tmp_path / "tok.der"),
         "-token_in", "-CAfile", str(pki_dir / "root.pem"), "-untrusted", str(pki_dir / "intermediate.pem")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert "Verification: OK" in result.stdout, result.stderr


def test_injected_client_is_used(tsa_server: LoopbackServer) -> None:
    before = len(tsa_server.hits)
    with httpx.Client() as client:
        HttpTimestamper(tsa_server.url, client=client).timestamp(SIGNATURE_VALUE, "SHA512")
    assert tsa_server.hits[before:] == [("POST", "/")]


def test_http_error_status(tsa_server: LoopbackServer) -> None:
    with tsa_server.answering(503), pytest.raises(TimestampError) as caught:
        HttpTimestamper(tsa_server.url).timestamp(SIGNATURE_VALUE, "SHA256")
    assert caught.value.message == (
        "The timestamp service responded with HTTP status code '503' ('Service Unavailable')."
    )


def test_responder_down_is_a_fetch_error_naming_the_url(tsa_server: LoopbackServer) -> None:
    with tsa_server.stopped(), pytest.raises(FetchError, match=tsa_server.url.replace(".", r"\.")):
        HttpTimestamper(tsa_server.url, timeout=2).timestamp(SIGNATURE_VALUE, "SHA256")


def test_timeout_is_a_fetch_error(tsa_server: LoopbackServer) -> None:
    tsa_server.delay_seconds = 1.0
    try:
        with pytest.raises(FetchError, match=r"did not answer within 0\.2 seconds"):
            HttpTimestamper(tsa_server.url, timeout=0.2).timestamp(SIGNATURE_VALUE, "SHA256")
    finally:
        tsa_server.delay_seconds = 0.0
