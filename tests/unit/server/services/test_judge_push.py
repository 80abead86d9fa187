"""``judge_push`` over plain data: nuget.org's fast stage (its 400 texts exactly, both "must register" variants),
the full stage (unauthorized certificate, author countersignature, signature kinds, the library's findings) and
the signed-to-unsigned warning (spec server.md §A.6, §B.2). Expected messages are written out here."""

from __future__ import annotations

import hashlib

import pytest

from nuseal.codes import IssueCode, NuCode
from nuseal.findings import Finding, Severity
from nuseal.server.services.signing_rules import (
    AccountCertificates,
    EarlierVersion,
    PrimarySignature,
    PushedFile,
    Pusher,
    SigningRequirements,
    judge_push,
)
from nuseal.verify.result import PackageVerdict, Status


def fp(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


ALICE_CERT, ALICE_CERT_2, BOB_CERT, ORG_CERT, STRANGER = fp("alice"), fp("alice-2"), fp("bob"), fp("org"), fp("x")
ALICE = AccountCertificates("alice", frozenset({ALICE_CERT, ALICE_CERT_2}))
ALICE_NONE = AccountCertificates("alice")
BOB = AccountCertificates("bob", frozenset({BOB_CERT}))
BOB_NONE = AccountCertificates("bob")
CONTOSO = AccountCertificates("contoso", frozenset({ORG_CERT}))
CONTOSO_NONE = AccountCertificates("contoso")

UNSIGNED = PushedFile("2.0.0", signed=False)


def author(certificate: str, *, countersigned: bool = False) -> PushedFile:
    return PushedFile("2.0.0", True, PrimarySignature.AUTHOR, certificate, author_countersignature=countersigned)


MUST_BE_SIGNED = "This package must be signed with a registered certificate."
YOU_MUST_REGISTER = "The package was signed. You must register the signing certificate to publish signed packages."
OWNER_MUST_REGISTER = (
    "The package was signed. The owner '{}' must register the signing certificate to publish signed packages."
)
UNAUTHORIZED = (
    "The package was signed, but the signing certificate (SHA-256 thumbprint {}) is not associated with your "
    "account. You must register this certificate to publish signed packages. "
    "[Read more...](https://aka.ms/nuget-signed-ref)"
)


def rules(*owners: AccountCertificates, signer: AccountCertificates | None = None) -> SigningRequirements:
    return SigningRequirements(owners, signer)


def valid_verdict() -> PackageVerdict:
    return PackageVerdict("p.nupkg", "P", "2.0.0", True, (Status.VALID, Status.VALID))


# --- fast stage ------------------------------------------------------------------------------------------------


def test_unsigned_when_signing_is_required_is_refused_fast_with_nuget_org_s_text() -> None:
    judgement = judge_push(rules(ALICE), UNSIGNED, Pusher("alice", "alice"))
    assert [(f.code, f.message) for f in judgement.fast] == [(IssueCode.PACKAGE_IS_NOT_SIGNED, MUST_BE_SIGNED)]
    assert judgement.message == MUST_BE_SIGNED and not judgement.accepted and judgement.full == ()


def test_unsigned_is_fine_when_no_owner_has_a_certificate() -> None:
    judgement = judge_push(rules(ALICE_NONE), UNSIGNED, Pusher("alice", "alice"))
    assert judgement.accepted and judgement.findings == () and judgement.warnings == ()


@pytest.mark.parametrize(("requirements", "pusher", "message"), [
    # no required signer, the current user is an owner: the user can fix it
    (rules(ALICE_NONE), Pusher("alice", "alice"), YOU_MUST_REGISTER),
    # no required signer, a collaborator pushing for the organization: the organization must register
    (rules(CONTOSO_NONE), Pusher("carl", "contoso"), OWNER_MUST_REGISTER.format("contoso")),
    # no required signer, an org admin who is not an owner herself: nuget.org names the account pushed for
    (rules(CONTOSO_NONE, BOB_NONE), Pusher("olga", "contoso"), OWNER_MUST_REGISTER.format("contoso")),
    # a required signer who is the current user
    (rules(ALICE_NONE, BOB, signer=ALICE_NONE), Pusher("alice", "alice"), YOU_MUST_REGISTER),
    # a required signer who is someone else: named
    (rules(ALICE, BOB_NONE, signer=BOB_NONE), Pusher("alice", "alice"), OWNER_MUST_REGISTER.format("bob")),
    # a required signer organization, pushed by its collaborator
    (rules(CONTOSO_NONE, signer=CONTOSO_NONE), Pusher("carl", "contoso"), OWNER_MUST_REGISTER.format("contoso")),
])  # fmt: skip
def test_signed_when_no_applicable_account_has_a_certificate(
    requirements: SigningRequirements, pusher: Pusher, message: str
) -> None:
    judgement = judge_push(requirements, author(ALICE_CERT), pusher, verdict=valid_verdict())
    assert [(f.code, f.message) for f in judgement.fast] == [(IssueCode.PACKAGE_SHOULD_NOT_BE_SIGNED, message)]
    assert judgement.full == () and not judgement.verified


def test_a_new_id_is_judged_against_the_account_pushed_for() -> None:
    # The wrapper passes the account pushed for as the only owner of a new id (nuget.org creates it first).
    new_for_org = rules(CONTOSO)
    assert judge_push(new_for_org, UNSIGNED, Pusher("carl", "contoso")).message == MUST_BE_SIGNED
    judgement = judge_push(new_for_org, author(ORG_CERT), Pusher("carl", "contoso"), verdict=valid_verdict())
    assert judgement.accepted and judgement.verified


def test_only_the_signature_file_s_presence_matters_in_the_fast_stage() -> None:
    unreadable = PushedFile("2.0.0", True, PrimarySignature.UNREADABLE)
    judgement = judge_push(rules(ALICE_NONE), unreadable, Pusher("alice", "alice"))
    assert judgement.message == YOU_MUST_REGISTER


# --- full stage ---------------------------------------------------------------------------------------------------


def test_a_registered_certificate_is_accepted_and_an_unregistered_one_is_not() -> None:
    pusher = Pusher("alice", "alice")
    for certificate in (ALICE_CERT, ALICE_CERT_2.upper()):
        assert judge_push(rules(ALICE), author(certificate), pusher, verdict=valid_verdict()).accepted
    judgement = judge_push(rules(ALICE), author(STRANGER), pusher, verdict=valid_verdict())
    assert judgement.fast == ()
    [finding] = judgement.full
    assert finding.code is IssueCode.PACKAGE_IS_SIGNED_WITH_UNAUTHORIZED_CERTIFICATE
    assert finding.message == UNAUTHORIZED.format(STRANGER) and finding.subject == STRANGER
    assert judgement.message == UNAUTHORIZED.format(STRANGER)


def test_the_signer_rules_run_without_a_verdict_but_say_it_was_not_verified() -> None:
    judgement = judge_push(rules(ALICE), author(BOB_CERT), Pusher("alice", "alice"))
    assert [f.code for f in judgement.full] == [IssueCode.PACKAGE_IS_SIGNED_WITH_UNAUTHORIZED_CERTIFICATE]
    assert not judgement.verified


def test_author_countersignatures_and_unknown_kinds_are_refused() -> None:
    pusher = Pusher("alice", "alice")
    counter = judge_push(rules(ALICE), author(ALICE_CERT, countersigned=True), pusher, verdict=valid_verdict())
    assert [(f.code, f.message) for f in counter.full] == [
        (IssueCode.AUTHOR_COUNTER_SIGNATURES_NOT_SUPPORTED, "Author countersignatures are not supported.")]
    no_target = Finding(IssueCode.NO_VERIFIABLE_SIGNATURE, Severity.ERROR, "no signature to verify")
    unknown_verdict = PackageVerdict("p", "P", "2.0.0", True, (Status.DISALLOWED,), findings=(no_target,))
    unknown = PushedFile("2.0.0", True, PrimarySignature.UNKNOWN)
    judgement = judge_push(rules(ALICE), unknown, pusher, verdict=unknown_verdict)
    assert [(f.code, f.message) for f in judgement.full] == [(
        IssueCode.ONLY_AUTHOR_SIGNATURES_SUPPORTED,
        "Signed packages must only have an author signature. Other signature types are not supported.")]


def test_a_repository_primary_signature_counts_as_unsigned() -> None:
    repository = PushedFile("2.0.0", True, PrimarySignature.REPOSITORY)
    accepted = judge_push(rules(ALICE, BOB_NONE), repository, Pusher("alice", "alice"))
    assert accepted.accepted and not accepted.verified
    refused = judge_push(rules(ALICE), repository, Pusher("alice", "alice"))
    assert [(f.code, f.message) for f in refused.full] == [(
        IssueCode.PACKAGE_IS_NOT_SIGNED,
        "This package must be signed with a registered certificate. [Read more...](https://aka.ms/nuget-signed-ref)")]


def test_the_library_s_findings_are_carried_over() -> None:
    nu3018 = Finding(NuCode.NU3018, Severity.ERROR, "The author primary signature found a chain building issue")
    unknown_revocation = Finding(NuCode.NU3018, Severity.WARNING, "revocation unknown")
    verdict = PackageVerdict("p", "P", "2.0.0", True, (Status.VALID, Status.DISALLOWED),
                             findings=(nu3018, unknown_revocation))  # fmt: skip
    judgement = judge_push(rules(ALICE), author(STRANGER), Pusher("alice", "alice"), verdict=verdict)
    assert [f.code for f in judgement.full] == [IssueCode.PACKAGE_IS_SIGNED_WITH_UNAUTHORIZED_CERTIFICATE,
                                                NuCode.NU3018]  # fmt: skip
    assert judgement.warnings == (unknown_revocation,) and judgement.verified
    silent_failure = PackageVerdict("p", "P", "2.0.0", True, (Status.DISALLOWED,))
    judgement = judge_push(rules(ALICE), author(ALICE_CERT), Pusher("alice", "alice"), verdict=silent_failure)
    assert [f.code for f in judgement.full] == [IssueCode.VERIFICATION_FAILED]
    unreadable = PushedFile("2.0.0", True, PrimarySignature.UNREADABLE,
                            problem=Finding(NuCode.NU3005, Severity.ERROR, "bad entry"))  # fmt: skip
    assert [f.code for f in judge_push(rules(ALICE), unreadable, Pusher("alice", "alice")).full] == [NuCode.NU3005]


# --- the signed-to-unsigned warning -----------------------------------------------------------------------------

WARNING = ("The previous package version '{}' is author signed but the uploaded package is unsigned. To avoid this "
           "warning, sign the package before uploading.")  # fmt: skip


@pytest.mark.parametrize(("earlier", "warned"), [
    ([EarlierVersion("1.0.0", True, ALICE_CERT)], "1.0.0"),
    ([EarlierVersion("1.0", True, ALICE_CERT)], "1.0.0"),  # named by its normalized version
    ([EarlierVersion("1.0.0", True, ALICE_CERT), EarlierVersion("1.5.0", True, None)], None),  # highest is unsigned
    ([EarlierVersion("1.0.0", True, None), EarlierVersion("1.5.0", True, ALICE_CERT)], "1.5.0"),
    ([EarlierVersion("1.5.0", False, ALICE_CERT)], None),  # only available versions count
    ([EarlierVersion("1.5.0", False, None), EarlierVersion("1.2.0", True, ALICE_CERT)], "1.2.0"),
    ([EarlierVersion("3.0.0", True, ALICE_CERT)], None),  # above the pushed version
    ([EarlierVersion("2.0.0-beta", True, ALICE_CERT)], "2.0.0-beta"),  # a prerelease sorts below its release
    ([], None),
])  # fmt: skip
def test_signed_to_unsigned_transition(earlier: list[EarlierVersion], warned: str | None) -> None:
    judgement = judge_push(rules(ALICE_NONE), UNSIGNED, Pusher("alice", "alice"), earlier)
    assert judgement.accepted
    expected = [] if warned is None else [(IssueCode.SIGNED_TO_UNSIGNED_TRANSITION, Severity.WARNING,
                                           WARNING.format(warned))]  # fmt: skip
    assert [(f.code, f.severity, f.message) for f in judgement.warnings] == expected


def test_no_transition_warning_for_signed_pushes() -> None:
    earlier = [EarlierVersion("1.0.0", True, ALICE_CERT)]
    judgement = judge_push(rules(ALICE), author(ALICE_CERT), Pusher("alice", "alice"), earlier, valid_verdict())
    assert judgement.warnings == () and judgement.accepted


def test_the_judgement_as_a_document() -> None:
    document = judge_push(rules(ALICE), UNSIGNED, Pusher("alice", "alice")).to_dict()
    assert document["accepted"] is False and document["message"] == MUST_BE_SIGNED
    assert document["fast"][0]["code"] == "PackageIsNotSigned" and document["full"] == []
