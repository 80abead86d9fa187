"""Certificate uploads (spec server.md §A.2-§A.4 plus NuGetGallery #9003): every refusal with its message, then
registration on both backends: identity by SHA-256, one certificate on several accounts, registering twice is a
no-op, unregistering removes the link only, details from registration on, permissions, audit."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7
from sqlalchemy import func, select
from tests.support.pki import IssuedCert, TestPki, new_rsa_key
from tests.support.server_factories import OPERATOR, organization, principal, user
from tests.support.server_fixtures import FakeClock

from nuseal.codes import NuCode
from nuseal.server.db.models import AccountCertificate, Certificate
from nuseal.server.services import audit, certificates
from nuseal.server.services.certificates import CertificateRejected, check_upload, nuget_der_heuristic
from nuseal.server.services.context import ServiceContext
from nuseal.server.services.errors import InvalidInputError, NotFoundError
from nuseal.server.services.permissions import AccessDenied


@pytest.fixture
def clock(pki: TestPki) -> FakeClock:
    """Service time a minute after the PKI's "now" (its certificates are valid then)."""
    return FakeClock(pki.now + timedelta(minutes=1))


@pytest.fixture(scope="session")
def extra_leaves(pki: TestPki) -> dict[str, IssuedCert]:
    """Leaves this module needs besides the PKI's own (issued once per session)."""
    return {
        "no-eku": pki.issue_leaf("gov-no-eku", eku=[]),
        "weak-sha1": pki.issue_leaf("gov-weak-sha1", key=new_rsa_key(1024), hash_algorithm=hashes.SHA1()),
        "second": pki.issue_leaf("gov-second"),
    }


def refusal(data: bytes | None, filename: str | None, now: datetime, *, allow_self_issued: bool = False
            ) -> CertificateRejected:  # fmt: skip
    with pytest.raises(CertificateRejected) as caught:
        check_upload(data, filename, now=now, allow_self_issued=allow_self_issued)
    return caught.value


# --- nuget.org's checks ----------------------------------------------------------------------------------------


def test_nuget_org_s_der_heuristic(pki: TestPki) -> None:
    der = pki.leaf.der
    assert nuget_der_heuristic(der)
    assert not nuget_der_heuristic(der + b"\x00")  # trailing data
    assert not nuget_der_heuristic(der[:-1])  # truncated
    assert not nuget_der_heuristic(pki.leaf.pem)  # PEM starts with '-'
    assert not nuget_der_heuristic(pki.leaf.pfx_bytes())  # PKCS#12 nests an INTEGER first
    assert not nuget_der_heuristic(b"\x30\x80")  # indefinite length
    assert not nuget_der_heuristic(b"\x30\x00")  # an empty sequence
    assert not nuget_der_heuristic(b"\x30\x83\x00\x00\x01\x30")  # more length bytes than 10,000 bytes need
    assert nuget_der_heuristic(b"\x30\x02\x30\x00")  # the heuristic only looks at the shape


def test_missing_empty_and_too_large(pki: TestPki) -> None:
    now = pki.now
    assert refusal(None, None, now).message == "A certificate file is required."
    empty = refusal(b"", "me.cer", now)
    assert (empty.reason, empty.message) == ("empty", "The file length is invalid. 'me.cer' is empty.")
    large = refusal(b"\x30" * 10_001, "big.cer", now)
    assert large.reason == "too-large"
    assert large.message.startswith("The file exceeds the size limit of 10000 bytes. 'big.cer' has 10001 bytes")


def test_a_valid_certificate_with_another_extension(pki: TestPki) -> None:
    rejected = refusal(pki.leaf.der, "signing.crt", pki.now)
    assert rejected.reason == "extension"
    assert rejected.message == ("The file extension must be .cer. 'signing.crt' holds a DER certificate: rename it "
                                "to end in .cer.")  # fmt: skip
    assert check_upload(pki.leaf.der, "SIGNING.CER", now=pki.now, allow_self_issued=False) == pki.leaf.cert


# --- what was uploaded instead of a DER certificate -------------------------------------------------------------

