"""verify_batch: input order, one bad package never stops the batch, a verifier bug is a verdict; the accept/exit
decision; path expansion."""

from __future__ import annotations

import faulthandler
import multiprocessing
import os
import pickle
import signal
import threading
from pathlib import Path

import pytest
from tests.support.pki import TestPki
from tests.support.signed_packages import Packages

from nuseal import parallel as process_pool
from nuseal.codes import IssueCode
from nuseal.enums import RevocationMode
from nuseal.findings import Finding, Severity
from nuseal.record import replace
from nuseal.verify import batch
from nuseal.verify import paths as verify_paths
from nuseal.verify.policy import VerificationPolicy
from nuseal.verify.result import PackageVerdict, Status
from nuseal.verify.setup import VerificationSetup
from nuseal.x509.roots import TrustStore


def _setup(pki: TestPki, policy: VerificationPolicy | None = None) -> VerificationSetup:
    store = TrustStore(code_signing=(pki.root.cert,), timestamping=(pki.root.cert,))
    return VerificationSetup(policy or VerificationPolicy.verify_command(), store, RevocationMode.OFFLINE)


def test_results_come_back_in_input_order_and_the_callback_sees_each_once(
    pki: TestPki, signed_packages: Packages, tmp_path: Path
) -> None:
    not_a_zip = tmp_path / "broken.nupkg"
    not_a_zip.write_bytes(b"not a zip")
    pkgs = signed_packages
    paths = [pkgs.unsigned, pkgs.author, not_a_zip, pkgs.untrusted, pkgs.author]
    seen: list[str] = []
    verdicts = batch.verify_batch(paths, _setup(pki), now=signed_packages.now, on_verdict=lambda v: seen.append(v.path))
    assert [v.path for v in verdicts] == [str(p) for p in paths] == seen
    assert [v.valid for v in verdicts] == [False, True, False, False, True]
    assert verdicts[2].error is not None and verdicts[2].error_code is IssueCode.INVALID_PACKAGE_FILE


