"""The seed scenarios of issue 10 at the ``judge`` level, on both backends (the push route that will call it comes
next): certificates registered through the service, required signers set through the service, pushes judged from
the facts of the pushed file. Then the required signer's rules (who may change it, owners only, reset on owner
removal, audit) and the dry run on real signed files (test PKI, in-process TSA, verification offline).

World: users alice, bob, olga, carl, eve; organization contoso (admin olga, collaborator carl); Alice.Lib owned by
alice, Shared.Lib by alice and bob, Contoso.Lib by contoso.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from tests.support.governance import repository_signed_nupkg, signed_nupkg, trusting_context, write_nupkg
from tests.support.pki import IssuedCert, TestPki
from tests.support.server_factories import OPERATOR, organization, package, principal, user
from tests.support.server_fixtures import FakeClock

from nuseal.codes import IssueCode, NuCode
from nuseal.server.db.models import AuditEvent, PackageRegistration, PackageVersion
from nuseal.server.services import audit, certificates, packages, signing_rules
from nuseal.server.services.context import ServiceContext
from nuseal.server.services.errors import InvalidInputError, NotFoundError
from nuseal.server.services.package_check import check_package
from nuseal.server.services.permissions import AccessDenied
from nuseal.server.services.push_checks import PushRejected, Stage, parse
from nuseal.server.services.signing_rules import PrimarySignature, PushedFile, PushJudgement, SigningPolicy

MUST_BE_SIGNED = "This package must be signed with a registered certificate."
YOU_MUST_REGISTER = "The package was signed. You must register the signing certificate to publish signed packages."


def owner_must_register(name: str) -> str:
    return f"The package was signed. The owner '{name}' must register the signing certificate to publish signed " \
           "packages."


def unauthorized(sha256: str) -> str:
    return (f"The package was signed, but the signing certificate (SHA-256 thumbprint {sha256}) is not associated "
            "with your account. You must register this certificate to publish signed packages. "
            "[Read more...](https://aka.ms/nuget-signed-ref)")


@dataclass(frozen=True)
class Certs:
    alice: IssuedCert
    alice_2: IssuedCert
    bob: IssuedCert
    contoso: IssuedCert
    olga: IssuedCert

    @staticmethod
    def fp(issued: IssuedCert) -> str:
        return issued.sha256_fingerprint.lower()


@pytest.fixture(scope="session")
def certs(pki: TestPki) -> Certs:
    return Certs(pki.leaf, pki.issue_leaf("gov-alice-2"), pki.issue_leaf("gov-bob"), pki.issue_leaf("gov-contoso"),
                 pki.issue_leaf("gov-olga"))  # fmt: skip


@pytest.fixture
def clock(pki: TestPki) -> FakeClock:
    return FakeClock(pki.now + timedelta(minutes=1))


@pytest.fixture
def ctx(service_ctx: ServiceContext) -> ServiceContext:
    for name in ("alice", "bob", "olga", "carl", "eve"):
        user(service_ctx, name)
    organization(service_ctx, "contoso", admins=["olga"], collaborators=["carl"])
    package(service_ctx, "Alice.Lib", "alice")
    package(service_ctx, "Shared.Lib", "alice")
    packages.add_owner(service_ctx, OPERATOR, "Shared.Lib", "bob")
    package(service_ctx, "Contoso.Lib", "contoso")
    return service_ctx


def register(ctx: ServiceContext, account: str, issued: IssuedCert, acting: tuple[str, str] | None = None) -> None:
    actor = OPERATOR if acting is None else principal(ctx, *acting)
    certificates.register(ctx, actor, account, issued.der, f"{issued.name}.cer")


def unsigned() -> PushedFile:
    return PushedFile("2.0.0", signed=False)


def signed_with(issued: IssuedCert) -> PushedFile:
    return PushedFile("2.0.0", True, PrimarySignature.AUTHOR, Certs.fp(issued))


def push(ctx: ServiceContext, who: tuple[str, str], package_id: str, pushed: PushedFile) -> PushJudgement:
    return signing_rules.judge(ctx, principal(ctx, *who), package_id, pushed)


def refusal(judgement: PushJudgement) -> str | None:
    return judgement.message


# --- the seed scenarios -------------------------------------------------------------------------------------------


def test_a_user_registers_certificates_then_unregisters_them(ctx: ServiceContext, certs: Certs) -> None:
    alice = ("alice", "alice")
    assert refusal(push(ctx, alice, "Alice.Lib", unsigned())) is None
    assert refusal(push(ctx, alice, "Alice.Lib", signed_with(certs.alice))) == YOU_MUST_REGISTER

    register(ctx, "alice", certs.alice, acting=alice)
    assert refusal(push(ctx, alice, "Alice.Lib", unsigned())) == MUST_BE_SIGNED
    assert refusal(push(ctx, alice, "Alice.Lib", signed_with(certs.alice))) is None
    assert refusal(push(ctx, alice, "Alice.Lib", signed_with(certs.bob))) == unauthorized(Certs.fp(certs.bob))

    register(ctx, "alice", certs.alice_2, acting=alice)  # a second certificate works too
    assert refusal(push(ctx, alice, "Alice.Lib", signed_with(certs.alice_2))) is None
    assert refusal(push(ctx, alice, "Alice.Lib", signed_with(certs.alice))) is None

    certificates.unregister(ctx, principal(ctx, *alice), "alice", Certs.fp(certs.alice))
    assert refusal(push(ctx, alice, "Alice.Lib", signed_with(certs.alice))) == unauthorized(Certs.fp(certs.alice))
    assert refusal(push(ctx, alice, "Alice.Lib", signed_with(certs.alice_2))) is None
    assert refusal(push(ctx, alice, "Alice.Lib", unsigned())) == MUST_BE_SIGNED

    certificates.unregister(ctx, principal(ctx, *alice), "alice", Certs.fp(certs.alice_2))
    assert refusal(push(ctx, alice, "Alice.Lib", unsigned())) is None  # back to "no certificate"
    assert refusal(push(ctx, alice, "Alice.Lib", signed_with(certs.alice_2))) == YOU_MUST_REGISTER


def test_organization_certificates_and_its_collaborator(ctx: ServiceContext, certs: Certs) -> None:
    carl, olga_for_org = ("carl", "contoso"), ("olga", "contoso")
    assert refusal(push(ctx, carl, "Contoso.Lib", signed_with(certs.contoso))) == owner_must_register("contoso")
    with pytest.raises(AccessDenied):  # a collaborator cannot register certificates
        register(ctx, "contoso", certs.contoso, acting=carl)
    register(ctx, "contoso", certs.contoso, acting=olga_for_org)  # an organization admin can
    register(ctx, "olga", certs.olga, acting=("olga", "olga"))  # a member's personal certificate does not count

    assert refusal(push(ctx, carl, "Contoso.Lib", unsigned())) == MUST_BE_SIGNED
    assert refusal(push(ctx, carl, "Contoso.Lib", signed_with(certs.contoso))) is None  # the collaborator can push
    assert refusal(push(ctx, olga_for_org, "Contoso.Lib", signed_with(certs.olga))) == unauthorized(
        Certs.fp(certs.olga))
    # a new id pushed for the organization is held to the organization's certificates
    assert refusal(push(ctx, carl, "Contoso.New", unsigned())) == MUST_BE_SIGNED
    assert refusal(push(ctx, carl, "Contoso.New", signed_with(certs.contoso))) is None
    # the collaborator cannot change the required signer; the organization admin can
    with pytest.raises(AccessDenied):
        signing_rules.set_signer(ctx, principal(ctx, *carl), "Contoso.Lib", "Any")
    state, changed = signing_rules.set_signer(ctx, principal(ctx, *olga_for_org), "Contoso.Lib", "contoso")
    assert changed and state.required_signer == "contoso" and state.policy is SigningPolicy.REQUIRED


def test_several_owners_with_any_and_mixed_certificates(ctx: ServiceContext, certs: Certs) -> None:
    alice, bob = ("alice", "alice"), ("bob", "bob")
    register(ctx, "alice", certs.alice)
    # Any, alice certified, bob not: unsigned, or any owner's registered certificate (seed scenario)
    assert signing_rules.show_signer(ctx, OPERATOR, "Shared.Lib").policy is SigningPolicy.ALLOWED
    for who in (alice, bob):
        assert refusal(push(ctx, who, "Shared.Lib", unsigned())) is None
        assert refusal(push(ctx, who, "Shared.Lib", signed_with(certs.alice))) is None
        assert refusal(push(ctx, who, "Shared.Lib", signed_with(certs.bob))) == unauthorized(Certs.fp(certs.bob))
    register(ctx, "bob", certs.bob)  # now every owner has one: must be signed by some owner's certificate
    assert refusal(push(ctx, bob, "Shared.Lib", unsigned())) == MUST_BE_SIGNED
    assert refusal(push(ctx, bob, "Shared.Lib", signed_with(certs.alice))) is None
    assert refusal(push(ctx, alice, "Shared.Lib", signed_with(certs.bob))) is None


def test_a_specific_signer(ctx: ServiceContext, certs: Certs) -> None:
    register(ctx, "alice", certs.alice)
    register(ctx, "bob", certs.bob)
    signing_rules.set_signer(ctx, principal(ctx, "alice"), "Shared.Lib", "bob")
    alice = ("alice", "alice")
    assert refusal(push(ctx, alice, "Shared.Lib", signed_with(certs.bob))) is None
    assert refusal(push(ctx, alice, "Shared.Lib", signed_with(certs.alice))) == unauthorized(Certs.fp(certs.alice))
    assert refusal(push(ctx, alice, "Shared.Lib", unsigned())) == MUST_BE_SIGNED
    certificates.unregister(ctx, OPERATOR, "bob", Certs.fp(certs.bob))  # the signer has none now: must be unsigned
    assert refusal(push(ctx, alice, "Shared.Lib", signed_with(certs.alice))) == owner_must_register("bob")
    assert refusal(push(ctx, ("bob", "bob"), "Shared.Lib", signed_with(certs.alice))) == YOU_MUST_REGISTER
    assert refusal(push(ctx, alice, "Shared.Lib", unsigned())) is None


def test_the_exclusion_trick_and_the_reset_when_the_signer_leaves(ctx: ServiceContext, certs: Certs) -> None:
    register(ctx, "alice", certs.alice)
    register(ctx, "bob", certs.bob)
    packages.add_owner(ctx, OPERATOR, "Shared.Lib", "eve")  # eve has no certificate
    assert refusal(push(ctx, ("alice", "alice"), "Shared.Lib", unsigned())) is None  # Any, mixed
    state, _ = signing_rules.set_signer(ctx, principal(ctx, "bob"), "Shared.Lib", "eve")
    assert state.policy is SigningPolicy.NOT_ALLOWED
    assert state.message == "'eve' currently has no certificate, which means future package submissions must be " \
                            "unsigned."
    assert refusal(push(ctx, ("alice", "alice"), "Shared.Lib", unsigned())) is None
    assert refusal(push(ctx, ("alice", "alice"), "Shared.Lib", signed_with(certs.alice))) == owner_must_register("eve")

    packages.remove_owner(ctx, OPERATOR, "Shared.Lib", "eve")  # the signer leaves: back to Any (nuget.org: stale)
    after = signing_rules.show_signer(ctx, OPERATOR, "Shared.Lib")
    assert after.required_signer is None and after.policy is SigningPolicy.REQUIRED
    assert refusal(push(ctx, ("alice", "alice"), "Shared.Lib", unsigned())) == MUST_BE_SIGNED
    events = [e for e in audit.list_events(ctx) if e.subject == "Shared.Lib"]
    assert [e.action for e in events][-3:] == ["package:signer:set", "package:owner:remove", "package:signer:reset"]
    reset = events[-1]
    assert (reset.actor, reset.before, reset.after) == (
        "admin-cli", {"required_signer": "eve"}, {"required_signer": "Any", "reason": "eve is no longer an owner"})


def test_removing_another_owner_keeps_the_signer(ctx: ServiceContext) -> None:
    packages.add_owner(ctx, OPERATOR, "Shared.Lib", "eve")
    signing_rules.set_signer(ctx, OPERATOR, "Shared.Lib", "alice")
    packages.remove_owner(ctx, OPERATOR, "Shared.Lib", "eve")
    assert signing_rules.show_signer(ctx, OPERATOR, "Shared.Lib").required_signer == "alice"
    assert not [e for e in audit.list_events(ctx) if e.action == "package:signer:reset"]


# --- the required signer ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("who", "package_id", "may"), [
    (("alice", "alice"), "Shared.Lib", True),  # owner
    (("bob", "bob"), "Shared.Lib", True),  # co-owner
    (("eve", "eve"), "Shared.Lib", False),  # stranger
    (("olga", "contoso"), "Contoso.Lib", True),  # org admin for the organization
    (("olga", "olga"), "Contoso.Lib", True),  # org admin acting for herself
    (("carl", "contoso"), "Contoso.Lib", False),  # collaborator
    (("carl", "carl"), "Contoso.Lib", False),
])  # fmt: skip
def test_who_may_change_the_required_signer(ctx: ServiceContext, who: tuple[str, str], package_id: str,
                                            may: bool) -> None:  # fmt: skip
    owner = "alice" if package_id == "Shared.Lib" else "contoso"
    try:
        signing_rules.set_signer(ctx, principal(ctx, *who), package_id, owner)
    except AccessDenied:
        assert not may
    else:
        assert may
    assert signing_rules.show_signer(ctx, OPERATOR, package_id).required_signer == (owner if may else None)


def test_the_signer_must_be_a_current_owner(ctx: ServiceContext) -> None:
    with pytest.raises(InvalidInputError, match=r"'eve' is not an owner of 'Shared.Lib': the required signer must be "
                                                r"one of its owners \(alice, bob\) or Any"):  # fmt: skip
        signing_rules.set_signer(ctx, OPERATOR, "Shared.Lib", "eve")
    with pytest.raises(NotFoundError, match="no account named 'nobody'"):
        signing_rules.set_signer(ctx, OPERATOR, "Shared.Lib", "nobody")
    with pytest.raises(NotFoundError, match=r"no package 'Nope\.Lib'"):
        signing_rules.set_signer(ctx, OPERATOR, "Nope.Lib", "Any")


def test_setting_and_resetting_is_audited_once_per_change(ctx: ServiceContext, certs: Certs,
                                                          clock: FakeClock) -> None:  # fmt: skip
    register(ctx, "bob", certs.bob)
    actor = principal(ctx, "alice")
    state, changed = signing_rules.set_signer(ctx, actor, "shared.lib", "BOB")
    assert changed and (state.package_id, state.required_signer) == ("Shared.Lib", "bob")
    assert signing_rules.set_signer(ctx, actor, "Shared.Lib", "bob")[1] is False
    state, changed = signing_rules.set_signer(ctx, actor, "Shared.Lib", "any")
    assert changed and state.required_signer is None
    assert signing_rules.set_signer(ctx, actor, "Shared.Lib", None)[1] is False
    events = [e for e in audit.list_events(ctx) if e.action == "package:signer:set"]
    assert [(e.actor, e.at, e.before, e.after) for e in events] == [
        ("alice", clock.now, {"required_signer": "Any"}, {"required_signer": "bob", "signing": "required"}),
        ("alice", clock.now, {"required_signer": "bob"}, {"required_signer": "Any", "signing": "allowed"}),
    ]


def test_show_signer(ctx: ServiceContext, certs: Certs) -> None:
    register(ctx, "alice", certs.alice)
    register(ctx, "alice", certs.alice_2)
    state = signing_rules.show_signer(ctx, principal(ctx, "bob"), "Shared.Lib")
    assert state.to_dict() == {
        "package": "Shared.Lib", "required_signer": "Any", "signing": "allowed",
        "message": "At least one package owner has no certificate while at least one other package owner has at "
                   "least one certificate, which means future package submissions may be unsigned or signed with any "
                   "certificate registered to any owner.",
        "owners": [{"name": "alice", "certificates": 2}, {"name": "bob", "certificates": 0}],
    }  # fmt: skip
    assert signing_rules.show_signer(ctx, principal(ctx, "carl", "contoso"), "Contoso.Lib").policy is \
        SigningPolicy.NOT_ALLOWED  # collaborators may look
    with pytest.raises(AccessDenied):
        signing_rules.show_signer(ctx, principal(ctx, "eve"), "Shared.Lib")


def test_the_transition_warning_reads_earlier_versions_from_the_database(ctx: ServiceContext, certs: Certs) -> None:
    with ctx.db.transaction() as session:
        session.execute(update(PackageVersion).values(author_cert_sha256=Certs.fp(certs.alice)))
    judgement = push(ctx, ("alice", "alice"), "Alice.Lib", unsigned())
    assert judgement.accepted
    assert [f.message for f in judgement.warnings] == [
        "The previous package version '1.0.0' is author signed but the uploaded package is unsigned. To avoid this "
        "warning, sign the package before uploading."]


# --- the dry run on real files ---------------------------------------------------------------------------------


def counts(ctx: ServiceContext) -> tuple[int, int, int]:
    with ctx.db.reading() as session:
        return (int(session.scalar(select(func.count()).select_from(PackageRegistration)) or 0),
                int(session.scalar(select(func.count()).select_from(PackageVersion)) or 0),
                int(session.scalar(select(func.count()).select_from(AuditEvent)) or 0))  # fmt: skip


def test_the_dry_run_on_real_files_stores_nothing(ctx: ServiceContext, pki: TestPki, certs: Certs,
                                                  tmp_path: Path) -> None:  # fmt: skip
    checking = trusting_context(ctx, pki, tmp_path)
    register(ctx, "alice", certs.alice)
    alice = principal(ctx, "alice")
    before = counts(ctx)
    blobs_before = sorted(p.relative_to(ctx.settings.data_dir) for p in ctx.settings.data_dir.rglob("*"))

    good = check_package(checking, alice, signed_nupkg(tmp_path / "a.nupkg", "Alice.Lib", "2.0.0", certs.alice, pki))
    assert (good.accepted, good.status, good.stage) == (True, 201, None)
    assert good.verified and good.findings == ()
    assert good.warnings == ()  # offline revocation is an info-level finding in the library, not a warning

    unsigned_file = check_package(checking, alice, write_nupkg(tmp_path / "u.nupkg", "Alice.Lib", "2.0.0"))
    assert (unsigned_file.status, unsigned_file.stage, unsigned_file.to_dict()["message"]) == (
        400, Stage.FAST, MUST_BE_SIGNED)

    foreign = check_package(checking, alice, signed_nupkg(tmp_path / "b.nupkg", "Alice.Lib", "2.0.0", certs.bob, pki))
    assert (foreign.status, foreign.stage) == (400, Stage.FULL)
    assert [f.message for f in foreign.findings] == [unauthorized(Certs.fp(certs.bob))]

    untrusted = check_package(checking, alice, signed_nupkg(tmp_path / "t.nupkg", "Alice.Lib", "2.0.0",
                                                            pki.untrusted_leaf, pki))  # fmt: skip
    assert [f.code for f in untrusted.findings] == [IssueCode.PACKAGE_IS_SIGNED_WITH_UNAUTHORIZED_CERTIFICATE,
                                                    NuCode.NU3018]  # fmt: skip

    repository = check_package(checking, alice, repository_signed_nupkg(tmp_path / "r.nupkg", "Alice.Lib", "2.0.0",
                                                                        certs.bob, pki))  # fmt: skip
    # A repository primary signature is not judged at push: the job would strip it, leaving an unsigned package,
    # which Alice's registered certificate refuses (nuget.org: PackageIsNotSigned from its job).
    assert (repository.stage, [f.code for f in repository.findings]) == (Stage.FULL, [IssueCode.PACKAGE_IS_NOT_SIGNED])

    duplicate = check_package(checking, alice, signed_nupkg(tmp_path / "d.nupkg", "alice.lib", "1.0", certs.alice,
                                                            pki))  # fmt: skip
    assert (duplicate.status, duplicate.stage, duplicate.findings[0].message) == (
        409, Stage.CONFLICT, "A package with ID 'Alice.Lib' and version '1.0.0' already exists and cannot be "
                             "modified.")

    fresh = check_package(checking, principal(ctx, "bob"), write_nupkg(tmp_path / "n.nupkg", "Bob.New", "1.0.0"))
    assert fresh.accepted and fresh.new_package and fresh.to_dict()["signing"] == {
        "new_package": True, "required_signer": "Any", "policy": "not allowed",
        "message": "No package owner has a certificate, which means future package submissions must be unsigned."}

    with pytest.raises(AccessDenied):  # bob may not push Alice.Lib: the dry run says so as the push would
        check_package(checking, principal(ctx, "bob"), tmp_path / "a.nupkg")
    (tmp_path / "junk.nupkg").write_bytes(b"not a zip at all")
    with pytest.raises(PushRejected, match=r"^InvalidPackageFile: Failed to read the package file"):
        check_package(checking, alice, tmp_path / "junk.nupkg")

    assert counts(ctx) == before
    assert sorted(p.relative_to(ctx.settings.data_dir) for p in ctx.settings.data_dir.rglob("*")) == blobs_before


def test_reading_the_facts_of_real_files(pki: TestPki, certs: Certs, tmp_path: Path) -> None:
    author = parse(signed_nupkg(tmp_path / "a.nupkg", "A.B", "1.0", certs.alice, pki))
    assert (author.manifest.id, author.version.normalized) == ("A.B", "1.0.0")
    assert author.signature == PushedFile("1.0.0", True, PrimarySignature.AUTHOR, Certs.fp(certs.alice))
    assert (author.repository_primary, author.repository_countersignature) == (None, None)
    repository = parse(repository_signed_nupkg(tmp_path / "r.nupkg", "A.B", "1.0", certs.bob, pki))
    assert (repository.signature.primary, repository.signature.author_certificate) == (PrimarySignature.REPOSITORY,
                                                                                       None)  # fmt: skip
    assert repository.repository_primary == "https://feed.example/v3/index.json"
    plain = parse(write_nupkg(tmp_path / "u.nupkg", "A.B", "1.0"))
    assert plain.signature == PushedFile("1.0.0", signed=False)
