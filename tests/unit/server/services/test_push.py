"""The push service, step by step, on both backends: what is accepted and stored, what is refused (with nuget.org's
texts) and that a refusal stores nothing, duplicates, replacing a failed version, signed packages verified under
the feed policy (a tampered one refused with NU3008), and pushes interrupted between persist and publish."""

from __future__ import annotations

import dataclasses
import io
import shutil
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import cast

import pytest
from cryptography.hazmat.primitives import hashes
from sqlalchemy import func, select, update
from tests.support.feed_packages import build_package, nuspec, sign
from tests.support.pki import TestPki
from tests.support.server_factories import OPERATOR, organization, user
from tests.support.server_fixtures import T0, FakeClock, make_context
from tests.support.servers import LoopbackServer
from tests.support.tamper import append_to_entry

from nuseal.codes import IssueCode, NuCode
from nuseal.enums import RevocationMode
from nuseal.server.db.models import PackageVersion
from nuseal.server.services import apikeys, audit, certificates, packages, push, push_checks, status, validation
from nuseal.server.services.context import ServiceContext
from nuseal.server.services.errors import ConflictError
from nuseal.server.services.feed_documents import FeedReader, SearchQuery
from nuseal.server.services.permissions import AccessDenied, Principal
from nuseal.server.services.push_checks import PushRejected
from nuseal.server.storage import BlobStore, StorageError


@dataclass
class Feed:
    ctx: ServiceContext
    alice: Principal  # user alice, for herself
    carl: Principal  # collaborator carl, for contoso
    eve: Principal  # a stranger
    folder: Path

    def reader(self) -> FeedReader:
        return FeedReader(self.ctx.db, "http://feed.test")

    def package(self, name: str, package_id: str = "Contoso.Lib", version: str = "1.0.0", **options: object) -> Path:
        return build_package(self.folder / name, package_id, version, **options)  # type: ignore[arg-type]


def _key(ctx: ServiceContext, owner: str, holder: str | None = None) -> Principal:
    token = apikeys.create(ctx, OPERATOR, owner, holder_name=holder, scopes=["package:push", "package:unlist"]).token
    return apikeys.authenticate(ctx, token)


def _feed(ctx: ServiceContext, folder: Path) -> Feed:
    for name in ("alice", "carl", "eve"):
        user(ctx, name)
    organization(ctx, "contoso", admins=["alice"], collaborators=["carl"])
    folder.mkdir(parents=True, exist_ok=True)
    return Feed(ctx, _key(ctx, "alice"), _key(ctx, "contoso", "carl"), _key(ctx, "eve"), folder)


@pytest.fixture
def feed(service_ctx: ServiceContext, tmp_path: Path) -> Feed:
    return _feed(service_ctx, tmp_path / "packages")


def stored_keys(ctx: ServiceContext) -> set[str]:
    return set(ctx.blobs.list_keys())


def version_rows(ctx: ServiceContext) -> int:
    with ctx.db.reading() as session:
        return int(session.scalar(select(func.count()).select_from(PackageVersion)) or 0)