DER_FIRST = "The file must be a DER encoded binary X.509 certificate. "


def test_pem_says_how_to_convert(pki: TestPki) -> None:
    rejected = refusal(pki.leaf.pem, "leaf.cer", pki.now)
    assert rejected.reason == "pem"
    assert rejected.message == (
        f"{DER_FIRST}'leaf.cer' is PEM (Base64 text starting with '-----BEGIN CERTIFICATE-----'), not DER (binary). "
        "Convert it: 'openssl x509 -in leaf.cer -outform der -out signing.cer' (or 'nuseal cert export leaf.cer "
        "--out signing.cer') and upload signing.cer."
    )


def test_a_pem_with_a_private_key_says_never_to_upload_it(pki: TestPki) -> None:
    rejected = refusal(pki.leaf.key_pem + pki.leaf.pem, "leaf.pem", pki.now)
    assert rejected.reason == "private-key"
    assert "contains a private key (PRIVATE KEY, CERTIFICATE). Never upload a private key" in rejected.message


def test_a_pfx_says_never_to_upload_a_private_key(pki: TestPki) -> None:
    for data in (pki.leaf.pfx_bytes(), pki.leaf.pfx_bytes(password=None)):
        rejected = refusal(data, "leaf.pfx", pki.now)
        assert rejected.reason == "pfx"
        assert rejected.message.startswith(
            f"{DER_FIRST}'leaf.pfx' is a PKCS#12 (PFX) file, which holds a private key. Never upload a private key: "
            "it must stay with whoever signs the packages. Export the certificate alone: 'nuseal cert export "
            "leaf.pfx --out signing.cer'")


def test_not_a_certificate(pki: TestPki) -> None:
    random_bytes = refusal(b"\x4f\x2a\x01\x02\x03\x04\x05\x06\x07", "x.cer", pki.now)
    assert (random_bytes.reason, random_bytes.message) == (
        "not-a-certificate",
        f"{DER_FIRST}'x.cer' is not a certificate: it does not start like a DER certificate (first bytes: "
        "4f 2a 01 02 03 04 05 06).")
    bundle = pkcs7.serialize_certificates([pki.leaf.cert, pki.intermediate.cert], Encoding.DER)
    p7b = refusal(bundle, "chain.cer", pki.now)
    assert p7b.reason == "not-a-certificate"
    assert "'chain.cer' is a PKCS#7/CMS container (signed_data), e.g. a .p7b bundle" in p7b.message
    text = refusal(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "key.cer", pki.now)
    assert "'key.cer' is a PEM text file holding PUBLIC KEY, not a certificate." in text.message
    shaped = refusal(b"\x30\x04\x30\x02\x05\x00", "shape.cer", pki.now)  # passes the heuristic, not a certificate
    assert shaped.reason == "not-a-certificate"
    assert "'shape.cer' looks like DER but is not a readable X.509 certificate" in shaped.message


def test_trailing_bytes_and_truncation(pki: TestPki) -> None:
    der = pki.leaf.der
    trailing = refusal(der + b"\r\n", "leaf.cer", pki.now)
    assert (trailing.reason, trailing.message) == (
        "trailing-bytes",
        f"{DER_FIRST}'leaf.cer' holds a DER certificate of {len(der)} bytes followed by 2 trailing byte(s). "
        "Upload exactly the certificate's bytes.")
    truncated = refusal(der[:-10], "leaf.cer", pki.now)
    assert truncated.message == (f"{DER_FIRST}'leaf.cer' is truncated: it announces {len(der)} bytes of DER but "
                                 f"has only {len(der) - 10}.")  # fmt: skip


# --- certificates that could never sign a package for this feed --------------------------------------------------


def rules_refusal(issued: IssuedCert, now: datetime, *, allow_self_issued: bool = False) -> CertificateRejected:
    rejected = refusal(issued.der, "signing.cer", now, allow_self_issued=allow_self_issued)
    assert rejected.reason == "certificate-rules"
    prefix = (f"The certificate in 'signing.cer' (subject '{issued.cert.subject.rfc4514_string().split(',')[0]}")
    assert rejected.message.startswith(prefix)
    assert f"SHA-256 {issued.sha256_fingerprint.lower()}) cannot sign packages for this feed: " in rejected.message
    return rejected


