"""Session fixtures for the test PKI and the loopback servers (loaded through ``pytest_plugins``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.pki import TestPki


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