def test_an_unsigned_package_is_stored_registered_and_available_at_once(feed: Feed) -> None:
    path = feed.package("a.nupkg", "Contoso.Lib", "1.0.0-Beta+build.5", metadata="<title>Contoso</title>",
                        dependencies=[("net8.0", [("Newtonsoft.Json", "13.0.1")])])
    outcome = push.push_package(feed.ctx, feed.carl, path)
    assert (outcome.package_id, outcome.version, outcome.full_version, outcome.status) == (
        "Contoso.Lib", "1.0.0-Beta", "1.0.0-Beta+build.5", "available")
    assert outcome.created_registration and outcome.warnings == ()
    assert packages.list_owners(feed.ctx, "contoso.lib") == ["contoso"]  # the key's account owns the new id
    found = status.package_status(feed.ctx, "CONTOSO.LIB", "1.0.0-beta")
    assert (found.status, found.listed, found.version, found.pushed_by, found.owners) == (
        "available", True, "1.0.0-Beta+build.5", "carl", ("contoso",))
    with feed.ctx.db.reading() as session:
        row = session.scalars(select(PackageVersion)).one()
        assert (row.lower_version, row.is_prerelease, row.is_semver2, row.signature_kind) == (
            "1.0.0-beta", True, True, "unsigned")
        assert row.package_blob is not None and row.upload_blob is not None
        assert row.package_blob.startswith("packages/contoso.lib/1.0.0-beta/") and row.nuspec_blob is not None
        # the pushed bytes are kept under their own key; without repository signing they are also what is served
        assert row.upload_blob.startswith("uploads/contoso.lib/1.0.0-beta/")
        assert row.package_metadata["title"] == "Contoso"
        assert row.package_metadata["dependency_groups"] == [{"target_framework": "net8.0", "dependencies": [
            {"id": "Newtonsoft.Json", "range": "[13.0.1, )", "include": [], "exclude": []}]}]
        assert row.published_at == feed.ctx.now() and row.package_size == path.stat().st_size
    with feed.ctx.blobs.open(row.package_blob) as reader:
        assert reader.read() == path.read_bytes()  # the pushed bytes, exactly
    with feed.ctx.blobs.open(row.upload_blob) as upload:
        assert upload.read() == path.read_bytes()
    assert not [k for k in stored_keys(feed.ctx) if k.startswith("incoming/")]
    [event] = [e for e in audit.list_events(feed.ctx) if e.action == "package:version:push"]
    assert event.subject == "Contoso.Lib/1.0.0-Beta" and event.actor.startswith("carl for contoso (key ")
    assert event.after is not None and event.after["new_id"] is True
    reader = feed.reader()
    assert reader.versions_index("contoso.lib") is not None
    assert reader.blob("contoso.lib", "1.0.0-beta") is not None


def test_the_same_version_again_is_a_conflict_whatever_the_case_or_build_metadata(feed: Feed) -> None:
    push.push_package(feed.ctx, feed.alice, feed.package("a.nupkg", "Alice.Lib", "1.0.0+a"))
    keys = stored_keys(feed.ctx)
    for name, package_id, version in (("b.nupkg", "ALICE.LIB", "1.0.0+b"), ("c.nupkg", "alice.lib", "1.0")):
        with pytest.raises(ConflictError, match=r"^A package with ID '.*' and version '1\.0\.0' already exists and "
                                                r"cannot be modified\.$"):
            push.push_package(feed.ctx, feed.alice, feed.package(name, package_id, version))
    assert stored_keys(feed.ctx) == keys and version_rows(feed.ctx) == 1
    push.push_package(feed.ctx, feed.alice, feed.package("d.nupkg", "alice.lib", "1.0.1"))
    assert [v.version for v in packages.list_packages(feed.ctx)[0].versions] == ["1.0.0", "1.0.1"]
    assert packages.list_packages(feed.ctx)[0].id == "Alice.Lib"  # the case of the first push


def test_only_owners_push_new_versions_and_nothing_is_stored_on_refusal(feed: Feed) -> None:
    push.push_package(feed.ctx, feed.alice, feed.package("a.nupkg", "Alice.Lib", "1.0.0"))
    keys, events = stored_keys(feed.ctx), len(audit.list_events(feed.ctx))
    for who in (feed.eve, feed.carl):
        with pytest.raises(AccessDenied, match=r"may not push a new version on package 'Alice\.Lib'"):
            push.push_package(feed.ctx, who, feed.package("b.nupkg", "alice.lib", "2.0.0"))
    assert stored_keys(feed.ctx) == keys and len(audit.list_events(feed.ctx)) == events and version_rows(feed.ctx) == 1


