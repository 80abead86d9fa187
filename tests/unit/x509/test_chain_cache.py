"""The chain cache (``nuseal.x509.chain.chain_cache``): a hit returns exactly what a build would, and nothing that
could differ (another certificate, other anchors, another usage, another time-validity answer, a revocation) is
ever served from it."""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from tests.conftest import VECTORS
from tests.support.pki import TestPki

from nuseal import oids
from nuseal.enums import RevocationMode
from nuseal.verify.engine import TrustContext, verify_package
from nuseal.verify.policy import VerificationPolicy
from nuseal.x509.chain import ChainResult, ChainStatus, build_chain, chain_cache
from nuseal.x509.revocation import RevocationChecker, RevocationResult
from nuseal.x509.roots import default_trust_store

S = ChainStatus


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    chain_cache.clear()
    chain_cache.enabled = True
    yield
    chain_cache.clear()
    chain_cache.enabled = True


def _build(leaf: x509.Certificate, extra: Sequence[x509.Certificate], anchors: Sequence[x509.Certificate],
           at: datetime, *, usage: str = oids.CODE_SIGNING_EKU, revocation: RevocationChecker | None = None,
           cached: bool = True) -> ChainResult:
    chain_cache.enabled = cached
    try:
        return build_chain(leaf, extra_certificates=extra, trust_anchors=anchors, usage_eku=usage,
                           verification_time=at, revocation=revocation)  # fmt: skip
    finally:
        chain_cache.enabled = True


def _facts(result: ChainResult) -> list[tuple[bytes, ChainStatus, Any]]:
    return [(e.certificate.tbs_certificate_bytes, e.status, e.revocation) for e in result.elements]


class FixedAnswer(RevocationChecker):
    def __init__(self, result: RevocationResult) -> None:
        super().__init__(RevocationMode.OFFLINE)
        self.result = result
        self.asked = 0

    def check(self, certificate: x509.Certificate, issuer: x509.Certificate, at: datetime) -> RevocationResult:
        self.asked += 1
        return self.result


def test_a_hit_is_what_a_build_gives(pki: TestPki) -> None:
    anchors = tuple(pki.trusted_roots)
    first = _build(pki.leaf.cert, pki.leaf.chain[1:2], anchors, pki.now)
    assert (chain_cache.hits, chain_cache.misses) == (0, 1)
    later = pki.now + timedelta(seconds=3)  # another timestamp's time, same validity answers
    again = _build(pki.leaf.cert, pki.leaf.chain[1:2], anchors, later)
    assert (chain_cache.hits, chain_cache.misses) == (1, 1)
    built = _build(pki.leaf.cert, pki.leaf.chain[1:2], anchors, later, cached=False)
    assert _facts(again) == _facts(built) == _facts(first)
    assert again.status == built.status == S.NO_ERROR


def test_another_leaf_is_not_served(pki: TestPki) -> None:
    anchors = tuple(pki.trusted_roots)
    _build(pki.leaf.cert, [pki.intermediate.cert], anchors, pki.now)
    other = _build(pki.wrong_eku_leaf.cert, [pki.intermediate.cert], anchors, pki.now)
    assert other.certificates[0] == pki.wrong_eku_leaf.cert
    assert S.NOT_VALID_FOR_USAGE in other.status
    assert chain_cache.hits == 0


def test_other_supplied_certificates_or_anchors_are_not_served(pki: TestPki) -> None:
    anchors = tuple(pki.trusted_roots)
    _build(pki.leaf.cert, [pki.intermediate.cert], anchors, pki.now)
    partial = _build(pki.leaf.cert, [], anchors, pki.now)  # no intermediate supplied this time
    assert S.PARTIAL_CHAIN in partial.status
    untrusted = _build(pki.leaf.cert, [pki.intermediate.cert, pki.root.cert], (pki.tsa.cert,), pki.now)
    assert not untrusted.trusted
    assert chain_cache.hits == 0
    assert _facts(untrusted) == _facts(_build(pki.leaf.cert, [pki.intermediate.cert, pki.root.cert],
                                              (pki.tsa.cert,), pki.now, cached=False))


