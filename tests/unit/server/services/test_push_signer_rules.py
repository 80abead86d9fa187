"""The signer rules inside the push, on both backends: the dry run answers what the push then does (one code path),
refusals are recorded as failed versions without bytes, and the judgement in the push's own transaction sees a
certificate removed while the push was being verified, and holds off a removal arriving while it commits."""

from __future__ import annotations

import dataclasses
import threading
import zipfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import select
from tests.support.feed_packages import build_package, sign
from tests.support.governance import trusting_context
from tests.support.pki import IssuedCert, TestPki
from tests.support.server_factories import OPERATOR, user
from tests.support.server_fixtures import FakeClock
from tests.support.signed_packages import Packages
from tests.support.tamper import append_to_entry

from nuseal.server.db.models import AuditEvent, PackageVersion
from nuseal.server.services import apikeys, certificates, package_check, push, signing_rules, status, validation
from nuseal.server.services.context import ServiceContext
from nuseal.server.services.errors import ConflictError, NotFoundError
from nuseal.server.services.permissions import Principal
from nuseal.server.services.push_checks import PushRejected
from nuseal.server.storage import BlobStore


@pytest.fixture
def clock(pki: TestPki) -> FakeClock:
    return FakeClock(pki.now + timedelta(minutes=1))


@pytest.fixture
def ctx(service_ctx: ServiceContext, pki: TestPki, tmp_path: Path) -> ServiceContext:
    user(service_ctx, "alice")
    return trusting_context(service_ctx, pki, tmp_path)


@pytest.fixture(scope="module")
def second(pki: TestPki) -> IssuedCert:
    return pki.by_name.get("push-rules-second") or pki.issue_leaf("push-rules-second")


def alice(ctx: ServiceContext) -> Principal:
    token = apikeys.create(ctx, OPERATOR, "alice", scopes=["package:push"]).token
    return apikeys.authenticate(ctx, token)


def register(ctx: ServiceContext, leaf: IssuedCert) -> None:
    certificates.register(ctx, OPERATOR, "alice", leaf.der, f"{leaf.name}.cer")


def actions(ctx: ServiceContext) -> list[str]:
    with ctx.db.reading() as session:
        return list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


def test_the_dry_run_answers_what_the_push_then_does(ctx: ServiceContext, pki: TestPki, second: IssuedCert,
                                                     tmp_path: Path) -> None:  # fmt: skip
    register(ctx, pki.leaf)
    key = alice(ctx)
    zip64 = tmp_path / "zip64.nupkg"
    with zipfile.ZipFile(build_package(zip64, "Alice.Lib", "9.0.0"), "a") as archive, \
            archive.open("lib/big.dll", "w", force_zip64=True) as entry:
        entry.write(b"x")
    tampered = sign(build_package(tmp_path / "t.nupkg", "Alice.Lib", "3.0.0"), pki)
    append_to_entry(tampered, tampered, name="lib/net8.0/Contoso.Lib.dll", extra=b"!")
    cases = [  # (file, the push's answer: None accepted, else (stage, codes) or "conflict")
        (sign(build_package(tmp_path / "ok.nupkg", "Alice.Lib", "1.0.0"), pki), None),
        (build_package(tmp_path / "unsigned.nupkg", "Alice.Lib", "2.0.0"), ("fast", ["PackageIsNotSigned"])),
        (sign(build_package(tmp_path / "other.nupkg", "Alice.Lib", "2.0.0"), pki, leaf=second),
         ("full", ["PackageIsSignedWithUnauthorizedCertificate"])),
        (tampered, ("full", ["NU3008"])),
        (zip64, ("package", ["PackageIsZip64"])),
        (sign(build_package(tmp_path / "again.nupkg", "alice.lib", "1.0"), pki), "conflict"),
    ]  # fmt: skip
    for path, expected in cases:
        report = package_check.check_package(ctx, key, path)
        pushed: object
        try:
            outcome = push.push_package(ctx, key, path)
        except PushRejected as exc:
            pushed = (exc.stage.value, [f.code.value for f in exc.findings])
            assert exc.reason == report.message
        except ConflictError as exc:
            pushed = "conflict"
            assert exc.message == report.message
        else:
            pushed = None
            assert outcome.warnings == report.warnings
        assert pushed == expected, path.name
        assert (report.stage.value if report.stage else None, [f.code.value for f in report.findings]) == (
            (None, []) if expected is None else ("conflict", ["PackageAlreadyExists"]) if expected == "conflict"
            else expected), path.name  # fmt: skip
    # the refusals by the signing steps are in the status API; the package checks' refusal is not
    assert status.package_status(ctx, "Alice.Lib", "2.0.0").status == "failed"
    assert [f.code for f in status.package_status(ctx, "Alice.Lib", "3.0.0").findings] == ["NU3008"]
    assert actions(ctx).count("package:version:refuse") == 3
    with pytest.raises(NotFoundError, match=r"no version '9\.0\.0'"):
        status.package_status(ctx, "Alice.Lib", "9.0.0")


class _RemovingWhileStaging:
    """The backend's store; ``stage`` first runs ``before`` (a change landing after the checks, before persist)."""

    def __init__(self, inner: BlobStore, before: Callable[[], object]) -> None:
        self.inner, self.before = inner, before

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def stage(self, *args: Any, **kwargs: Any) -> Any:
        self.before()
        return self.inner.stage(*args, **kwargs)


