"""Repository signing (primary and countersignature) and signature removal."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import cms
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
from nuseal.cms import build, countersign
from nuseal.cms.parse import load_primary_signature
from nuseal.codes import NuCode
from nuseal.errors import SigningError
from nuseal.package import archive
from nuseal.sign.author import AuthorSignRequest, sign_package
from nuseal.sign.common import SignOptions
from nuseal.sign.removal import Removal, remove_signature
from nuseal.sign.repository import ReadSignature, RepositorySignRequest, read_signature_entry, repo_sign_package
from nuseal.x509 import certs

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


def _certificate_count(signature: bytes) -> int:
    return len(load_primary_signature(signature).certificates)


@pytest.fixture(scope="session")
def sibling_ca_cert(pki: TestPki) -> IssuedCert:
    """A code-signing leaf under another intermediate of the author's root."""
    ca = pki._issue("sign-tests-sibling-intermediate", issuer=pki.root, ca=True, not_before=pki.now - timedelta(days=1))
    return pki.issue_leaf("sign-tests-sibling-repository", issuer=ca)


@pytest.mark.parametrize(("shared", "added"), [("intermediate", 1), ("root", 2), ("nothing", 2)],
                         ids=["shared-intermediate-and-root", "shared-root", "disjoint-chains"])  # fmt: skip
def test_countersigning_then_removing_it_gives_back_the_author_signed_bytes(
    pki: TestPki, tmp_path: Path, repository_cert: IssuedCert, sibling_ca_cert: IssuedCert, shared: str, added: int
) -> None:
    # The repository certificate is under the author's intermediate and root, under another intermediate of the
    # same root, or under another root entirely.
    cert = {"intermediate": repository_cert, "root": sibling_ca_cert, "nothing": pki.untrusted_leaf}[shared]
    src = author_signed(pki, tmp_path / "a.nupkg")
    author_bytes = src.read_bytes()
    author_certificates = _certificate_count(signed_part(src))
    later = now() + timedelta(hours=3, seconds=7)  # the countersigning clock is not the author's
    request = RepositorySignRequest(signer_for(cert), URL, ("alice",))
    repo_sign_package(src, src, request, timestamper=LocalTimestamper(pki.tsa), now=later)
    countersigned = signed_part(src)
    assert build.repository_countersigner_count(countersigned) == 1
    # Only the repository certificates not already present are added (none of the shared ones).
    assert _certificate_count(countersigned) == author_certificates + added
    assert package_bytes_without_signature(src) == package_bytes_without_signature_of(author_bytes, tmp_path)
    assert remove_signature(src, repository_only=True, now=later) is Removal.COUNTERSIGNATURES_REMOVED
    assert src.read_bytes() == author_bytes


def test_an_unsorted_certificate_set_keeps_its_order_and_comes_back_exactly(
    pki: TestPki, tmp_path: Path
) -> None:
    src = author_signed(pki, tmp_path / "a.nupkg")
    # Another tool's author signature, its certificates root first (not DER order; they are not signed).
    info = cms.ContentInfo.load(signed_part(src))
    reordered = [certs.der(c) for c in load_primary_signature(signed_part(src)).certificates][::-1]
    assert reordered != sorted(reordered)
    info["content"]["certificates"] = cms.CertificateSet(contents=b"".join(reordered))
    archive.insert_signature(src, src, info.dump(), when=datetime(2024, 5, 6, 7, 8, 10), replace_signature=True)
    author_bytes = src.read_bytes()
    repo_sign_package(src, src, RepositorySignRequest(signer_for(pki.untrusted_leaf), URL), timestamper=None,
                      now=now())  # fmt: skip
    after = [certs.der(c) for c in load_primary_signature(signed_part(src)).certificates]
    assert after[: len(reordered)] == reordered
    assert after[len(reordered):] == [certs.der(pki.untrusted_leaf.cert), certs.der(pki.untrusted_root.cert)]
    assert remove_signature(src, repository_only=True) is Removal.COUNTERSIGNATURES_REMOVED
    assert src.read_bytes() == author_bytes


def package_bytes_without_signature_of(data: bytes, folder: Path) -> bytes:
    copy = folder / "copy.nupkg"
    copy.write_bytes(data)
    return package_bytes_without_signature(copy)


