"""The validation job with repository signing (services.validation), on both backends: a pushed version goes from
``validating`` to ``available`` repository-signed (primary on unsigned, countersignature on author-signed, the
author signature untouched), or to ``failed`` with nuget.org's findings; foreign repository signatures are
stripped; a rotation during the job makes it sign again with the new certificate; no version is signed twice."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from tests.support.repository_signing import SERVICE_INDEX, SigningFeed, signatures_of

from nuseal.enums import SignatureKind
from nuseal.server.db.models import PackageVersion
from nuseal.server.services import certificates, push, push_checks, repository_certificates, status, validation
from nuseal.server.services.permissions import Operator, Principal
from nuseal.server.services.validation import FeedSigning, Outcome

OPERATOR = Operator()


def _key(feed: SigningFeed, name: str, *, certificate: bool) -> Principal:
    from nuseal.server.services import accounts

    feed._owner(name)
    if certificate:
        certificates.register(feed.ctx, OPERATOR, name, feed.pki.leaf.der, "leaf.cer")
    with feed.ctx.db.reading() as session:
        account = accounts.find_account(session, name)
        return Principal(account.id, account.id, name)


def _pushed(feed: SigningFeed, package_id: str, version: str, *, author_signed: bool, who: Principal,
            source: Path | None = None) -> int:  # fmt: skip
    path = source or feed.build(package_id, version, author_signed=author_signed)
    outcome = push.push_package(feed.ctx, who, path, enqueue=lambda _: None)
    assert outcome.status == "validating"
    return outcome.version_id


def _signing(feed: SigningFeed) -> FeedSigning:
    return FeedSigning(feed.keyring, SERVICE_INDEX)


def _served(feed: SigningFeed, version_id: int) -> tuple[PackageVersion, bytes]:
    return feed.served(version_id)


def test_an_unsigned_package_gets_a_repository_primary_signature(feed: SigningFeed, tmp_path: Path) -> None:
    carol = _key(feed, "carol", certificate=False)
    version_id = _pushed(feed, "Job.Unsigned", "1.0.0", author_signed=False, who=carol)
    assert validation.validate_version(feed.ctx, version_id, signing=_signing(feed)) is Outcome.AVAILABLE
    row, data = _served(feed, version_id)
    found = signatures_of(data, tmp_path)
    assert (found.primary, found.owners, found.service_index_url) == (SignatureKind.REPOSITORY, ("carol",),
                                                                     SERVICE_INDEX)  # fmt: skip
    assert (row.status, row.signature_kind, row.repo_cert_sha256) == ("available", "repository", found.repository_cert)
    assert row.upload_blob is not None and row.upload_blob != row.package_blob
    # a second delivery of the message finds nothing to do: signed once
    assert validation.validate_version(feed.ctx, version_id, signing=_signing(feed)) is Outcome.SKIPPED
    assert [k for k in feed.ctx.blobs.list_keys("packages/job.unsigned/") if k.endswith(".nupkg")] == [
        row.package_blob]


def test_an_author_signed_package_gets_a_countersignature_and_keeps_its_author_signature(
    feed: SigningFeed, tmp_path: Path
) -> None:
    alice = _key(feed, "alice", certificate=True)
    path = feed.build("Job.Signed", "1.0.0", author_signed=True)
    pushed = path.read_bytes()
    version_id = _pushed(feed, "Job.Signed", "1.0.0", author_signed=True, who=alice, source=path)
    assert validation.validate_version(feed.ctx, version_id, signing=_signing(feed)) is Outcome.AVAILABLE
    row, data = _served(feed, version_id)
    found, before = signatures_of(data, tmp_path), signatures_of(pushed, tmp_path)
    assert (found.primary, found.repository_signatures, found.owners) == (SignatureKind.AUTHOR, 1, ("alice",))
    assert found.author_signature_value == before.author_signature_value
    assert row.signature_kind == "repository" and row.author_cert_sha256 is not None
    with feed.ctx.blobs.open(str(row.upload_blob)) as upload:
        assert upload.read() == pushed  # the pushed bytes are kept as pushed


def test_a_foreign_repository_countersignature_is_stripped_and_replaced(feed: SigningFeed, tmp_path: Path) -> None:
    from nuseal.server.services.repository_signing import sign_for_feed

    alice = _key(feed, "alice", certificate=True)
    source = feed.build("Job.Foreign", "1.0.0", author_signed=True)
    foreign_cert = feed.keyring.certificate(_row(feed))
    foreign = source.with_suffix(".foreign.nupkg")
    sign_for_feed(source, foreign, owners=["mallory"], service_index_url="https://other.example/v3/index.json",
                  repo_cert=foreign_cert, timestamper=feed.keyring.timestamper(foreign_cert), now=feed.clock())
    assert signatures_of(foreign.read_bytes(), tmp_path).service_index_url == "https://other.example/v3/index.json"
    version_id = _pushed_raw(feed, alice, foreign)
    assert validation.validate_version(feed.ctx, version_id, signing=_signing(feed)) is Outcome.AVAILABLE
    _, data = _served(feed, version_id)
    found = signatures_of(data, tmp_path)
    assert (found.service_index_url, found.owners, found.repository_signatures) == (SERVICE_INDEX, ("alice",), 1)


def _row(feed: SigningFeed):  # type: ignore[no-untyped-def]
    with feed.ctx.db.reading() as session:
        row = repository_certificates.active_certificate(session)
        assert row is not None
        return row


def _pushed_raw(feed: SigningFeed, who: Principal, path: Path) -> int:
    """A validating version for ``path`` as persist leaves it (the push's checks refuse repository signatures
    today; the job must still strip any that reach it)."""
    parsed = push_checks.parse(path)
    persisted = push.persist(feed.ctx, who, parsed, push_checks.Verification())
    return persisted.version_id


def test_an_author_countersignature_fails_the_version_with_nuget_orgs_finding(feed: SigningFeed) -> None:
    carol = _key(feed, "carol", certificate=False)
    version_id = _pushed(feed, "Job.Later", "1.0.0", author_signed=False, who=carol)
    # certificates registered after the push: the job judges the signer rules again and refuses the unsigned one
    certificates.register(feed.ctx, OPERATOR, "carol", feed.pki.leaf.der, "leaf.cer")
    assert validation.validate_version(feed.ctx, version_id, signing=_signing(feed)) is Outcome.FAILED
    found = status.package_status(feed.ctx, "Job.Later", "1.0.0")
    assert found.status == "failed" and [f.code for f in found.findings] == ["PackageIsNotSigned"]
    with feed.ctx.db.reading() as session:
        row = session.scalars(select(PackageVersion).where(PackageVersion.id == version_id)).one()
        assert row.package_blob is None and row.lease_owner is None


def test_a_rotation_while_signing_makes_the_job_sign_again_with_the_new_certificate(
    feed: SigningFeed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    carol = _key(feed, "carol", certificate=False)
    version_id = _pushed(feed, "Job.Rotated", "1.0.0", author_signed=False, who=carol)
    real_commit = validation._commit
    new: list[str] = []

    def rotate_then_commit(*args: object, **kwargs: object) -> Outcome:
        if not new:
            new.append(feed.add_certificate())  # activated: the job's certificate no longer signs
        return real_commit(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(validation, "_commit", rotate_then_commit)
    assert validation.validate_version(feed.ctx, version_id, signing=_signing(feed)) is Outcome.RETRY
    assert status.package_status(feed.ctx, "Job.Rotated", "1.0.0").status == "validating"
    assert validation.validate_version(feed.ctx, version_id, signing=_signing(feed)) is Outcome.AVAILABLE
    row, data = _served(feed, version_id)
    assert row.repo_cert_sha256 == new[0] == signatures_of(data, tmp_path).repository_cert