def _zip(path: Path, entries: dict[str, bytes], *, date: tuple[int, ...] = (2020, 1, 1, 0, 0, 0)) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in entries.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=date), content)  # type: ignore[arg-type]
    return path


GOOD = nuspec("Contoso.Lib", "1.0.0")


@pytest.mark.parametrize(("entries", "code", "message"), [
    ({"a.txt": b"x"}, IssueCode.INVALID_PACKAGE_FILE,
     "Failed to read the package file. Ensure it is a valid NuGet package with a valid manifest. "
     "(the package: the package has no .nuspec file at its root.)"),
    ({"Contoso.Lib.nuspec": b"<package><metadata><id>A</id>"}, IssueCode.INVALID_NUSPEC,
     "The NuGet package contains an invalid .nuspec file. The error encountered was: 'Contoso.Lib.nuspec: the nuspec "
     "is not well-formed XML"),
    ({"Contoso.Lib.nuspec": b'<!DOCTYPE package [<!ENTITY x "y">]><package/>'}, IssueCode.INVALID_NUSPEC,
     "declares a DTD"),
    ({"Contoso.Lib.nuspec": GOOD, "lib/a.dll": b"1", "LIB/A.DLL": b"2"}, IssueCode.INVALID_PACKAGE_ENTRY,
     "The package contains one or more duplicated files in the same folder."),
    ({"Contoso.Lib.nuspec": GOOD, "content/other.nuspec": GOOD}, IssueCode.INVALID_NUSPEC,
     "The package contains multiple nuspec files."),
    ({"Contoso.Lib.nuspec": GOOD, "lib//a.dll": b"1"}, IssueCode.INVALID_PACKAGE_ENTRY,
     "The package entry for 'lib//a.dll' has a  double forward slashes in path"),
    ({"Contoso.Lib.nuspec": nuspec("Contoso..Lib", "1.0.0")}, IssueCode.INVALID_NUSPEC,
     "The package manifest contains an invalid ID: 'Contoso..Lib', because it must start with a letter"),
    ({"Contoso.Lib.nuspec": nuspec("Ünïcode.Lib", "1.0.0")}, IssueCode.INVALID_NUSPEC, "invalid ID: 'Ünïcode.Lib'"),
    ({"Contoso.Lib.nuspec": nuspec("A" * 101, "1.0.0")}, IssueCode.INVALID_NUSPEC,
     "Package IDs can be no longer than 100 characters."),
    ({"Contoso.Lib.nuspec": nuspec("Contoso.Lib", "1.0.0-1")}, IssueCode.INVALID_NUSPEC,
     "The package manifest contains an invalid Version: '1.0.0-1'"),
    ({"Contoso.Lib.nuspec": nuspec("Contoso.Lib", "1.0.0", metadata="<projectUrl>ftp://x/</projectUrl>")},
     IssueCode.INVALID_NUSPEC, "The package manifest contains an invalid URL"),
    ({"Contoso.Lib.nuspec": nuspec("Contoso.Lib", "1.0.0", dependencies=[(None, [("B", "1.0"), ("b", "2.0")])])},
     IssueCode.INVALID_NUSPEC, "The package manifest contains a duplicate dependency: any b"),
    ({"Contoso.Lib.nuspec": nuspec("Contoso.Lib", "1.0.0", dependencies=[(None, [("B", "[1.0.0+meta, )")])])},
     IssueCode.INVALID_NUSPEC, "The package manifest contains an invalid Dependency Version: '1.0.0+meta'"),
    ({"Contoso.Lib.nuspec": nuspec("Contoso.Lib", "1.0.0", metadata='<license type="url">x</license>')},
     IssueCode.INVALID_NUSPEC, "Unsupported license type 'url'."),
    ({"Contoso.Lib.nuspec": nuspec("Contoso.Lib", "1.0.0", metadata="<requireLicenseAcceptance>maybe"
                                                                    "</requireLicenseAcceptance>")},
     IssueCode.INVALID_NUSPEC, "<metadata><requireLicenseAcceptance> is 'maybe', expected true or false"),
])  # fmt: skip
def test_bad_packages_are_refused_naming_the_problem_and_nothing_is_stored(
    feed: Feed, entries: dict[str, bytes], code: IssueCode, message: str
) -> None:
    keys = stored_keys(feed.ctx)
    with pytest.raises(PushRejected) as refused:
        push.push_package(feed.ctx, feed.alice, _zip(feed.folder / "bad.nupkg", entries))
    assert message in refused.value.message
    assert code in [f.code for f in refused.value.findings]
    assert str(refused.value).startswith(f"{refused.value.findings[0].code.value}: ")
    assert stored_keys(feed.ctx) == keys and version_rows(feed.ctx) == 0


