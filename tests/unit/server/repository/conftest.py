"""Fixtures for repository signing tests: a signing feed on both backends (SQLite + folder, PostgreSQL + S3)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.pki import TestPki
from tests.support.repository_signing import SigningFeed, s3_storage, signing_feed

from nuseal.server.db.session import Database


@pytest.fixture
def feed(server_db: Database, pki: TestPki, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[SigningFeed]:
    """A feed with an active repository certificate, on SQLite + a folder and on PostgreSQL + S3."""
    extra = s3_storage(request.getfixturevalue("s3_bucket")) if server_db.dialect == "postgresql" else {}
    with signing_feed(server_db, pki, tmp_path / "feed", **extra) as made:
        made.add_certificate()
        yield made