def test_a_certificate_removed_while_the_push_is_checked_refuses_it_in_the_transaction(
    ctx: ServiceContext, pki: TestPki, second: IssuedCert, tmp_path: Path
) -> None:
    register(ctx, pki.leaf)
    register(ctx, second)
    path = sign(build_package(tmp_path / "a.nupkg", "Alice.Lib", "1.0.0"), pki)
    removing = dataclasses.replace(ctx, blobs=cast(BlobStore, _RemovingWhileStaging(ctx.blobs, lambda: (
        certificates.unregister(ctx, OPERATOR, "alice", pki.leaf.sha256_fingerprint)))))
    with pytest.raises(PushRejected) as refused:
        push.push_package(removing, alice(ctx), path)
    assert [f.code.value for f in refused.value.findings] == ["PackageIsSignedWithUnauthorizedCertificate"]
    assert refused.value.reason.startswith("The package was signed, but the signing certificate (SHA-256 thumbprint "
                                           f"{pki.leaf.sha256_fingerprint.lower()}) is not associated")
    assert list(ctx.blobs.list_keys()) == []  # the staged upload is gone again
    found = status.package_status(ctx, "Alice.Lib", "1.0.0")
    assert (found.status, [f.code for f in found.findings]) == ("failed", [
        "PackageIsSignedWithUnauthorizedCertificate"])
    assert actions(ctx)[-2:] == ["account:certificate:remove", "package:version:refuse"]


def test_a_removal_waits_for_the_push_being_committed(ctx: ServiceContext, pki: TestPki, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    register(ctx, pki.leaf)
    key = alice(ctx)
    path = sign(build_package(tmp_path / "a.nupkg", "Alice.Lib", "1.0.0"), pki)
    judged, proceed = threading.Event(), threading.Event()
    calls: list[int] = []
    judge_push = signing_rules.judge_push

    def judging_slowly(*args: Any, **kwargs: Any) -> signing_rules.PushJudgement:
        calls.append(1)
        judgement = judge_push(*args, **kwargs)
        if len(calls) == 2:  # the judgement inside the push's transaction (the first one is the checks')
            judged.set()
            assert proceed.wait(30)
        return judgement

    monkeypatch.setattr(signing_rules, "judge_push", judging_slowly)
    results: dict[str, object] = {}
    pushing = threading.Thread(target=lambda: results.update(
        push=push.push_package(ctx, key, path, enqueue=lambda _: None).status))
    removing = threading.Thread(target=lambda: results.update(removed=certificates.unregister(
        ctx, OPERATOR, "alice", pki.leaf.sha256_fingerprint)))
    pushing.start()
    assert judged.wait(60), "the push never reached its transaction"
    removing.start()
    removing.join(timeout=0.5)
    blocked = removing.is_alive()  # the removal waits for the push's transaction
    proceed.set()
    pushing.join(timeout=60)
    removing.join(timeout=60)
    assert blocked and results == {"push": "validating", "removed": True}
    assert actions(ctx)[-2:] == ["package:version:push", "account:certificate:remove"]
    # The validation job judges the signer rules again: the certificate is gone, so the version fails.
    with ctx.db.reading() as session:
        version_id = session.scalars(select(PackageVersion.id)).one()
    assert validation.validate_version(ctx, version_id, signing=None) is validation.Outcome.FAILED
    with ctx.db.reading() as session:
        row = session.scalars(select(PackageVersion)).one()
        assert row.status == "failed"
        assert [f["code"] for f in row.findings] == ["PackageShouldNotBeSigned"]  # no certificate left at all


def test_the_feed_policy_refuses_each_signature_problem_with_its_codes(ctx: ServiceContext, pki: TestPki,
                                                                      signed_packages: Packages) -> None:
    # nuget.org's author settings (spec §B.3): one timestamp exactly, a trusted chain, a readable signature; and
    # a repository countersignature is not judged at push. The signers are registered: only the signature problem
    # remains.
    register(ctx, pki.leaf)
    register(ctx, pki.untrusted_leaf)
    key = alice(ctx)
    expected = {
        "author_no_timestamp": (["NU3027"], "NU3027: The author primary signature should be timestamped"),
        "two_timestamps": (["NU3000"], "NU3000: Multiple timestamps are not accepted."),
        "untrusted": (["NU3018"], "NU3018: The author primary signature's signing certificate is not trusted"),
        "corrupt_signature": (["NU3003"], "NU3003: The package signature is invalid"),
    }  # fmt: skip
    for name, (codes, reason) in expected.items():
        with pytest.raises(PushRejected) as refused:
            push.push_package(ctx, key, getattr(signed_packages, name))
        assert (refused.value.stage, [f.code.value for f in refused.value.findings]) == ("full", codes), name
        assert refused.value.reason.startswith(reason), (name, refused.value.reason)
    # A foreign repository countersignature is accepted (the failed 1.0.0 replaced) and stripped by the job: the
    # version is served exactly as its author signed it.
    assert push.push_package(ctx, key, signed_packages.countersigned).status == "available"
    with ctx.db.reading() as session:
        served = session.scalars(select(PackageVersion.package_blob).where(PackageVersion.status == "available")).one()
    assert served is not None
    with ctx.blobs.open(served) as reader:
        assert reader.read() == signed_packages.author.read_bytes()
