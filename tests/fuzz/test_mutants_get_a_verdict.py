"""Property (issue 8): whatever byte of a signed package is damaged, ``verify_package`` returns a verdict with NU
codes, reached through the checks: never an exception, never the engine's last-resort handler.

Every signed vector is mutated in every region (local headers, file data, the signature entry's local header, each
DER field of the CMS, central directory headers, the EOCD record) by byte flips, truncations, byte deletions and
insertions, and CMS structural edits that keep the zip consistent. hypothesis runs derandomized with a fixed number
of examples, so CI time is bounded and a failure reproduces; it shrinks a failure to a small mutation.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nuseal.verify.engine import TrustContext, verify_package
from tests.fuzz import mutants
from tests.fuzz.common import NOW, assert_clean_verdict, signed_vectors, verify_policy

#: Examples per signed vector (26 vectors: about 2,000 mutants in all).
EXAMPLES_PER_VECTOR = 80

VECTORS = signed_vectors()


@dataclass(frozen=True)
class Mutation:
    """One mutation, as plain numbers (see ``tests.fuzz.mutants``)."""

    region: str
    kind: str
    pick: int
    at: int
    mask: int
    size: int

    def apply(self, package: mutants.Package) -> bytes:
        if self.kind == "flip":
            return mutants.flip(package, self.region, self.pick, self.at, self.mask)
        if self.kind == "truncate":
            return mutants.truncate(package, self.region, self.pick, self.at)
        if self.kind in ("delete", "insert"):
            return mutants.splice(package, self.region, self.pick, self.at, self.size, self.kind == "insert")
        return mutants.edit_cms(package, self.pick, self.mask, self.at)


def mutations(regions: tuple[str, ...]) -> st.SearchStrategy[Mutation]:
    def kinds(region: str) -> st.SearchStrategy[str]:
        structural = ["cms-edit"] if region == "cms" else []
        # Flips dominate: they are what the campaign measured; the rest covers lengths and offsets moving.
        return st.sampled_from(["flip"] * 5 + ["truncate", "delete", "insert", *structural])

    return st.sampled_from(regions).flatmap(lambda region: st.builds(
        Mutation, st.just(region), kinds(region), st.integers(0, 1 << 16), st.integers(0, 1 << 24),
        st.integers(1, 255), st.integers(1, 8)))


@pytest.mark.parametrize("vector", VECTORS, ids=[p.name for p in VECTORS])
def test_every_mutant_gets_a_verdict(vector: Path, trust: TrustContext, tmp_path_factory: pytest.TempPathFactory
                                     ) -> None:
    package = mutants.load_package(vector)
    regions = mutants.regions_of(package)
    target = tmp_path_factory.mktemp("mutant") / vector.name
    seen: set[str] = set()

    @settings(max_examples=EXAMPLES_PER_VECTOR, derandomize=True, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(mutation=mutations(regions))
    def check(mutation: Mutation) -> None:
        data = mutation.apply(package)
        target.write_bytes(data)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a library warning escaping the boundaries fails the property too
            verdict = verify_package(target, policy=verify_policy(), trust=trust, now=NOW)
        assert_clean_verdict(verdict)
        if data == package.data:
            assert verdict.valid == _original_valid(vector, trust)
        seen.add(mutation.region)

    check()
    assert seen == set(regions), f"regions never mutated: {set(regions) - seen}"


_VALIDITY: dict[Path, bool] = {}


def _original_valid(vector: Path, trust: TrustContext) -> bool:
    if vector not in _VALIDITY:
        _VALIDITY[vector] = verify_package(vector, policy=verify_policy(), trust=trust, now=NOW).valid
    return _VALIDITY[vector]