@pytest.mark.parametrize(("name", "code", "reason"), [
    ("wrong_eku_leaf", NuCode.NU3018, "it is not valid for code signing (extended key usages: Server Authentication "
                                      "(1.3.6.1.5.5.7.3.1)); a package-signing certificate needs Code Signing "
                                      "(1.3.6.1.5.5.7.3.3)"),
    ("weak_key_leaf", NuCode.NU3014, "its public key is an RSA key of 1024 bits; NuGet requires RSA with at least "
                                     "2048 bits"),
    ("sha1_leaf", NuCode.NU3013, "it is signed with sha1WithRSAEncryption (SHA-1) (1.2.840.113549.1.1.5); NuGet "
                                 "accepts only certificates signed with SHA-256, SHA-384 or SHA-512 and RSA"),
    ("lifetime_eku_leaf", NuCode.NU3015, "it has the lifetime-signing usage (1.3.6.1.4.1.311.10.3.13), which NuGet "
                                         "does not support: signatures would expire with the certificate"),
])  # fmt: skip
def test_certificate_rules(pki: TestPki, name: str, code: NuCode, reason: str) -> None:
    rejected = rules_refusal(getattr(pki, name), pki.now)
    assert rejected.message.endswith(f": {reason}.")
    assert [(f.code, f.message) for f in rejected.findings] == [(code, reason)]


def test_expired_and_not_yet_valid(pki: TestPki) -> None:
    expired = rules_refusal(pki.expired_leaf, pki.now)
    after = pki.expired_leaf.cert.not_valid_after_utc.isoformat()
    assert expired.message.endswith(f": it expired on {after}; packages signed with it would fail validation: "
                                    "upload the renewed certificate.")  # fmt: skip
    assert [f.code for f in expired.findings] == [NuCode.NU3037]
    early = rules_refusal(pki.not_yet_valid_leaf, pki.now)
    start = pki.not_yet_valid_leaf.cert.not_valid_before_utc.isoformat()
    assert early.message.endswith(f": it is not yet valid (valid from {start}).")
    assert [f.code for f in early.findings] == [NuCode.NU3017]
    # the same leaf once time has passed its start: accepted
    assert check_upload(pki.not_yet_valid_leaf.der, None, now=pki.now + timedelta(days=11), allow_self_issued=False)


def test_self_issued_only_when_the_operator_allows_it(pki: TestPki) -> None:
    rejected = rules_refusal(pki.self_issued, pki.now)
    assert rejected.message.endswith(
        ": it is self-issued (its issuer is its own subject), so packages signed with it do not chain to a trusted "
        "root; this feed does not accept self-issued certificates (the operator setting "
        "allow_self_issued_certificates is off).")
    assert check_upload(pki.self_issued.der, "me.cer", now=pki.now, allow_self_issued=True) == pki.self_issued.cert


def test_every_broken_rule_is_named(extra_leaves: dict[str, IssuedCert], pki: TestPki) -> None:
    rejected = rules_refusal(extra_leaves["weak-sha1"], pki.now)
    assert [f.code for f in rejected.findings] == [NuCode.NU3013, NuCode.NU3014]
    assert "sha1WithRSAEncryption (SHA-1)" in rejected.message and "RSA key of 1024 bits" in rejected.message


def test_no_eku_extension_is_valid_for_every_usage_as_in_nuget(extra_leaves: dict[str, IssuedCert],
                                                               pki: TestPki) -> None:  # fmt: skip
    leaf = extra_leaves["no-eku"]
    assert check_upload(leaf.der, "leaf.cer", now=pki.now, allow_self_issued=False) == leaf.cert