def test_a_bug_while_verifying_one_package_is_that_packages_verdict(
    pki: TestPki, signed_packages: Packages, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = batch.verify_package

    def exploding(path: Path, **kwargs: object) -> PackageVerdict:
        if Path(path) == signed_packages.untrusted:
            raise KeyError("boom")
        return real(path, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(batch, "verify_package", exploding)
    pkgs = signed_packages
    verdicts = batch.verify_batch([pkgs.untrusted, pkgs.author], _setup(pki), now=pkgs.now)
    broken, fine = verdicts
    assert not broken.valid and broken.error_code is IssueCode.VERIFICATION_FAILED
    assert broken.error is not None and "KeyError" in broken.error and str(signed_packages.untrusted) in broken.error
    assert fine.valid
    assert batch.exit_code(verdicts) == 1


def _verdict(valid: bool, *findings: Finding) -> PackageVerdict:
    return PackageVerdict("p.nupkg", "P", "1.0.0", True, (Status.VALID if valid else Status.DISALLOWED,),
                          findings=findings)


def test_accepted_needs_validity_and_no_error() -> None:
    warning = Finding(IssueCode.VERIFICATION_FAILED, Severity.WARNING, "w")
    error = replace(warning, severity=Severity.ERROR)
    assert batch.accepted(_verdict(True)) and batch.accepted(_verdict(True, warning))
    assert not batch.accepted(_verdict(True, error))
    assert not batch.accepted(_verdict(False))
    assert not batch.accepted(replace(_verdict(True), error="unreadable"))


def test_exit_code_is_zero_only_for_a_non_empty_all_accepted_batch() -> None:
    assert batch.exit_code([_verdict(True), _verdict(True)]) == 0
    assert batch.exit_code([_verdict(True), _verdict(False)]) == 1
    assert batch.exit_code([]) == 1
    assert batch.exit_code([batch.missing_verdict("nothing-*.nupkg")]) == 1


def test_missing_verdict_names_the_pattern() -> None:
    verdict = batch.missing_verdict("gone.nupkg")
    assert verdict.error == "File does not exist (gone.nupkg)." and verdict.error_code is IssueCode.PACKAGE_NOT_FOUND


def test_expand_paths_keeps_pattern_order_and_reports_misses(tmp_path: Path) -> None:
    for name in ("b.nupkg", "a.nupkg", "sub/c.nupkg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    found, missing = batch.expand_paths([str(tmp_path / "sub" / "c.nupkg"), str(tmp_path / "*.nupkg"),
                                         str(tmp_path / "none*.nupkg"), str(tmp_path / "gone.nupkg")])
    assert [p.name for p in found] == ["c.nupkg", "a.nupkg", "b.nupkg"]
    assert missing == [str(tmp_path / "none*.nupkg"), str(tmp_path / "gone.nupkg")]
    recursive, _ = batch.expand_paths([str(tmp_path / "**" / "*.nupkg")])
    assert {p.name for p in recursive} == {"a.nupkg", "b.nupkg", "c.nupkg"}


@pytest.mark.parametrize("pattern", ["a.nupkg", "*.nupkg", "a?.nupkg", "[ab].nupkg", "a]b.nupkg", "**/x", "", "{a,b}"])
def test_has_magic_agrees_with_glob(pattern: str) -> None:
    import glob

    assert verify_paths.has_magic(pattern) is glob.has_magic(pattern)


def test_the_setup_pickles_for_worker_processes(pki: TestPki, signed_packages: Packages) -> None:
    setup = _setup(pki, VerificationPolicy.feed_push())
    copy = pickle.loads(pickle.dumps(setup))
    assert copy.policy == setup.policy and copy.revocation_mode is RevocationMode.OFFLINE
    assert copy.trust_store.code_signing == setup.trust_store.code_signing
    (verdict,) = batch.verify_batch([signed_packages.author], copy, now=signed_packages.now)
    assert verdict.valid, verdict.findings


# --- parallel batches ---------------------------------------------------------------------------------------------


@pytest.fixture
def forked_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers forked from this process even if session fixtures left server threads running, so that what a test
    monkeypatches here is what the workers run."""
    monkeypatch.setattr(process_pool, "_context", lambda preload: multiprocessing.get_context("fork"))


def _batch_paths(signed_packages: Packages, tmp_path: Path) -> list[Path]:
    not_a_zip = tmp_path / "broken.nupkg"
    not_a_zip.write_bytes(b"not a zip")
    pkgs = signed_packages
    return [pkgs.author, pkgs.unsigned, not_a_zip, pkgs.untrusted, pkgs.countersigned, pkgs.corrupt_signature,
            pkgs.two_timestamps, pkgs.author]


def test_parallel_verdicts_equal_the_in_process_ones_in_input_order(
    pki: TestPki, signed_packages: Packages, tmp_path: Path
) -> None:
    paths = _batch_paths(signed_packages, tmp_path)
    setup = _setup(pki)
    serial = batch.verify_batch(paths, setup, now=signed_packages.now)
    seen: list[str] = []
    parallel = batch.verify_batch(paths, setup, now=signed_packages.now, parallel=3,
                                  on_verdict=lambda v: seen.append(v.path))
    assert [v.to_dict() for v in parallel] == [v.to_dict() for v in serial]
    assert seen == [str(p) for p in paths]
    assert [v.valid for v in parallel] == [True, False, False, False, True, False, True, True]


@pytest.mark.usefixtures("forked_workers")
def test_parallel_batches_run_in_worker_processes(
    pki: TestPki, signed_packages: Packages, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = batch.verify_package

    def tagged(path: Path, **kwargs: object) -> PackageVerdict:
        return replace(real(path, **kwargs), extra={"pid": os.getpid()})  # type: ignore[arg-type]

    monkeypatch.setattr(batch, "verify_package", tagged)
    pkgs = signed_packages
    verdicts = batch.verify_batch([pkgs.author] * 6, _setup(pki), now=pkgs.now, parallel=2)
    pids = {v.extra["pid"] for v in verdicts}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    (alone,) = batch.verify_batch([pkgs.author], _setup(pki), now=pkgs.now, parallel=2)
    assert alone.extra["pid"] == os.getpid()  # one package: no pool


@pytest.mark.usefixtures("forked_workers")
def test_a_verifier_process_that_dies_costs_only_its_package(
    pki: TestPki, signed_packages: Packages, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = batch.verify_package
    pkgs = signed_packages

    def crashing(path: Path, **kwargs: object) -> PackageVerdict:
        if Path(path) == pkgs.untrusted:
            faulthandler.disable()  # pytest's handler would print the crash; a user's run prints nothing
            os.kill(os.getpid(), signal.SIGSEGV)  # what a crash in a native library looks like
        return real(path, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(batch, "verify_package", crashing)
    paths = [pkgs.author, pkgs.untrusted, pkgs.author, pkgs.author, pkgs.author]
    verdicts = batch.verify_batch(paths, _setup(pki), now=pkgs.now, parallel=2)
    assert [v.path for v in verdicts] == [str(p) for p in paths]
    assert [v.valid for v in verdicts] == [True, False, True, True, True]
    crashed = verdicts[1]
    assert crashed.error_code is IssueCode.VERIFICATION_FAILED
    assert crashed.error == f"'{pkgs.untrusted}' could not be verified: internal error: the worker process was " \
                           "killed by SIGSEGV"
    assert batch.exit_code(verdicts) == 1


def test_a_pickled_setup_reaches_workers_that_do_not_inherit_memory(
    pki: TestPki, signed_packages: Packages, tmp_path: Path
) -> None:
    # Another thread is running, so the pool must not fork this process: the setup travels pickled.
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, daemon=True)
    thread.start()
    try:
        paths = _batch_paths(signed_packages, tmp_path)
        verdicts = batch.verify_batch(paths, _setup(pki), now=signed_packages.now, parallel=2)
    finally:
        stop.set()
        thread.join()
    assert [v.valid for v in verdicts] == [True, False, False, False, True, False, True, True]


# --- a parallel batch in workers forked from this process (nuseal.forked) ------------------------------------------


@pytest.fixture
def helpers_fork(monkeypatch: pytest.MonkeyPatch) -> None:
    """The forked helpers even if session fixtures left server threads running (the CLI forks only when this process
    has no other thread)."""
    monkeypatch.setattr(batch, "_can_fork", lambda: True)


def _tag_pids(monkeypatch: pytest.MonkeyPatch, crash_on: Path | None = None) -> None:
    real = batch.verify_package

    def tagged(path: Path, **kwargs: object) -> PackageVerdict:
        if crash_on is not None and Path(path) == crash_on:
            faulthandler.disable()  # pytest's handler would print the crash; a user's run prints nothing
            os.kill(os.getpid(), signal.SIGSEGV)
        return replace(real(path, **kwargs), extra={"pid": os.getpid()})  # type: ignore[arg-type]

    monkeypatch.setattr(batch, "verify_package", tagged)


@pytest.mark.usefixtures("helpers_fork")
def test_a_parallel_batch_is_shared_among_forked_workers_without_a_pool(
    pki: TestPki, signed_packages: Packages, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _batch_paths(signed_packages, tmp_path)
    setup = _setup(pki)
    serial = batch.verify_batch(paths, setup, now=signed_packages.now)

    def no_pool(*args: object, **kwargs: object) -> None:
        raise AssertionError("a batch that may fork needs no pool")

    monkeypatch.setattr(batch.process_pool, "ordered_map", no_pool)
    _tag_pids(monkeypatch)
    seen: list[str] = []
    split = batch.verify_batch(paths, setup, now=signed_packages.now, parallel=2,
                               on_verdict=lambda v: seen.append(v.path))
    assert [replace(v, extra={}).to_dict() for v in split] == [v.to_dict() for v in serial]
    assert seen == [str(p) for p in paths]
    pids = [v.extra["pid"] for v in split]
    assert os.getpid() not in pids and len(set(pids)) == 2


@pytest.mark.usefixtures("helpers_fork", "forked_workers")
def test_a_forked_worker_that_dies_costs_only_its_package(
    pki: TestPki, signed_packages: Packages, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkgs = signed_packages
    _tag_pids(monkeypatch, crash_on=pkgs.untrusted)
    paths = [pkgs.author, pkgs.author, pkgs.author, pkgs.untrusted, pkgs.author, pkgs.author]
    seen: list[str] = []
    verdicts = batch.verify_batch(paths, _setup(pki), now=pkgs.now, parallel=2,
                                  on_verdict=lambda v: seen.append(v.path))
    assert seen == [str(p) for p in paths]
    assert [v.valid for v in verdicts] == [True, True, True, False, True, True]
    crashed = verdicts[3]
    assert crashed.error_code is IssueCode.VERIFICATION_FAILED
    assert crashed.error == f"'{pkgs.untrusted}' could not be verified: internal error: the worker process was " \
                           "killed by SIGSEGV"
    assert os.getpid() not in [v.extra["pid"] for v in verdicts if v.extra]


def test_forking_waits_for_a_single_thread() -> None:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, daemon=True)
    thread.start()
    try:
        assert not batch._can_fork()
    finally:
        stop.set()
        thread.join()
    assert batch._can_fork() is (threading.active_count() == 1)


@pytest.mark.usefixtures("helpers_fork", "forked_workers")
def test_when_the_system_refuses_a_worker_the_pool_verifies_the_whole_batch(
    pki: TestPki, signed_packages: Packages, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fork = os.fork
    forks: list[int] = []

    def second_fork_fails() -> int:
        forks.append(1)
        if len(forks) == 2:
            raise BlockingIOError(11, "Resource temporarily unavailable")
        return real_fork()

    calls: list[int] = []
    real_map = process_pool.ordered_map

    def spying_map(work: object, items: list[object], **kwargs: object) -> object:
        calls.append(len(items))
        monkeypatch.setattr(os, "fork", real_fork)  # the pool's own workers
        return real_map(work, items, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "fork", second_fork_fails)
    monkeypatch.setattr(batch.process_pool, "ordered_map", spying_map)
    pkgs = signed_packages
    seen: list[str] = []
    verdicts = batch.verify_batch([pkgs.author, pkgs.untrusted, pkgs.author], _setup(pki), now=pkgs.now, parallel=2,
                                  on_verdict=lambda v: seen.append(v.path))
    assert len(forks) == 2 and calls == [3]
    assert [v.valid for v in verdicts] == [True, False, True]
    assert seen == [str(pkgs.author), str(pkgs.untrusted), str(pkgs.author)]  # each reported once
