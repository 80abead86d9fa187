"""nuget.org's three signer functions over every combination of {1, 2, 3 owners} × {0, 1, 2 certificates each} ×
{Any, each owner as required signer} (spec server.md §A.5, ``PackageRegistrationExtensions``).

The expected values are never computed by calling nuseal: for one and two owners the table below is written out
by hand; for three owners they come from nuget.org's definitions restated with counts (Any: allowed iff the largest
count is at least one, required iff the smallest is; a named signer: both iff its count is at least one;
acceptable: the certificate belongs to the signer, or to any owner under Any).
"""

from __future__ import annotations

import hashlib
import itertools

import pytest

from nuseal.server.services.signing_rules import (
    ANY_MIXED,
    ANY_SIGNED,
    ANY_UNSIGNED,
    OWNER_HAS_CERTIFICATE,
    OWNER_HAS_NO_CERTIFICATE,
    AccountCertificates,
    SigningPolicy,
    SigningRequirements,
    explain,
    is_acceptable_signing_certificate,
    is_signing_allowed,
    is_signing_required,
    signing_policy,
)

OWNERS = ("alice", "bob", "contoso")


def fingerprint(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


FOREIGN = fingerprint("nobody's certificate")


def certificates(owner: int, count: int) -> frozenset[str]:
    return frozenset(fingerprint(f"{OWNERS[owner]}-{k}") for k in range(count))


def requirements(counts: tuple[int, ...], signer: int | None) -> SigningRequirements:
    owners = tuple(AccountCertificates(OWNERS[i], certificates(i, n)) for i, n in enumerate(counts))
    return SigningRequirements(owners, None if signer is None else owners[signer])


# Hand-written: counts → for signer Any, then owner 0, owner 1, ...: "AR" allowed and required, "A-" allowed
# only, "--" neither (must be unsigned).
HAND_TABLE = """
0     | -- --
1     | AR AR
2     | AR AR
0,0   | -- -- --
0,1   | A- -- AR
0,2   | A- -- AR
1,0   | A- AR --
1,1   | AR AR AR
1,2   | AR AR AR
2,0   | A- AR --
2,1   | AR AR AR
2,2   | AR AR AR
"""


def hand_rows() -> list[tuple[tuple[int, ...], int | None, bool, bool]]:
    rows = []
    for line in HAND_TABLE.strip().splitlines():
        counts_text, cells = line.split("|")
        counts = tuple(int(n) for n in counts_text.split(","))
        for index, cell in enumerate(cells.split()):
            rows.append((counts, None if index == 0 else index - 1, cell[0] == "A", cell[1] == "R"))
    return rows


def restated(counts: tuple[int, ...], signer: int | None) -> tuple[bool, bool]:
    if signer is None:
        return max(counts) >= 1, min(counts) >= 1
    return counts[signer] >= 1, counts[signer] >= 1


def all_combinations() -> list[tuple[tuple[int, ...], int | None]]:
    combos = []
    for owners in (1, 2, 3):
        for counts in itertools.product((0, 1, 2), repeat=owners):
            for signer in (None, *range(owners)):
                combos.append((counts, signer))
    return combos


def test_the_hand_table_covers_every_one_and_two_owner_combination() -> None:
    written = {(counts, signer) for counts, signer, _a, _r in hand_rows()}
    expected = {(c, s) for c, s in all_combinations() if len(c) <= 2}
    assert written == expected
    assert len(all_combinations()) == 6 + 27 + 108


@pytest.mark.parametrize(("counts", "signer", "allowed", "required"), hand_rows(),
                         ids=lambda v: str(v))  # fmt: skip
def test_one_and_two_owners_against_the_hand_table(
    counts: tuple[int, ...], signer: int | None, allowed: bool, required: bool
) -> None:
    rules = requirements(counts, signer)
    assert is_signing_allowed(rules) is allowed
    assert is_signing_required(rules) is required
    assert restated(counts, signer) == (allowed, required)  # the restatement used for three owners agrees


@pytest.mark.parametrize(("counts", "signer"), all_combinations(), ids=lambda v: str(v))
def test_every_combination(counts: tuple[int, ...], signer: int | None) -> None:
    rules = requirements(counts, signer)
    allowed, required = restated(counts, signer)
    assert (is_signing_allowed(rules), is_signing_required(rules)) == (allowed, required)
    expected_policy = (SigningPolicy.REQUIRED if required else SigningPolicy.ALLOWED if allowed
                       else SigningPolicy.NOT_ALLOWED)  # fmt: skip
    assert signing_policy(rules) is expected_policy
    for owner, count in enumerate(counts):
        for certificate in certificates(owner, count):
            acceptable = signer is None or signer == owner
            assert is_acceptable_signing_certificate(rules, certificate) is acceptable
            assert is_acceptable_signing_certificate(rules, certificate.upper()) is acceptable  # ignore case
    assert is_acceptable_signing_certificate(rules, FOREIGN) is False


def test_the_two_seed_scenarios() -> None:
    # A co-owner without certificates as the required signer: unsigned pushes are allowed (and required).
    exclusion = requirements((2, 0), signer=1)
    assert not is_signing_required(exclusion) and not is_signing_allowed(exclusion)
    assert not is_acceptable_signing_certificate(exclusion, next(iter(certificates(0, 2))))
    # Any, one owner with a certificate and one without: unsigned, or any owner's registered certificate.
    mixed = requirements((1, 0), signer=None)
    assert not is_signing_required(mixed) and is_signing_allowed(mixed)
    assert is_acceptable_signing_certificate(mixed, next(iter(certificates(0, 1))))
    assert not is_acceptable_signing_certificate(mixed, FOREIGN)


def test_a_certificate_on_two_owners_counts_for_both() -> None:
    shared = fingerprint("shared")
    rules = SigningRequirements((AccountCertificates("alice", frozenset({shared})),
                                 AccountCertificates("bob", frozenset({shared}))))  # fmt: skip
    assert is_signing_required(rules)
    bob_signs = SigningRequirements(rules.owners, rules.owners[1])
    assert is_acceptable_signing_certificate(bob_signs, shared)


def test_an_empty_fingerprint_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="fingerprint is required"):
        is_acceptable_signing_certificate(requirements((1,), None), " ")


@pytest.mark.parametrize(("counts", "signer", "sentence"), [
    ((1, 0), 0, OWNER_HAS_CERTIFICATE.format("alice")),
    ((1, 0), 1, OWNER_HAS_NO_CERTIFICATE.format("bob")),
    ((1, 1), None, ANY_SIGNED),
    ((1, 0), None, ANY_MIXED),
    ((0, 0), None, ANY_UNSIGNED),
])  # fmt: skip
def test_the_sentence_for_each_state(counts: tuple[int, ...], signer: int | None, sentence: str) -> None:
    assert explain(requirements(counts, signer)) == sentence


def test_nuget_org_sentences_are_verbatim() -> None:
    assert OWNER_HAS_CERTIFICATE.format("x") == (
        "'x' currently has at least one certificate, which means future package submissions must be signed.")
    assert OWNER_HAS_NO_CERTIFICATE.format("x") == (
        "'x' currently has no certificate, which means future package submissions must be unsigned.")
    assert ANY_MIXED.startswith("At least one package owner has no certificate while at least one other package "
                                "owner has at least one certificate, which means future package submissions may "
                                "be unsigned or signed with any certificate registered to any owner.")
    assert ANY_SIGNED == ("All package owners have at least one certificate, which means future package "
                          "submissions must be signed.")
