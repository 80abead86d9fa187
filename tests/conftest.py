"""Shared pytest fixtures: where the shared test vectors live."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = [
    "tests.support.fixtures",
    # Real parts (tests/support/README.md): each fixture starts its server only when a test asks for it.
    "tests.support.postgres",
    "tests.support.s3",
    "tests.support.redis_server",
    "tests.support.nugetexe",
    "tests.support.nginx",
    "tests.support.server_fixtures",
]

REPO = Path(__file__).resolve().parent.parent
VECTORS = (REPO.parent / "shared" / "vectors").resolve()


@pytest.fixture(scope="session")
def vectors() -> Path:
    """The read-only ``../shared/vectors`` folder; fails loudly when it is missing."""
    if not (VECTORS / "EXPECTED.tsv").is_file():
        pytest.fail(f"test vectors not found at {VECTORS}: clone the repository next to shared/")
    return VECTORS