def test_a_sorted_certificate_set_stays_sorted_and_comes_back_exactly(
    pki: TestPki, tmp_path: Path, repository_cert: IssuedCert
) -> None:
    src = author_signed(pki, tmp_path / "a.nupkg")
    author_bytes = src.read_bytes()
    ders = [certs.der(c) for c in load_primary_signature(signed_part(src)).certificates]
    assert ders == sorted(ders)  # nuseal writes the SET OF DER-sorted, as .NET does
    repo_sign_package(src, src, RepositorySignRequest(signer_for(pki.untrusted_leaf), URL), timestamper=None,
                      now=now())  # fmt: skip
    after = [certs.der(c) for c in load_primary_signature(signed_part(src)).certificates]
    assert after == sorted(after) and len(after) == len(ders) + 2  # as nuget.org's countersigned packages
    remove_signature(src, repository_only=True)
    assert src.read_bytes() == author_bytes


def test_a_signature_read_by_the_caller_gives_the_same_facts_and_bytes(
    pki: TestPki, tmp_path: Path, repository_cert: IssuedCert
) -> None:
    # sign_for_feed hands repo_sign_package the signature it parsed: the facts taken from that parse must be the
    # ones repo_sign_package reads itself, and the output the same bytes (the countersignature, then a re-sign).
    later = now() + timedelta(hours=1)
    request = RepositorySignRequest(signer_for(repository_cert), URL, ("alice",), SignOptions(overwrite=True))
    author = author_signed(pki, tmp_path / "a.nupkg")
    countersigned = tmp_path / "c.nupkg"
    repo_sign_package(author, countersigned, request, timestamper=None, now=later)
    for src in (author, countersigned):
        raw = signed_part(src)
        read = ReadSignature.of(raw, None, load_primary_signature(raw))
        assert read.facts == build.primary_facts(raw)
        assert read.facts.repository_countersigners == (src == countersigned)
        mine, theirs = tmp_path / "mine.nupkg", tmp_path / "theirs.nupkg"
        entry_time = read_signature_entry(src)
        assert entry_time is not None
        repo_sign_package(src, mine, request, timestamper=None, now=later)
        repo_sign_package(src, theirs, request, timestamper=None, now=later,
                          read=ReadSignature.of(raw, entry_time[1], load_primary_signature(raw)))  # fmt: skip
        assert mine.read_bytes() == theirs.read_bytes()


def test_re_signing_writes_the_same_bytes_as_the_asn1crypto_edit(
    pki: TestPki, tmp_path: Path, repository_cert: IssuedCert, sibling_ca_cert: IssuedCert,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # A rotation's re-sign of a fixed input (author-signed, carrying the old certificate's countersignature), with a
    # fixed key and time and no timestamp (RSA PKCS#1 v1.5 is deterministic): the countersignature edited by DER
    # offsets (nuseal.cms.countersign) and by asn1crypto (how nuseal edited it before) give the same package bytes,
    # and so does taking the new countersignature off again.
    src = author_signed(pki, tmp_path / "a.nupkg")
    repo_sign_package(src, src, RepositorySignRequest(signer_for(repository_cert), URL, ("alice",)),
                      timestamper=LocalTimestamper(pki.tsa), now=pki.now)  # fmt: skip
    request = RepositorySignRequest(signer_for(sibling_ca_cert), URL, ("alice", "Bob"), SignOptions(overwrite=True))
    written: dict[str, tuple[bytes, bytes]] = {}
    for path in ("der", "asn1"):
        if path == "asn1":
            monkeypatch.setattr(countersign, "add_countersignature", build.add_countersignature_asn1)
            monkeypatch.setattr(countersign, "strip_repository_countersignatures",
                                build.strip_repository_countersignatures_asn1)  # fmt: skip
        dst, removed = tmp_path / f"{path}.nupkg", tmp_path / f"{path}.removed.nupkg"
        repo_sign_package(src, dst, request, timestamper=None, now=pki.now + timedelta(hours=2))
        assert remove_signature(dst, repository_only=True, dst=removed) is Removal.COUNTERSIGNATURES_REMOVED
        written[path] = dst.read_bytes(), removed.read_bytes()
    assert written["der"] == written["asn1"]
    assert build.repository_countersigner_count(signed_part(tmp_path / "der.nupkg")) == 1
    assert written["der"][0] != src.read_bytes()  # the old countersignature was replaced, not kept
