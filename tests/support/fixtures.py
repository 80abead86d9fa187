"""Session fixtures for the test PKI and the loopback servers (loaded through ``pytest_plugins``).

Server fixtures are session-scoped and already started; a test that takes one down uses
``with server.stopped():`` (or ``answering(status)``) so the next test finds it running again.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from nuseal.timestamp.tsa import TimestampAuthority
from tests.support.pki import TestPki
from tests.support.servers import LoopbackServer, crl_responder, ocsp_responder, tsa_responder
from tests.support.signed_packages import Packages, build_packages


@pytest.fixture(scope="session")
def pki() -> Iterator[TestPki]:
    """The session's test PKI (root -> intermediate -> leaf, TSA, OCSP responder, bad variants)."""
    built = TestPki()
    yield built
    built.ports.close()


@pytest.fixture(scope="session")
def pki_dir(pki: TestPki, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every PKI certificate as ``<name>.pem`` plus ``<name>.key.pem`` in one folder (for openssl)."""
    return pki.write_pems(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def crl_server(pki: TestPki) -> Iterator[LoopbackServer]:
    """Serves ``/<ca>.crl`` (fresh DER CRLs) and ``/<ca>.cer`` at the URLs in the PKI's certificates."""
    server = LoopbackServer("crl", crl_responder(pki), pki.ports.take("crl")).start()
    yield server
    server.close()


@pytest.fixture(scope="session")
def ocsp_server(pki: TestPki) -> Iterator[LoopbackServer]:
    """The RFC 6960 responder at the AIA-OCSP URL of the PKI's certificates."""
    server = LoopbackServer("ocsp", ocsp_responder(pki), pki.ports.take("ocsp")).start()
    yield server
    server.close()


@pytest.fixture
def running_servers(crl_server: LoopbackServer, ocsp_server: LoopbackServer) -> None:
    """Both revocation servers up (function-scoped convenience for tests that need revocation online)."""
    assert crl_server.running and ocsp_server.running


def _utc_now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture(scope="session")
def tsa_authority(pki: TestPki) -> TimestampAuthority:
    """nuseal's RFC 3161 TSA with the PKI's ``tsa`` certificate, on the real clock."""
    return TimestampAuthority(pki.tsa.cert, pki.tsa.key, pki.tsa.chain[1:], clock=_utc_now)


@pytest.fixture(scope="session")
def tsa_server(pki: TestPki, tsa_authority: TimestampAuthority) -> Iterator[LoopbackServer]:
    """``tsa_authority`` over HTTP at ``pki.tsa_url`` (POST application/timestamp-query)."""
    server = LoopbackServer("tsa", tsa_responder(tsa_authority.respond), pki.ports.take("tsa")).start()
    yield server
    server.close()


@pytest.fixture(scope="session")
def signed_packages(pki: TestPki, tmp_path_factory: pytest.TempPathFactory) -> Packages:
    """Packages signed with the PKI (and an in-process TSA at ``pki.now``), one per policy-relevant situation."""
    return build_packages(pki, tmp_path_factory.mktemp("signed-packages"))