def test_entries_dated_more_than_a_day_ahead_of_the_feed_clock_are_refused(feed: Feed, clock: FakeClock) -> None:
    ahead = clock.now + timedelta(days=2)
    path = _zip(feed.folder / "future.nupkg", {"Contoso.Lib.nuspec": GOOD, "lib/a.dll": b"1"},
                date=(ahead.year, ahead.month, ahead.day, 0, 0, 0))
    with pytest.raises(PushRejected, match=r"One or more files, such as 'Contoso\.Lib\.nuspec' have a date in "
                                                r"the future\."):
        push.push_package(feed.ctx, feed.alice, path)
    clock.advance(timedelta(days=2))
    assert push.push_package(feed.ctx, feed.alice, path).status == "available"


def test_not_a_zip_at_all(feed: Feed) -> None:
    path = feed.folder / "junk.nupkg"
    path.write_bytes(b"this is not a package" * 10)
    with pytest.raises(PushRejected, match=r"^InvalidPackageFile: Failed to read the package file"):
        push.push_package(feed.ctx, feed.alice, path)


def test_zip64_packages_are_refused(feed: Feed) -> None:
    path = feed.folder / "zip64.nupkg"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("Contoso.Lib.nuspec", GOOD)
        with archive.open("lib/a.dll", "w", force_zip64=True) as entry:
            entry.write(b"x")
    with pytest.raises(PushRejected, match=r"^PackageIsZip64: Zip64 packages are not supported\.$"):
        push.push_package(feed.ctx, feed.alice, path)


