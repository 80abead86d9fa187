"""``sign_for_feed``: the feed's repository signing step (server.md §B.2 step 4, §B.5), on real packages signed
with the test PKI, verified back with the library."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import re
from pathlib import Path

import pytest
from asn1crypto import cms
from tests.support.pki import TestPki
from tests.support.repository_signing import SERVICE_INDEX, SigningFeed, signatures_of, signing_feed
from tests.unit.sign.helpers import signer_for

from nuseal import oids
from nuseal.cms import build, countersign, encode
from nuseal.cms.build import PrimarySignatureBuilder
from nuseal.cms.parse import load_primary_signature
from nuseal.enums import SignatureKind
from nuseal.package import archive, hashing, zipformat
from nuseal.record import replace as record_replace
from nuseal.server.db.session import Database
from nuseal.server.services.repository_keys import RepositoryCert
from nuseal.server.services.repository_signing import (
    ONLY_AUTHOR_SIGNATURES,
    FeedSignatureAction,
    RepositorySigningError,
    sign_for_feed,
    sort_owners,
)
from nuseal.sign.common import SignOptions, sign_primary
from nuseal.sign.repository import read_signature
from nuseal.verify.result import PackageVerdict


def _cert(feed: SigningFeed, sha256: str | None = None) -> RepositoryCert:
    from nuseal.server.services import repository_certificates

    with feed.ctx.db.reading() as session:
        row = (repository_certificates.find_certificate(session, sha256) if sha256
               else repository_certificates.active_certificate(session))  # fmt: skip
        assert row is not None
        return feed.keyring.certificate(row)


def _sign(feed: SigningFeed, src: Path, *, owners: tuple[str, ...] = ("alice",), url: str = SERVICE_INDEX,
          cert: RepositoryCert | None = None, dst: Path | None = None):  # type: ignore[no-untyped-def]
    cert = cert or _cert(feed)
    dst = dst or src.with_name(src.stem + ".out.nupkg")
    result = sign_for_feed(src, dst, owners=owners, service_index_url=url, repo_cert=cert,
                           timestamper=feed.keyring.timestamper(cert), now=feed.clock())  # fmt: skip
    return result, dst


def _verdict(feed: SigningFeed, path: Path, cert: RepositoryCert) -> PackageVerdict:
    from nuseal.server.services.repository_signing import _verify

    return _verify(path, cert, feed.clock())


def test_an_unsigned_package_gets_a_repository_primary_signature(feed: SigningFeed, tmp_path: Path) -> None:
    src = feed.build("Contoso.Lib", "1.0.0", author_signed=False)
    result, dst = _sign(feed, src, owners=("zed", "Alice", "bob"))
    cert = _cert(feed)
    assert result.action is FeedSignatureAction.PRIMARY and result.cert_sha256 == cert.sha256
    assert not result.author_signed and result.stripped == ()
    carried = signatures_of(dst.read_bytes(), tmp_path)
    assert carried.primary is SignatureKind.REPOSITORY and carried.repository_cert == cert.sha256
    assert carried.owners == ("Alice", "bob", "zed")  # sorted case-insensitively, as nuget.org writes them
    assert carried.service_index_url == SERVICE_INDEX
    assert result.sha512 == hashing.content_hash(dst) and result.size == dst.stat().st_size
    verdict = _verdict(feed, dst, cert)
    assert verdict.valid, verdict.findings
    # Lock files pin NuGet's content hash, which leaves the signature out: signing did not change it.
    assert verdict.content_hash == hashing.content_hash(src)


def test_an_author_signed_package_gets_a_countersignature_and_keeps_its_author_signature(
    feed: SigningFeed, tmp_path: Path
) -> None:
    src = feed.build("Contoso.Lib", "1.0.0", author_signed=True)
    before = signatures_of(src.read_bytes(), tmp_path)
    result, dst = _sign(feed, src)
    after = signatures_of(dst.read_bytes(), tmp_path)
    assert result.action is FeedSignatureAction.COUNTERSIGNATURE and result.author_signed
    assert after.primary is SignatureKind.AUTHOR and after.repository_signatures == 1
    assert after.repository_cert == result.cert_sha256
    assert after.author_signature_value == before.author_signature_value  # the author signature is untouched
    assert _verdict(feed, dst, _cert(feed)).content_hash == _verdict_unsigned_hash(src)


def _verdict_unsigned_hash(path: Path) -> str:
    """NuGet's content hash of a signed package: SHA-512 of the package without its signature entry."""
    with path.open("rb") as f:
        layout = zipformat.read_layout(f)
        entry = zipformat.find_signature_entry(f, layout)
        return base64.b64encode(hashing.plan_digests(f, hashing.unsigned_view_plan(f, layout, entry),
                                                     ("sha512",))[0]).decode()  # fmt: skip


def test_owners_are_sorted_case_insensitively_and_deduplicated() -> None:
    assert sort_owners(["b", "A", "a", "B", "c", "a"]) == ("A", "a", "B", "b", "c")


@pytest.mark.parametrize("author_signed", [False, True], ids=["primary", "countersignature"])
def test_this_feeds_valid_signature_is_kept_byte_for_byte(feed: SigningFeed, author_signed: bool) -> None:
    src = feed.build("Contoso.Lib", "1.0.0", author_signed=author_signed)
    _, signed = _sign(feed, src)
    again, dst = _sign(feed, signed)
    assert again.action is FeedSignatureAction.KEPT
    assert dst.read_bytes() == signed.read_bytes()
    in_place, _ = _sign(feed, signed, dst=signed)  # src == dst: nothing to copy
    assert in_place.action is FeedSignatureAction.KEPT and signed.read_bytes() == dst.read_bytes()