def test_another_usage_is_not_served(pki: TestPki) -> None:
    anchors = tuple(pki.trusted_roots)
    code = _build(pki.leaf.cert, [pki.intermediate.cert], anchors, pki.now)
    stamp = _build(pki.leaf.cert, [pki.intermediate.cert], anchors, pki.now, usage=oids.TIME_STAMPING_EKU)
    assert S.NOT_VALID_FOR_USAGE not in code.status
    assert S.NOT_VALID_FOR_USAGE in stamp.status
    assert chain_cache.hits == 0


def test_a_time_that_changes_a_validity_answer_is_built_again(pki: TestPki) -> None:
    anchors = tuple(pki.trusted_roots)
    inside = _build(pki.leaf.cert, [pki.intermediate.cert], anchors, pki.now)
    assert S.NOT_TIME_VALID not in inside.status
    after = pki.leaf.cert.not_valid_after_utc + timedelta(seconds=1)
    expired = _build(pki.leaf.cert, [pki.intermediate.cert], anchors, after)
    assert S.NOT_TIME_VALID in expired.elements[0].status
    assert chain_cache.hits == 0
    assert _facts(expired) == _facts(_build(pki.leaf.cert, [pki.intermediate.cert], anchors, after, cached=False))
    # ... and back inside the window: the first entry was replaced, so this is a miss too, with the first answer.
    assert _facts(_build(pki.leaf.cert, [pki.intermediate.cert], anchors, pki.now)) == _facts(inside)


def test_revocation_is_asked_on_every_call(pki: TestPki) -> None:
    anchors = tuple(pki.trusted_roots)
    good = FixedAnswer(RevocationResult("good", "test"))
    first = _build(pki.leaf.cert, [pki.intermediate.cert], anchors, pki.now, revocation=good)
    assert first.status == S.NO_ERROR and good.asked == 2
    revoked = FixedAnswer(RevocationResult("revoked", "test", pki.now - timedelta(days=1), "keyCompromise"))
    second = _build(pki.leaf.cert, [pki.intermediate.cert], anchors, pki.now, revocation=revoked)
    assert chain_cache.hits == 1  # the path came from the cache, the revocation answers did not
    assert revoked.asked == 2
    assert S.REVOKED in second.elements[0].status and S.REVOKED in second.status
    assert second.elements[0].revocation == revoked.result


def test_a_revoked_certificate_of_the_test_pki_is_revoked_through_the_cache(pki: TestPki) -> None:
    anchors = tuple(pki.trusted_roots)
    answer = RevocationResult("revoked", "test", pki.now - timedelta(days=5), None)
    for _ in range(2):
        result = _build(pki.revoked_leaf.cert, [pki.intermediate.cert], anchors, pki.now,
                        revocation=FixedAnswer(answer))  # fmt: skip
        assert S.REVOKED in result.status
    assert chain_cache.hits == 1


def test_the_cache_is_bounded(pki: TestPki, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chain_cache, "size", 2)
    anchors = tuple(pki.trusted_roots)
    for leaf in (pki.leaf, pki.wrong_eku_leaf, pki.sha1_leaf, pki.lifetime_eku_leaf):
        _build(leaf.cert, [pki.intermediate.cert], anchors, pki.now)
    assert len(chain_cache._entries) == 2
    _build(pki.leaf.cert, [pki.intermediate.cert], anchors, pki.now)  # the oldest went first
    assert chain_cache.hits == 0


def _vector_rows() -> list[str]:
    expected = VECTORS / "EXPECTED.tsv"
    if not expected.is_file():
        return []
    with expected.open(newline="") as f:
        return [row["path"] for row in csv.DictReader(f, delimiter="\t")]


def test_verdicts_on_the_real_vectors_are_identical_with_and_without_the_cache() -> None:
    paths = _vector_rows()
    assert paths, f"no vectors at {VECTORS}"
    policy = VerificationPolicy.verify_command()
    now = datetime.now(UTC)

    def verdicts() -> list[dict[str, Any]]:
        with RevocationChecker(RevocationMode.OFFLINE) as checker:
            trust = TrustContext(default_trust_store(), checker)
            return [verify_package(VECTORS / p, policy=policy, trust=trust, now=now).to_dict() for p in paths]

    chain_cache.enabled = False
    without = verdicts()
    chain_cache.enabled = True
    cold, warm = verdicts(), verdicts()
    assert chain_cache.hits > 0  # the second pass was served
    assert cold == without
    assert warm == without