def test_fingerprints() -> None:
    value = "AB" * 32
    assert certificates.parse_fingerprint(value) == "ab" * 32
    assert certificates.parse_fingerprint(":".join(["AB"] * 32)) == "ab" * 32
    with pytest.raises(InvalidInputError, match="is a SHA-1 fingerprint: certificates are identified by their "
                                                "SHA-256 fingerprint"):  # fmt: skip
        certificates.parse_fingerprint("ab" * 20)
    with pytest.raises(InvalidInputError, match="is not a SHA-256 certificate fingerprint"):
        certificates.parse_fingerprint("xyz")


# --- registration on both backends ------------------------------------------------------------------------------


def build(ctx: ServiceContext) -> None:
    for name in ("alice", "bob", "olga", "carl"):
        user(ctx, name)
    organization(ctx, "contoso", admins=["olga"], collaborators=["carl"])


def count(ctx: ServiceContext, model: type[Certificate] | type[AccountCertificate]) -> int:
    with ctx.db.reading() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_register_twice_several_accounts_and_unregister(service_ctx: ServiceContext, pki: TestPki,
                                                        clock: FakeClock) -> None:  # fmt: skip
    build(service_ctx)
    ctx, der = service_ctx, pki.leaf.der
    sha256 = hashlib.sha256(der).hexdigest()
    first = certificates.register(ctx, OPERATOR, "alice", der, "alice.cer")
    assert first.added and first.certificate.sha256 == sha256
    info = first.certificate
    assert (info.subject, info.issuer) == ("O=nuseal tests, CN=nuseal test leaf",  # as .NET prints names
                                           "O=nuseal tests, CN=nuseal test intermediate")  # fmt: skip
    assert info.not_after == pki.leaf.cert.not_valid_after_utc and info.registered_at == clock.now
    assert info.sha1 == hashlib.sha1(der).hexdigest() and not info.self_issued

    clock.advance(timedelta(minutes=5))
    again = certificates.register(ctx, OPERATOR, "ALICE", der, "alice.cer")
    assert not again.added and again.certificate.registered_at == clock.now - timedelta(minutes=5)
    assert certificates.register(ctx, OPERATOR, "contoso", der, "alice.cer").added
    assert (count(ctx, Certificate), count(ctx, AccountCertificate)) == (1, 2)

    assert certificates.unregister(ctx, OPERATOR, "alice", sha256.upper())
    assert not certificates.unregister(ctx, OPERATOR, "alice", sha256)  # already gone: a no-op
    assert (count(ctx, Certificate), count(ctx, AccountCertificate)) == (1, 1)  # the certificate stays
    assert [c.sha256 for c in certificates.list_for_account(ctx, OPERATOR, "contoso")] == [sha256]
    assert certificates.list_for_account(ctx, OPERATOR, "alice") == []
    with pytest.raises(NotFoundError, match=r"The certificate does not exist\."):
        certificates.unregister(ctx, OPERATOR, "alice", "00" * 32)
    with pytest.raises(NotFoundError, match="no account named 'nobody'"):
        certificates.register(ctx, OPERATOR, "nobody", der, "x.cer")

    events = [e for e in audit.list_events(ctx) if e.action.startswith("account:certificate:")]
    assert [(e.action, e.subject, e.actor) for e in events] == [
        ("account:certificate:add", f"alice/{sha256}", "admin-cli"),
        ("account:certificate:add", f"contoso/{sha256}", "admin-cli"),
        ("account:certificate:remove", f"alice/{sha256}", "admin-cli"),
    ]
    assert events[0].before == {"registered": False}
    assert events[0].after == {"registered": True, "sha256": sha256, "subject": info.subject,
                               "issuer": info.issuer, "not_after": info.not_after.isoformat()}  # fmt: skip
    assert events[2].before is not None and events[2].before["registered"] is True
    assert events[2].after == {"registered": False}


def test_refused_uploads_store_nothing(service_ctx: ServiceContext, pki: TestPki) -> None:
    build(service_ctx)
    for data, name in ((pki.leaf.pem, "a.cer"), (pki.leaf.pfx_bytes(), "a.pfx"), (pki.expired_leaf.der, "b.cer")):
        with pytest.raises(CertificateRejected):
            certificates.register(service_ctx, OPERATOR, "alice", data, name)
    assert (count(service_ctx, Certificate), count(service_ctx, AccountCertificate)) == (0, 0)
    assert not [e for e in audit.list_events(service_ctx) if e.action.startswith("account:certificate:")]