@pytest.mark.parametrize("author_signed", [False, True], ids=["primary", "countersignature"])
def test_a_repository_signature_for_another_service_index_is_replaced(
    feed: SigningFeed, tmp_path: Path, author_signed: bool
) -> None:
    src = feed.build("Contoso.Lib", "1.0.0", author_signed=author_signed)
    _, foreign = _sign(feed, src, url="https://other-feed.example/v3/index.json")
    result, dst = _sign(feed, foreign)
    assert result.action is not FeedSignatureAction.KEPT
    assert result.stripped and "other-feed.example" in result.stripped[0]
    carried = signatures_of(dst.read_bytes(), tmp_path)
    assert (carried.service_index_url, carried.repository_signatures) == (SERVICE_INDEX, 1)


def test_a_repository_signature_by_another_certificate_is_replaced(feed: SigningFeed, tmp_path: Path) -> None:
    other = feed.add_certificate(activate=False)
    src = feed.build("Contoso.Lib", "1.0.0", author_signed=True)
    _, by_other = _sign(feed, src, cert=_cert(feed, other))
    assert signatures_of(by_other.read_bytes(), tmp_path).repository_cert == other
    result, dst = _sign(feed, by_other)
    carried = signatures_of(dst.read_bytes(), tmp_path)
    assert result.stripped and other in result.stripped[0]
    assert carried.repository_cert == _cert(feed).sha256 and carried.repository_signatures == 1


def test_two_repository_countersignatures_are_both_stripped(feed: SigningFeed, tmp_path: Path) -> None:
    other = feed.add_certificate(activate=False)
    author = feed.build("Contoso.Lib", "1.0.0", author_signed=True)
    _, one = _sign(feed, author, url="https://one.example/v3/index.json")
    _, two = _sign(feed, author, cert=_cert(feed, other), dst=tmp_path / "two.nupkg")
    first, second = read_signature(one), read_signature(two)
    assert first is not None and second is not None
    counter = next(a for a in cms.ContentInfo.load(second)["content"]["signer_infos"][0]["unsigned_attrs"]
                   if a["type"].dotted == oids.COUNTERSIGNATURE)["values"][0].dump()  # fmt: skip
    doubled = tmp_path / "doubled.nupkg"
    archive.insert_signature(one, doubled, countersign.add_countersignature(first, counter, []), replace_signature=True)
    assert build.repository_countersigner_count(read_signature(doubled) or b"") == 2
    result, dst = _sign(feed, doubled)
    assert result.stripped == ("2 repository countersignatures",)
    assert signatures_of(dst.read_bytes(), tmp_path).repository_signatures == 1
    assert _verdict(feed, dst, _cert(feed)).valid


class _NoCommitmentType(PrimarySignatureBuilder):
    """A primary signature without commitment-type-indication: neither author nor repository (kind unknown)."""

    def signed_attributes(self) -> bytes:
        certificate = self._require_signer()
        assert self.content is not None
        digest = hashlib.new(self.hash_algorithm, self.content).digest()
        marker = build.encode_attribute(oids.COMMITMENT_TYPE_INDICATION, b"")[:16]
        attributes = [a for a in self._common_attributes(certificate, b"", digest) if not a.startswith(marker)]
        return encode.set_of(*attributes)


def test_a_primary_signature_that_is_neither_author_nor_repository_is_refused(feed: SigningFeed,
                                                                               pki: TestPki) -> None:  # fmt: skip
    src = feed.build("Contoso.Lib", "1.0.0", author_signed=False)
    sign_primary(src, src, _NoCommitmentType(), signer_for(pki.leaf), SignOptions(), timestamper=None,
                 now=feed.clock(), kind="unknown")  # fmt: skip
    raw = read_signature(src)
    assert raw is not None and load_primary_signature(raw).kind is SignatureKind.UNKNOWN
    with pytest.raises(RepositorySigningError, match=re.escape(ONLY_AUTHOR_SIGNATURES)):
        _sign(feed, src)


def test_an_http_service_index_is_refused(feed: SigningFeed) -> None:
    src = feed.build("Contoso.Lib", "1.0.0", author_signed=False)
    with pytest.raises(RepositorySigningError, match="NuGet requires an https URL"):
        _sign(feed, src, url="http://feed.example/v3/index.json")
    with pytest.raises(RepositorySigningError, match="names the package owners"):
        _sign(feed, src, owners=())


def test_the_output_is_verified_before_it_is_returned(server_db: Database, pki: TestPki, tmp_path: Path) -> None:
    """A TSA the feed does not trust for timestamping: the signed package does not verify, nothing is returned."""
    other_roots = tmp_path / "other.pem"
    other_roots.write_bytes(pki.untrusted_root.pem)
    with signing_feed(server_db, pki, tmp_path / "feed") as feed:
        feed.add_certificate()
        cert = _cert(feed)
        narrowed = dataclasses.replace(cert, trust_store=record_replace(
            cert.trust_store, timestamping=(pki.untrusted_root.cert,)))  # fmt: skip
        src = feed.build("Contoso.Lib", "1.0.0", author_signed=False)
        dst = tmp_path / "out.nupkg"
        with pytest.raises(RepositorySigningError, match="did not verify: NU3028") as caught:
            sign_for_feed(src, dst, owners=["alice"], service_index_url=SERVICE_INDEX, repo_cert=narrowed,
                          timestamper=feed.keyring.timestamper(cert), now=feed.clock())  # fmt: skip
        assert caught.value.findings and caught.value.findings[0].code.value == "NU3028"


def test_a_zip64_or_unreadable_package_is_a_signing_error(feed: SigningFeed, tmp_path: Path) -> None:
    bad = tmp_path / "bad.nupkg"
    bad.write_bytes(b"not a zip at all")
    with pytest.raises(RepositorySigningError, match="cannot read the package signature"):
        _sign(feed, bad)
