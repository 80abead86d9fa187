"""Editing an encoded signature (adding a countersignature or a timestamp, stripping repository countersignatures)
at every length mod 256 of its parts.

asn1crypto takes a header ending in 0x80 (a definite length of 128, 384, ...) for an indefinite length and re-encodes
that whole subtree; with ``asn1crypto.tsp`` imported (as in every feed process) that dropped the DEFAULT
``hashAlgorithm`` NuGet writes in ESSCertIDv2, and on a signature with timestamp tokens it never finished (the
feed's validation job spun at 100% CPU for some service index URL lengths). The edit must copy every part it does
not change byte for byte, whatever the lengths.
"""

from __future__ import annotations

from datetime import timedelta

import asn1crypto.tsp  # noqa: F401  the feed's state: asn1crypto then types ESSCertIDv2 and TSTInfo
import pytest
from tests.support.pki import IssuedCert, TestPki

from nuseal.cms import build, countersign
from nuseal.cms.der import read_signed_data


def _primary(author: IssuedCert, pki: TestPki, content_length: int, timestamp: bytes | None = None) -> bytes:
    builder = (build.PrimarySignatureBuilder.author().with_signer(author.cert, author.chain)
               .with_signing_time(pki.now - timedelta(hours=1)).with_content(b"c" * content_length))  # fmt: skip
    return builder.build(b"\x5a" * 256, timestamp=timestamp)


def _countersigner(repository: IssuedCert, pki: TestPki, url_length: int, timestamp: bytes | None = None,
                   ) -> tuple[bytes, build.CountersignatureBuilder]:  # fmt: skip
    url = "https://" + "h" * url_length + "/v3/index.json"
    builder = (build.CountersignatureBuilder.repository(url, ("alice",)).with_signer(repository.cert, repository.chain)
               .with_signing_time(pki.now - timedelta(minutes=30)))  # fmt: skip
    return builder.build(b"\x5a" * 256, b"\x6b" * 256, timestamp=timestamp), builder


@pytest.fixture(scope="module")
def repository(pki: TestPki) -> IssuedCert:
    return pki.issue_leaf("feed-repo-lengths")


@pytest.mark.parametrize("content_length", range(100, 356, 1))
def test_countersigning_copies_what_it_does_not_change_at_every_length(
    pki: TestPki, repository: IssuedCert, content_length: int
) -> None:
    primary = _primary(pki.leaf, pki, content_length)
    countersigner, builder = _countersigner(repository, pki, content_length % 200 + 5)
    signed = countersign.add_countersignature(primary, countersigner, builder.embedded_chain())
    before, after = read_signed_data(primary), read_signed_data(signed)
    assert after.signer_infos[0].signed_attributes_der == before.signer_infos[0].signed_attributes_der
    assert after.content == before.content and set(before.certificates) <= set(after.certificates)
    assert countersigner in signed  # verbatim, ESSCertIDv2 hashAlgorithm included
    stripped = countersign.strip_repository_countersignatures(signed)
    kept = read_signed_data(stripped).signer_infos[0]
    assert kept.signed_attributes_der == before.signer_infos[0].signed_attributes_der
    assert countersigner not in stripped and build.repository_countersigner_count(stripped) == 0


@pytest.mark.parametrize("token_length", range(0, 256, 1))
def test_timestamping_copies_what_it_does_not_change_at_every_length(pki: TestPki, token_length: int) -> None:
    primary = _primary(pki.leaf, pki, 200)
    # A signature as a token: as deep as a real one (a signed SignerInfo inside), its length swept.
    token = _primary(pki.leaf, pki, token_length)
    stamped = build.add_timestamp(primary, token)
    assert token in stamped
    assert read_signed_data(stamped).signer_infos[0].signed_attributes_der == (
        read_signed_data(primary).signer_infos[0].signed_attributes_der)