def test_the_operator_setting_admits_self_issued_certificates(service_ctx: ServiceContext, pki: TestPki) -> None:
    import dataclasses

    build(service_ctx)
    with pytest.raises(CertificateRejected, match="self-issued"):
        certificates.register(service_ctx, OPERATOR, "alice", pki.self_issued.der, "me.cer")
    allowing = dataclasses.replace(service_ctx, settings=dataclasses.replace(
        service_ctx.settings, allow_self_issued_certificates=True))  # fmt: skip
    registered = certificates.register(allowing, OPERATOR, "alice", pki.self_issued.der, "me.cer")
    assert registered.added and registered.certificate.self_issued


@pytest.mark.parametrize(("who", "account", "may_manage", "may_view"), [
    (("alice", "alice"), "alice", True, True),
    (("olga", "contoso"), "contoso", True, True),  # org admin
    (("carl", "contoso"), "contoso", False, True),  # collaborator: can view, cannot register
    (("bob", "bob"), "alice", False, False),  # someone else
    (("olga", "olga"), "contoso", False, False),  # acting for herself, not for the organization
])  # fmt: skip
def test_who_may_register_and_list(service_ctx: ServiceContext, pki: TestPki, who: tuple[str, str], account: str,
                                   may_manage: bool, may_view: bool) -> None:  # fmt: skip
    build(service_ctx)
    actor = principal(service_ctx, *who)
    try:
        certificates.register(service_ctx, actor, account, pki.leaf.der, "leaf.cer")
    except AccessDenied:
        assert not may_manage
    else:
        assert may_manage
    try:
        listed = certificates.list_for_account(service_ctx, actor, account)
    except AccessDenied:
        assert not may_view
    else:
        assert may_view and len(listed) == (1 if may_manage else 0)
    certificates.register(service_ctx, OPERATOR, account, pki.leaf.der, "leaf.cer")
    try:
        certificates.unregister(service_ctx, actor, account, pki.leaf.sha256_fingerprint)
    except AccessDenied:
        assert not may_manage
        assert len(certificates.list_for_account(service_ctx, OPERATOR, account)) == 1
    else:
        assert may_manage and certificates.list_for_account(service_ctx, OPERATOR, account) == []


def test_the_denial_says_which_account_the_principal_acts_for(service_ctx: ServiceContext, pki: TestPki) -> None:
    build(service_ctx)
    with pytest.raises(AccessDenied, match="acts for olga, not for contoso: use one that acts for contoso"):
        certificates.register(service_ctx, principal(service_ctx, "olga"), "contoso", pki.leaf.der, "a.cer")
    with pytest.raises(AccessDenied):  # who may comes before what was uploaded
        certificates.register(service_ctx, principal(service_ctx, "carl", "contoso"), "contoso", pki.leaf.pem, "a")


def test_listing_is_ordered_by_registration(service_ctx: ServiceContext, pki: TestPki, clock: FakeClock,
                                            extra_leaves: dict[str, IssuedCert], tmp_path: Path) -> None:  # fmt: skip
    build(service_ctx)
    certificates.register(service_ctx, OPERATOR, "alice", extra_leaves["second"].der, "b.cer")
    clock.advance(timedelta(seconds=1))
    certificates.register(service_ctx, OPERATOR, "alice", pki.leaf.der, "a.cer")
    listed = certificates.list_for_account(service_ctx, OPERATOR, "alice")
    assert [c.sha256 for c in listed] == [extra_leaves["second"].sha256_fingerprint.lower(),
                                          pki.leaf.sha256_fingerprint.lower()]  # fmt: skip
    document = listed[0].to_dict(clock.now)
    assert set(document) == {"sha256", "sha1", "subject", "issuer", "not_before", "not_after", "expired",
                             "self_issued", "registered_at"}  # fmt: skip
    assert document["expired"] is False
    assert listed[0].to_dict(listed[0].not_after)["expired"] is True