def test_the_entry_limit_leaves_room_for_a_repository_signature(feed: Feed, pki: TestPki,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # nuget.org: signed packages up to 65534 entries, unsigned fewer (checked with the real limit in test_limits).
    monkeypatch.setattr(push_checks, "MAX_PACKAGE_ENTRIES", 3)
    files = {"lib/a.dll": b"1", "lib/b.dll": b"2"}  # with the nuspec: 3 entries
    with pytest.raises(PushRejected, match="PackageContainsTooManyEntries: The package contains too many"):
        push.push_package(feed.ctx, feed.alice, feed.package("u.nupkg", files=files))
    signed = sign(feed.package("s.nupkg", files={"lib/a.dll": b"1"}), pki)  # 2 + the signature = 3
    assert len(zipfile.ZipFile(signed).infolist()) == 3
    clocked = dataclasses.replace(feed.ctx, clock=FakeClock(pki.now + timedelta(minutes=1)))
    _register_signers(clocked, pki)
    assert push.push_package(_with_test_roots(clocked, pki), feed.alice, signed).status == "available"


def _with_test_roots(ctx: ServiceContext, pki: TestPki) -> ServiceContext:
    """The test PKI's root for code signing and timestamping, revocation offline."""
    folder = ctx.settings.data_dir
    folder.mkdir(parents=True, exist_ok=True)
    roots = folder / "roots.pem"
    roots.write_bytes(pki.root.pem)
    settings = dataclasses.replace(ctx.settings, trust_roots=roots, timestamp_roots=roots,
                                   revocation_mode=RevocationMode.OFFLINE)
    return dataclasses.replace(ctx, settings=settings)


def _register_signers(ctx: ServiceContext, pki: TestPki, account: str = "alice") -> None:
    """Register the PKI's leaves to ``account``: signed pushes need a registered certificate (the signer rules)."""
    for leaf in (pki.leaf, pki.untrusted_leaf):
        certificates.register(ctx, OPERATOR, account, leaf.der, f"{leaf.name}.cer")


@pytest.fixture
def signed_feed(feed: Feed, pki: TestPki) -> Feed:
    """The feed with the test PKI's root as trust roots, offline revocation, the clock a minute after signing,
    and the PKI's leaves registered to alice."""
    clocked = dataclasses.replace(feed.ctx, clock=FakeClock(pki.now + timedelta(minutes=1)))
    _register_signers(clocked, pki)
    return dataclasses.replace(feed, ctx=_with_test_roots(clocked, pki))


def test_a_signed_package_is_verified_and_its_signer_recorded(signed_feed: Feed, pki: TestPki,
                                                             crl_server: LoopbackServer,
                                                             ocsp_server: LoopbackServer) -> None:
    path = sign(signed_feed.package("s.nupkg", "Alice.Signed", "1.0.0"), pki)
    assert push.push_package(signed_feed.ctx, signed_feed.alice, path).warnings == ()  # offline: nothing to report
    online = dataclasses.replace(signed_feed.ctx, settings=dataclasses.replace(
        signed_feed.ctx.settings, revocation_mode=RevocationMode.ONLINE))
    path = sign(signed_feed.package("t.nupkg", "Alice.Signed", "2.0.0"), pki)
    with crl_server.answering(503), ocsp_server.answering(503):  # revocation status cannot be known
        outcome = push.push_package(online, signed_feed.alice, path)
    assert outcome.status == "available"
    # revocation status unknown (signer and timestamp chains) is a warning under the feed policy (nuget.org's),
    # kept with the version
    assert {f.code for f in outcome.warnings} == {NuCode.NU3018, NuCode.NU3028}
    found = status.package_status(signed_feed.ctx, "Alice.Signed", "2.0.0")
    assert {f.code for f in found.findings} == {"NU3018", "NU3028"}
    assert {f.severity for f in found.findings} == {"warning"}
    with signed_feed.ctx.db.reading() as session:
        row = session.scalars(select(PackageVersion).where(PackageVersion.version == "2.0.0")).one()
        assert row.signature_kind == "author"
        assert row.author_cert_sha256 == pki.leaf.cert.fingerprint(hashes.SHA256()).hex()


def test_a_tampered_signed_package_is_refused_with_nu3008_and_only_the_refusal_is_recorded(signed_feed: Feed,
                                                                                            pki: TestPki) -> None:
    path = sign(signed_feed.package("s.nupkg", "Alice.Signed", "1.0.0"), pki)
    append_to_entry(path, path, name="lib/net8.0/Contoso.Lib.dll", extra=b"evil")
    keys = stored_keys(signed_feed.ctx)
    with pytest.raises(PushRejected) as refused:
        push.push_package(signed_feed.ctx, signed_feed.alice, path)
    assert [f.code for f in refused.value.findings] == [NuCode.NU3008]
    assert str(refused.value).startswith("NU3008: ") and refused.value.stage == "full"
    assert stored_keys(signed_feed.ctx) == keys  # the bytes never reach the store
    found = status.package_status(signed_feed.ctx, "Alice.Signed", "1.0.0")  # the refusal, in the status API
    assert (found.status, [f.code for f in found.findings], found.pushed_by) == ("failed", ["NU3008"], "alice")
    with signed_feed.ctx.db.reading() as session:
        row = session.scalars(select(PackageVersion)).one()
        assert (row.package_blob, row.upload_blob, row.nuspec_blob) == (None, None, None)
        assert row.package_size == path.stat().st_size and row.upload_sha512  # what was refused, not the bytes
    events = [e.action for e in audit.list_events(signed_feed.ctx) if e.action.startswith("package:version:")]
    assert events == ["package:version:refuse"]
    reader = signed_feed.reader()
    assert reader.versions_index("alice.signed") is None and reader.blob("alice.signed", "1.0.0") is None
    # the version may be pushed again: the refusal is replaced
    good = sign(signed_feed.package("g.nupkg", "Alice.Signed", "1.0.0"), pki)
    assert push.push_package(signed_feed.ctx, signed_feed.alice, good).status == "available"
    assert status.package_status(signed_feed.ctx, "Alice.Signed", "1.0.0").findings == ()


def test_an_untrusted_signer_is_refused(signed_feed: Feed, pki: TestPki) -> None:
    path = sign(signed_feed.package("s.nupkg", "Alice.Signed", "1.0.0"), pki, leaf=pki.untrusted_leaf)
    with pytest.raises(PushRejected, match=r"^NU3018: "):
        push.push_package(signed_feed.ctx, signed_feed.alice, path)


# --- publish failures and interrupted pushes --------------------------------------------------------------------


class Crash(BaseException):
    """The process dying (not an error anything handles)."""


class Broken:
    """The backend's store, with the ``n``-th ``publish`` (1: the push's upload, 2: the job's signed blob)
    replaced: ``crash-before``/``crash-after`` die before/after publishing, ``storage-error`` fails."""

    def __init__(self, inner: BlobStore, mode: str, n: int) -> None:
        self.inner, self.mode, self.n, self.calls = inner, mode, n, 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def publish(self, staged: object, key: str) -> object:
        self.calls += 1
        if self.calls != self.n:
            return self.inner.publish(staged, key)  # type: ignore[arg-type]
        if self.mode == "crash-before":
            raise Crash
        if self.mode == "crash-after":
            self.inner.publish(staged, key)  # type: ignore[arg-type]
            raise Crash
        raise StorageError(f"cannot publish '{key}': disk full")


def _broken(feed: Feed, mode: str, n: int = 2) -> ServiceContext:
    return dataclasses.replace(feed.ctx, blobs=cast(BlobStore, Broken(feed.ctx.blobs, mode, n)))


def _not_served(feed: Feed) -> None:
    reader = feed.reader()
    assert reader.versions_index("alice.lib") is None and reader.blob("alice.lib", "1.0.0") is None
    assert reader.search(SearchQuery()).body == b'{"totalHits":0,"data":[]}'


def test_a_lost_job_message_leaves_the_version_validating_unserved_until_the_sweep_finds_it(feed: Feed) -> None:
    path = feed.package("a.nupkg", "Alice.Lib", "1.0.0")
    lost: list[int] = []
    outcome = push.push_package(feed.ctx, feed.alice, path, enqueue=lost.append)
    assert outcome.status == "validating" and lost == [outcome.version_id]
    assert status.package_status(feed.ctx, "Alice.Lib", "1.0.0").status == "validating"
    _not_served(feed)
    assert validation.stuck_versions(feed.ctx) == [outcome.version_id]
    assert validation.validate_version(feed.ctx, outcome.version_id, signing=None) is validation.Outcome.AVAILABLE
    assert validation.validate_version(feed.ctx, outcome.version_id, signing=None) is validation.Outcome.SKIPPED
    assert validation.stuck_versions(feed.ctx) == []
    ref = feed.reader().blob("alice.lib", "1.0.0")
    assert ref is not None
    with feed.ctx.blobs.open(ref.key) as blob:
        assert blob.read() == path.read_bytes()
    assert feed.reader().blob("alice.lib", "1.0.0", nuspec=True) is not None
    assert not [k for k in stored_keys(feed.ctx) if k.startswith("incoming/")]


@pytest.mark.parametrize("moment", ["crash-before", "crash-after"])
def test_a_job_killed_while_publishing_is_never_served_and_runs_again_once_its_lease_expired(
    feed: Feed, clock: FakeClock, moment: str
) -> None:
    path = feed.package("a.nupkg", "Alice.Lib", "1.0.0")
    version_id = push.push_package(feed.ctx, feed.alice, path, enqueue=lambda _: None).version_id
    with pytest.raises(Crash):
        validation.validate_version(_broken(feed, moment, n=1), version_id, signing=None)
    assert status.package_status(feed.ctx, "Alice.Lib", "1.0.0").status == "validating"
    _not_served(feed)
    published = [k for k in stored_keys(feed.ctx) if k.startswith("packages/")]
    assert published == ([] if moment == "crash-before" else [published[0]])  # an orphan, never served
    # Crash is not an error the job handles: its lease stays (as after SIGKILL) until it expires.
    with feed.ctx.db.transaction() as session:
        session.execute(update(PackageVersion).values(lease_owner="dead-worker",
                                                      lease_until=feed.ctx.now() + timedelta(seconds=60)))
    assert validation.stuck_versions(feed.ctx) == []
    assert validation.validate_version(feed.ctx, version_id, signing=None) is validation.Outcome.SKIPPED
    clock.advance(timedelta(seconds=61))
    assert validation.stuck_versions(feed.ctx) == [version_id]
    assert validation.validate_version(feed.ctx, version_id, signing=None) is validation.Outcome.AVAILABLE
    ref = feed.reader().blob("alice.lib", "1.0.0")
    assert ref is not None
    with feed.ctx.blobs.open(ref.key) as blob:
        assert blob.read() == path.read_bytes()


def test_a_version_whose_upload_is_gone_fails_and_may_be_pushed_again(feed: Feed) -> None:
    path = feed.package("a.nupkg", "Alice.Lib", "1.0.0")
    version_id = push.push_package(feed.ctx, feed.alice, path, enqueue=lambda _: None).version_id
    for key in list(feed.ctx.blobs.list_keys("uploads/")):
        feed.ctx.blobs.delete(key)
    assert validation.validate_version(feed.ctx, version_id, signing=None) is validation.Outcome.FAILED
    found = status.package_status(feed.ctx, "Alice.Lib", "1.0.0")
    assert found.status == "failed" and found.findings[-1].code == "PackageStorageFailed"
    _not_served(feed)
    assert push.push_package(feed.ctx, feed.alice, path).status == "available"  # replaces the failed version
    assert status.package_status(feed.ctx, "Alice.Lib", "1.0.0").findings == ()


def test_a_storage_failure_refuses_the_push_and_stores_nothing(feed: Feed) -> None:
    path = feed.package("a.nupkg", "Alice.Lib", "1.0.0")
    with pytest.raises(push.PushStorageFailed, match=r"Alice\.Lib/1\.0\.0 could not be stored; push it again"):
        push.push_package(_broken(feed, "storage-error", n=1), feed.alice, path)
    assert version_rows(feed.ctx) == 0 and not stored_keys(feed.ctx)
    outcome = push.push_package(feed.ctx, feed.alice, path)
    assert outcome.status == "available" and outcome.created_registration


def test_a_storage_failure_in_the_job_leaves_the_version_validating_for_a_retry(feed: Feed) -> None:
    path = feed.package("a.nupkg", "Alice.Lib", "1.0.0")
    version_id = push.push_package(feed.ctx, feed.alice, path, enqueue=lambda _: None).version_id
    with pytest.raises(StorageError, match="disk full"):
        validation.validate_version(_broken(feed, "storage-error", n=1), version_id, signing=None)
    assert status.package_status(feed.ctx, "Alice.Lib", "1.0.0").status == "validating"
    assert validation.stuck_versions(feed.ctx) == [version_id]  # the lease was given back: retried at once
    assert validation.validate_version(feed.ctx, version_id, signing=None) is validation.Outcome.AVAILABLE


def test_an_orphaned_blob_is_never_served(feed: Feed) -> None:
    push.push_package(feed.ctx, feed.alice, feed.package("a.nupkg", "Alice.Lib", "1.0.0"))
    feed.ctx.blobs.put("packages/alice.lib/2.0.0/0123456789ab.nupkg", io.BytesIO(b"not in the database"))
    reader = feed.reader()
    assert reader.blob("alice.lib", "2.0.0") is None
    assert reader.versions_index("alice.lib") is not None
    assert b"2.0.0" not in cast(bytes, reader.versions_index("alice.lib").body)


def test_the_upload_limit_applies_when_staging(feed: Feed) -> None:
    small = dataclasses.replace(feed.ctx, settings=dataclasses.replace(feed.ctx.settings, max_package_bytes=100))
    with pytest.raises(StorageError, match="larger than 100 bytes"):
        push.push_package(small, feed.alice, feed.package("a.nupkg", "Alice.Lib", "1.0.0"))
    assert version_rows(feed.ctx) == 0 and not list(feed.ctx.blobs.list_keys("incoming/"))


@pytest.fixture
def two_contexts(service_ctx: ServiceContext, tmp_path: Path) -> Iterator[tuple[ServiceContext, ServiceContext]]:
    """Two service contexts (two "processes") on the same database and store."""
    other = make_context(service_ctx.db, tmp_path / "other", cast(FakeClock, service_ctx.clock))
    yield service_ctx, dataclasses.replace(other, blobs=service_ctx.blobs)


def test_concurrent_first_pushes_of_one_id_make_one_registration(two_contexts: tuple[ServiceContext, ServiceContext],
                                                                 tmp_path: Path) -> None:
    first, second = two_contexts
    feed = _feed(first, tmp_path / "p")
    a = feed.package("a.nupkg", "Race.Lib", "1.0.0")
    b = shutil.copy(feed.package("b.nupkg", "RACE.LIB", "2.0.0"), tmp_path / "b2.nupkg")
    parsed = push_checks.parse(Path(b))
    assert push_checks.check_access(second, feed.alice, parsed).new_package  # checked before the first persisted
    push.push_package(first, feed.alice, a)
    persisted = push.persist(second, feed.alice, parsed, push_checks.Verification())
    assert not persisted.created_registration
    [race] = packages.list_packages(first)
    assert race.id == "Race.Lib" and race.owners == ("alice",)
    assert validation.validate_version(second, persisted.version_id, signing=None) is validation.Outcome.AVAILABLE
    assert [v.version for v in packages.list_packages(first)[0].versions] == ["1.0.0", "2.0.0"]


@pytest.fixture(scope="module")
def at_the_entry_limit(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A package with exactly 65534 entries, the last one a (dummy) ``.signature.p7s``."""
    path = tmp_path_factory.mktemp("limit") / "many.nupkg"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("Contoso.Lib.nuspec", GOOD)
        for index in range(65534 - 2):
            archive.writestr(f"c/{index}", b"")
        archive.writestr(".signature.p7s", b"x")
    return path.read_bytes()


@pytest.mark.parametrize("signed", [True, False])
def test_nuget_org_entry_limit_65534_for_signed_packages_fewer_for_unsigned(
    tmp_path: Path, at_the_entry_limit: bytes, signed: bool
) -> None:
    path = tmp_path / "many.nupkg"
    # The same archive, unsigned: the signature entry renamed in both headers (same length, nothing moves).
    path.write_bytes(at_the_entry_limit if signed else at_the_entry_limit.replace(b".signature.p7s", b".signature.p7x"))
    parsed = push_checks.parse(path)
    assert (len(parsed.entries), parsed.signed, parsed.zip64) == (65534, signed, False)
    found = [f.code for f in push_checks.package_checks(parsed, T0)]
    assert found == ([] if signed else [IssueCode.PACKAGE_CONTAINS_TOO_MANY_ENTRIES])
