"""Repository signing (primary and countersignature) and signature removal."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.support.pki import IssuedCert, TestPki
from tests.unit.sign.helpers import (
    LocalTimestamper,
    make_package,
    package_bytes_without_signature,
    signature_value,
    signed_part,
    signer_for,
)

from nuseal import oids
from nuseal.cms import build
from nuseal.cms.parse import load_primary_signature
from nuseal.codes import NuCode
from nuseal.errors import SigningError
from nuseal.sign.author import AuthorSignRequest, sign_package
from nuseal.sign.removal import Removal, remove_signature
from nuseal.sign.repository import RepositorySignRequest, repo_sign_package

URL = "https://feed.example/v3/index.json"


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="session")
def repository_cert(pki: TestPki) -> IssuedCert:
    return pki.issue_leaf("sign-tests-repository")


@pytest.fixture
def repo_request(repository_cert: IssuedCert) -> RepositorySignRequest:
    return RepositorySignRequest(signer_for(repository_cert), URL, ("alice", "bob"))


def author_signed(pki: TestPki, path: Path) -> Path:
    make_package(path)
    sign_package(
        path, path, AuthorSignRequest(signer_for(pki.leaf)), timestamper=LocalTimestamper(pki.tsa), now=now()
    )
    return path


def test_unsigned_package_gets_a_repository_primary_signature(
    pki: TestPki, tmp_path: Path, repo_request: RepositorySignRequest
) -> None:
    src = make_package(tmp_path / "a.nupkg")
    original = src.read_bytes()
    result = repo_sign_package(src, src, repo_request, timestamper=LocalTimestamper(pki.tsa), now=now())
    assert result.kind == "repository"
    loaded = load_primary_signature(signed_part(src))
    assert (loaded.kind.value, loaded.service_index_url, tuple(loaded.owners)) == (
        "repository",
        URL,
        ("alice", "bob"),
    )
    assert package_bytes_without_signature(src) == original


def test_author_signed_package_gets_a_timestamped_countersignature(
    pki: TestPki, tmp_path: Path, repo_request: RepositorySignRequest
) -> None:
    src = author_signed(pki, tmp_path / "a.nupkg")
    before = signed_part(src)
    unsigned = package_bytes_without_signature(src)
    stamper = LocalTimestamper(pki.tsa)
    result = repo_sign_package(src, src, repo_request, timestamper=stamper, now=now())
    assert result.kind == "repository-countersignature" and result.timestamped
    after = signed_part(src)
    assert signature_value(after) == signature_value(before)  # the author signature is untouched
    assert package_bytes_without_signature(src) == unsigned
    counter = load_primary_signature(after).countersignature()
    assert counter is not None
    assert counter.service_index_url == URL
    # The countersignature's own timestamp covers the countersignature value.
    assert len(counter.signer.timestamp_tokens) == 1
    assert hashlib.sha256(counter.signer.signature_value).digest() in counter.signer.timestamp_tokens[0]
    assert repo_request.signer.certificate in load_primary_signature(after).certificates


def test_second_countersignature_is_nu3032(
    pki: TestPki, tmp_path: Path, repo_request: RepositorySignRequest
) -> None:
    src = author_signed(pki, tmp_path / "a.nupkg")
    repo_sign_package(src, src, repo_request, timestamper=None, now=now())
    once = src.read_bytes()
    with pytest.raises(SigningError) as caught:
        repo_sign_package(src, src, repo_request, timestamper=None, now=now())
    assert caught.value.code is NuCode.NU3032
    assert src.read_bytes() == once


def test_repository_primary_cannot_be_countersigned_nu3033(
    pki: TestPki, tmp_path: Path, repo_request: RepositorySignRequest
) -> None:
    src = make_package(tmp_path / "a.nupkg")
    repo_sign_package(src, src, repo_request, timestamper=None, now=now())
    with pytest.raises(SigningError) as caught:
        repo_sign_package(src, src, repo_request, timestamper=None, now=now())
    assert caught.value.code is NuCode.NU3033


@pytest.mark.parametrize(
    ("url", "owners"),
    [("http://feed.example/v3/index.json", ()), ("HTTPS://feed.example/index.json", ()), (URL, ("a", " "))],
)
def test_bad_url_or_owner_is_refused_before_anything_is_written(
    pki: TestPki, tmp_path: Path, url: str, owners: tuple[str, ...]
) -> None:
    src = make_package(tmp_path / "a.nupkg")
    original = src.read_bytes()
    bad = RepositorySignRequest(signer_for(pki.leaf), url, owners)
    with pytest.raises(SigningError) as caught:
        repo_sign_package(src, src, bad, timestamper=None, now=now())
    assert caught.value.code is NuCode.NU3001
    assert src.read_bytes() == original


def test_remove_signature_restores_the_unsigned_package(pki: TestPki, tmp_path: Path) -> None:
    src = make_package(tmp_path / "a.nupkg")
    original = src.read_bytes()
    author_signed(pki, src)
    assert remove_signature(src) is Removal.SIGNATURE_REMOVED
    assert src.read_bytes() == original
    with pytest.raises(SigningError) as caught:
        remove_signature(src)
    assert caught.value.code is NuCode.NU3004


def test_remove_repository_only_strips_countersignature(
    pki: TestPki, tmp_path: Path, repo_request: RepositorySignRequest
) -> None:
    src = author_signed(pki, tmp_path / "a.nupkg")
    author_only = signed_part(src)
    assert remove_signature(src, repository_only=True, now=now()) is Removal.NOTHING_TO_REMOVE
    repo_sign_package(src, src, repo_request, timestamper=None, now=now())
    assert remove_signature(src, repository_only=True, now=now()) is Removal.COUNTERSIGNATURES_REMOVED
    stripped = signed_part(src)
    assert build.repository_countersigner_count(stripped) == 0
    assert signature_value(stripped) == signature_value(author_only)
    assert oids.PROOF_OF_ORIGIN in build.primary_commitments(stripped)


def test_remove_repository_only_drops_a_repository_primary(
    pki: TestPki, tmp_path: Path, repo_request: RepositorySignRequest
) -> None:
    src = make_package(tmp_path / "a.nupkg")
    original = src.read_bytes()
    repo_sign_package(src, src, repo_request, timestamper=None, now=now())
    assert remove_signature(src, repository_only=True) is Removal.SIGNATURE_REMOVED
    assert src.read_bytes() == original
