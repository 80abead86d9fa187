"""sign_batch: outcomes in input order, a bad package (or a dead worker) costs only itself, worker processes
keep several timestamp requests in flight over their own keep-alive connections; HttpTimestamper shared by threads."""

from __future__ import annotations

import faulthandler
import multiprocessing
import os
import pickle
import signal
import threading
import time
import zipfile
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.support.pki import TestPki
from tests.unit.sign.helpers import make_package, signer_for

from nuseal import forked
from nuseal import parallel as process_pool
from nuseal.codes import NuCode
from nuseal.errors import NusealError, SigningError
from nuseal.record import replace
from nuseal.sign import batch
from nuseal.sign.author import AuthorSignRequest
from nuseal.sign.common import SignOptions, SignResult
from nuseal.sign.repository import RepositorySignRequest
from nuseal.sign.signers import KeySigner
from nuseal.timestamp.client import HttpTimestamper
from nuseal.timestamp.tsa import TimestampAuthority, make_server


def utc_now() -> datetime:
    """The signing clock (module level: worker processes that do not inherit memory receive it pickled)."""
    return datetime.now(UTC)


class CountingAuthority(TimestampAuthority):
    """The TSA, slowed down a little and counting requests in flight, so overlap is observable."""

    def __init__(self, pki: TestPki, delay: float) -> None:
        super().__init__(pki.tsa.cert, pki.tsa.key, pki.tsa.chain[1:], clock=utc_now)
        self.delay = delay
        self.requests = 0
        self.active = 0
        self.peak = 0
        self._count_lock = threading.Lock()

    def respond(self, request_der: bytes) -> bytes:
        with self._count_lock:
            self.requests += 1
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            time.sleep(self.delay)
            return super().respond(request_der)
        finally:
            with self._count_lock:
                self.active -= 1


class Tsa:
    def __init__(self, authority: CountingAuthority, url: str, connections: list[object]) -> None:
        self.authority = authority
        self.url = url
        self.connections = connections


@pytest.fixture
def tsa(pki: TestPki) -> Iterator[Tsa]:
    """nuseal's TSA over HTTP on 127.0.0.1, counting TCP connections and concurrent requests."""
    authority = CountingAuthority(pki, delay=0.15)
    server = make_server(authority)
    connections: list[object] = []
    accept = server.get_request

    def counting_accept() -> tuple[object, object]:
        conn, address = accept()
        connections.append(address)
        return conn, address

    server.get_request = counting_accept  # type: ignore[method-assign]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    yield Tsa(authority, f"http://{host!s}:{port}/", connections)
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def forked_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers forked from this process even with threads running, so that monkeypatches reach them."""
    monkeypatch.setattr(process_pool, "_context", lambda preload: multiprocessing.get_context("fork"))
    monkeypatch.setattr(forked, "can_fork", lambda: True)


@pytest.fixture
def pool_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ``ordered_map`` pool (what ``sign_batch`` uses where it may not fork), forked so monkeypatches reach it."""
    monkeypatch.setattr(process_pool, "_context", lambda preload: multiprocessing.get_context("fork"))
    monkeypatch.setattr(forked, "can_fork", lambda: False)


def _packages(tmp_path: Path, count: int) -> list[tuple[Path, Path]]:
    (tmp_path / "out").mkdir(exist_ok=True)
    pairs = []
    for index in range(count):
        src = make_package(tmp_path / f"P{index}.1.0.0.nupkg")
        pairs.append((src, tmp_path / "out" / src.name))
    return pairs


def _has_timestamp(path: Path) -> bool:
    with zipfile.ZipFile(path) as zf:
        return b"\x06\x0b\x2a\x86\x48\x86\xf7\x0d\x01\x09\x10\x02\x0e" in zf.read(".signature.p7s")  # id-aa-tst


@pytest.mark.parametrize("workers", ["forked_workers", "pool_workers"])
def test_parallel_outcomes_keep_input_order_and_a_bad_package_costs_only_itself(
    pki: TestPki, tsa: Tsa, tmp_path: Path, request: pytest.FixtureRequest, workers: str
) -> None:
    request.getfixturevalue(workers)
    pairs = _packages(tmp_path, 6)
    broken = tmp_path / "broken.nupkg"
    broken.write_bytes(b"not a zip")
    pairs.insert(2, (broken, tmp_path / "out" / "broken.nupkg"))
    job = batch.SignJob(AuthorSignRequest(signer_for(pki.leaf)), utc_now, tsa.url)
    seen: list[Path] = []
    outcomes = batch.sign_batch(pairs, job, parallel=2, on_outcome=lambda o: seen.append(o.src))
    assert [o.src for o in outcomes] == [src for src, _ in pairs] == seen
    failed = outcomes[2]
    assert failed.result is None and isinstance(failed.error, NusealError) and not failed.dst.exists()
    good = [o for i, o in enumerate(outcomes) if i != 2]
    assert all(o.error is None and o.result is not None and o.result.timestamped for o in good)
    assert all(_has_timestamp(o.dst) for o in good)
    # Two workers, each with a run of packages in flight on its own keep-alive connections, had more requests
    # in flight together than there are workers (the TSA answers each after 0.15 s).
    assert tsa.authority.requests == 6
    assert 3 <= tsa.authority.peak <= 2 * batch.IN_FLIGHT
    assert 2 <= len(tsa.connections) <= 2 * batch.IN_FLIGHT


def test_in_process_batches_keep_a_few_requests_in_flight_on_keep_alive_connections(
    pki: TestPki, tsa: Tsa, tmp_path: Path
) -> None:
    pairs = _packages(tmp_path, 3 * batch.IN_FLIGHT)
    job = batch.SignJob(AuthorSignRequest(signer_for(pki.leaf)), utc_now, tsa.url)
    seen: list[Path] = []
    outcomes = batch.sign_batch(pairs, job, parallel=1, on_outcome=lambda o: seen.append(o.src))
    assert [o.src for o in outcomes] == [src for src, _ in pairs] == seen
    assert all(o.result is not None and o.result.timestamped and _has_timestamp(o.dst) for o in outcomes)
    assert 2 <= tsa.authority.peak <= batch.IN_FLIGHT
    assert len(tsa.connections) <= batch.IN_FLIGHT  # reused: 12 requests, at most 4 connections


def _written_when_interrupted(pairs: list[tuple[Path, Path]], pki: TestPki, *, parallel: int) -> list[Path]:
    """The outputs on disk after a batch whose caller stops (Ctrl+C) at the first outcome."""
    job = batch.SignJob(AuthorSignRequest(signer_for(pki.leaf)), utc_now)

    def stop(outcome: batch.SignOutcome) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        batch.sign_batch(pairs, job, parallel=parallel, on_outcome=stop)
    return [dst for _, dst in pairs if dst.exists()]


def test_in_process_batches_stop_starting_packages_when_the_caller_stops(pki: TestPki, tmp_path: Path) -> None:
    pairs = _packages(tmp_path, 6 * batch.IN_FLIGHT)
    written = _written_when_interrupted(pairs, pki, parallel=1)
    assert 1 <= len(written) <= 2 * batch.IN_FLIGHT + 1  # the window ahead of the first outcome, no more


def test_repository_jobs_and_refusals(pki: TestPki, tmp_path: Path) -> None:
    pairs = _packages(tmp_path, 3)
    request = RepositorySignRequest(signer_for(pki.leaf), "https://feed.example/v3/index.json")
    outcomes = batch.sign_batch(pairs, batch.SignJob(request, utc_now), parallel=2)
    assert [o.result.kind for o in outcomes if o.result] == ["repository"] * 3
    again = batch.sign_batch([(dst, dst) for _, dst in pairs], batch.SignJob(request, utc_now), parallel=2)
    assert all(isinstance(o.error, SigningError) and o.error.code is NuCode.NU3033 for o in again)


@pytest.mark.parametrize("workers", ["forked_workers", "pool_workers"])
def test_a_signing_process_that_dies_costs_only_its_package(
    pki: TestPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest, workers: str
) -> None:
    request.getfixturevalue(workers)
    pairs = _packages(tmp_path, 5)
    victim = pairs[1][0]
    real = batch.sign_package

    def crashing(src: Path, dst: Path, request: AuthorSignRequest, **kwargs: object) -> SignResult:
        if src == victim:
            faulthandler.disable()
            os.kill(os.getpid(), signal.SIGSEGV)
        return real(src, dst, request, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(batch, "sign_package", crashing)
    outcomes = batch.sign_batch(pairs, batch.SignJob(AuthorSignRequest(signer_for(pki.leaf)), utc_now), parallel=2)
    assert [o.src for o in outcomes] == [src for src, _ in pairs]
    assert [o.error is None for o in outcomes] == [True, False, True, True, True]
    error = outcomes[1].error
    assert isinstance(error, NusealError)
    assert error.message == f"'{victim}' could not be signed: internal error: the worker process was killed by SIGSEGV"
    assert not outcomes[1].dst.exists()


def test_a_bug_in_process_is_that_packages_error(pki: TestPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pairs = _packages(tmp_path, 2)
    monkeypatch.setattr(batch, "sign_package", lambda *a, **k: {}["missing"])
    outcomes = batch.sign_batch(pairs, batch.SignJob(AuthorSignRequest(signer_for(pki.leaf)), utc_now))
    assert all(isinstance(o.error, NusealError) and "internal error: KeyError" in o.error.message for o in outcomes)


class TokenSigner:
    """A signer that is not an in-memory key (like a PKCS#11 token): it must never go to a worker process."""

    def __init__(self, inner: KeySigner) -> None:
        self.inner = inner
        self.certificate = inner.certificate
        self.chain = inner.chain
        self.pids: list[int] = []

    def sign_raw(self, data: bytes, hash_algorithm: object) -> bytes:
        self.pids.append(os.getpid())
        return self.inner.sign_raw(data, hash_algorithm)  # type: ignore[arg-type]


def test_signers_that_are_not_in_memory_keys_sign_in_this_process(pki: TestPki, tmp_path: Path) -> None:
    signer = TokenSigner(signer_for(pki.leaf))
    outcomes = batch.sign_batch(_packages(tmp_path, 3), batch.SignJob(AuthorSignRequest(signer), utc_now),  # type: ignore[arg-type]
                                parallel=4)
    assert all(o.error is None for o in outcomes) and signer.pids == [os.getpid()] * 3


def test_key_signers_pickle_for_workers_that_do_not_inherit_memory(pki: TestPki, tmp_path: Path) -> None:
    signer = signer_for(pki.leaf)
    copy = pickle.loads(pickle.dumps(signer))
    assert (copy.certificate, copy.chain) == (signer.certificate, signer.chain)
    assert copy.sign_raw(b"data", "SHA256") == signer.sign_raw(b"data", "SHA256")  # type: ignore[arg-type]
    # With another thread running the pool is not forked from this process: the job travels pickled.
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, daemon=True)
    thread.start()
    try:
        options = replace(SignOptions(), durable=False)
        outcomes = batch.sign_batch(_packages(tmp_path, 3), batch.SignJob(AuthorSignRequest(signer, options), utc_now),
                                    parallel=2)
    finally:
        stop.set()
        thread.join()
    assert all(o.result is not None and o.result.kind == "author" for o in outcomes)


def test_one_http_timestamper_serves_threads_concurrently(tsa: Tsa) -> None:
    tokens: list[bytes] = []
    errors: list[BaseException] = []
    with HttpTimestamper(tsa.url, clock=utc_now) as stamper:

        def stamp(index: int) -> None:
            try:
                tokens.append(stamper.timestamp(bytes([index]) * 256, "SHA256"))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=stamp, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors and len(tokens) == 4
        assert tsa.authority.peak >= 2  # in flight together, each on a connection of the client's pool
        stamper.timestamp(b"again" * 50, "SHA256")
    assert len(tsa.connections) <= 4  # kept alive and reused, not one per request


def _run_in_one_worker(pki: TestPki, pairs: list[tuple[Path, Path]]) -> list[batch.SignOutcome]:
    """Sign ``pairs`` as one run of a batch worker made in this process (the folder-sync tests watch its calls)."""
    job = batch.SignJob(AuthorSignRequest(signer_for(pki.leaf)), utc_now)
    batch._open_worker(job, 4)
    try:
        return batch._sign_run_in_worker(pairs)
    finally:
        batch._worker = None


def test_a_worker_fsyncs_each_output_folder_once_per_run_before_reporting(
    pki: TestPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nuseal.package import fileio

    synced: list[Path] = []
    file_syncs: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(fileio, "fsync_directory", lambda folder: synced.append(Path(folder)))
    monkeypatch.setattr(fileio.os, "fsync", lambda fd: (file_syncs.append(fd), real_fsync(fd))[1])
    pairs = _packages(tmp_path, 4)
    pairs[3] = (pairs[3][0], tmp_path / "elsewhere" / pairs[3][1].name)
    (tmp_path / "elsewhere").mkdir()
    outcomes = _run_in_one_worker(pki, pairs)
    assert [o.error for o in outcomes] == [None] * 4
    assert all(dst.is_file() for _, dst in pairs)
    assert len(file_syncs) == 4  # every output is still fsynced before its rename
    assert sorted(synced) == sorted([tmp_path / "out", tmp_path / "elsewhere"])  # each folder once, not per package


def _three_packages_with_an_unsyncable_out_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> list[tuple[Path, Path]]:
    """Three packages, the first two written to ``out`` (whose fsync fails with EIO), the third to ``elsewhere``."""
    from nuseal.package import fileio

    def fail_for_out(folder: Path) -> None:
        if Path(folder).name == "out":
            raise OSError(5, "Input/output error")

    monkeypatch.setattr(fileio, "fsync_directory", fail_for_out)
    pairs = _packages(tmp_path, 3)
    pairs[2] = (pairs[2][0], tmp_path / "elsewhere" / pairs[2][1].name)
    (tmp_path / "elsewhere").mkdir()
    return pairs


def test_an_output_folder_that_cannot_be_synced_fails_its_packages(
    pki: TestPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pairs = _three_packages_with_an_unsyncable_out_folder(tmp_path, monkeypatch)
    outcomes = _run_in_one_worker(pki, pairs)
    assert [type(o.error) for o in outcomes] == [OSError, OSError, type(None)]
    assert outcomes[2].result is not None


def test_no_fsync_jobs_sync_no_folder(pki: TestPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nuseal.package import fileio

    synced: list[Path] = []
    monkeypatch.setattr(fileio, "fsync_directory", lambda folder: synced.append(Path(folder)))
    job = batch.SignJob(AuthorSignRequest(signer_for(pki.leaf), SignOptions(durable=False)), utc_now)
    batch._open_worker(job, 4)
    try:
        outcomes = batch._sign_run_in_worker(_packages(tmp_path, 2))
    finally:
        batch._worker = None
    assert [o.error for o in outcomes] == [None, None]
    assert synced == []


def test_in_process_batches_fsync_each_folder_once_per_group_before_reporting(
    pki: TestPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nuseal.package import fileio

    events: list[tuple[str, str]] = []
    file_syncs: list[int] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(fileio, "fsync_directory", lambda folder: events.append(("sync", Path(folder).name)))
    monkeypatch.setattr(fileio.os, "fsync", lambda fd: (file_syncs.append(fd), real_fsync(fd))[1])
    monkeypatch.setattr(fileio.os, "replace", lambda a, b: (real_replace(a, b), events.append(("write", str(b))))[0])
    pairs = _packages(tmp_path, 2 * batch.IN_FLIGHT + 2)
    pairs[1] = (pairs[1][0], tmp_path / "elsewhere" / pairs[1][1].name)
    (tmp_path / "elsewhere").mkdir()
    job = batch.SignJob(AuthorSignRequest(signer_for(pki.leaf)), utc_now)
    outcomes = batch.sign_batch(pairs, job, parallel=1, on_outcome=lambda o: events.append(("report", str(o.dst))))
    assert [o.error for o in outcomes] == [None] * len(pairs)
    assert len(file_syncs) == len(pairs)  # every output is still fsynced before its rename
    reports = [i for i, (kind, _) in enumerate(events) if kind == "report"]
    assert [events[i][1] for i in reports] == [str(dst) for _, dst in pairs]  # input order
    for i in reports:  # a sync of its folder after it was written and before it is reported
        dst = Path(events[i][1])
        written = events.index(("write", str(dst)))
        assert ("sync", dst.parent.name) in events[written:i], (dst, events)
    syncs = [e for e in events if e[0] == "sync"]
    assert len(syncs) <= len(pairs) + 1  # one per folder of a group (a group of one syncs one folder)


@pytest.mark.parametrize(("done", "expected"), [
    ([True, True, True, True, True, True], 4),  # at most IN_FLIGHT
    ([False, True, True], 3),  # the first is waited for, whatever is done after it comes along
    ([True, False, True], 1),  # stops at the first not yet done
    ([True], 1),
])
def test_in_flight_groups_take_the_done_outcomes_after_the_first(done: list[bool], expected: int) -> None:
    from collections import deque
    from concurrent.futures import Future

    futures: deque[Future[batch.SignOutcome]] = deque()
    for index, finished in enumerate(done):
        future: Future[batch.SignOutcome] = Future()
        outcome = batch.SignOutcome(Path(f"{index}"), Path(f"{index}"))
        if finished:
            future.set_result(outcome)
        elif index == 0:  # completes while it is waited for
            threading.Timer(0.05, future.set_result, args=(outcome,)).start()
        futures.append(future)
    group = batch._ready(futures)
    assert [o.src.name for o in group] == [str(i) for i in range(expected)]
    assert len(futures) == len(done) - expected


def test_in_process_batches_report_a_folder_that_cannot_be_synced(
    pki: TestPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pairs = _three_packages_with_an_unsyncable_out_folder(tmp_path, monkeypatch)
    job = batch.SignJob(AuthorSignRequest(signer_for(pki.leaf)), utc_now)
    outcomes = batch.sign_batch(pairs, job, parallel=1)
    assert [type(o.error) for o in outcomes] == [OSError, OSError, type(None)]
    assert outcomes[2].result is not None


@pytest.mark.usefixtures("pool_workers")
def test_pool_workers_take_runs_of_run_size_packages_and_sign_in_flight_at_a_time(
    pki: TestPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[int] = []
    in_flight: list[int] = []
    real_map = process_pool.ordered_map

    def spying_map(work, items, **kwargs):  # type: ignore[no-untyped-def]
        runs.extend(len(item) for item in items)
        in_flight.append(kwargs["initargs"][1])
        return real_map(work, items, **kwargs)

    monkeypatch.setattr(batch.process_pool, "ordered_map", spying_map)
    pairs = _packages(tmp_path, 2 * batch.RUN_SIZE + 3)
    job = batch.SignJob(AuthorSignRequest(signer_for(pki.leaf)), utc_now)
    outcomes = batch.sign_batch(pairs, job, parallel=2)
    assert [o.src for o in outcomes] == [src for src, _ in pairs]
    assert all(o.error is None and o.result is not None for o in outcomes)
    assert runs == [batch.RUN_SIZE, batch.RUN_SIZE, 3]
    assert in_flight == [batch.IN_FLIGHT]


def _serving(pki: TestPki) -> tuple[forked._Channel, threading.Thread]:
    """``forked._serve`` (a forked worker's loop) on a thread of this process, and this process's end of its pipes."""
    mine, theirs = forked._channels()
    job = batch.SignJob(AuthorSignRequest(signer_for(pki.leaf)), utc_now)
    side = batch._streaming_side(job)
    thread = threading.Thread(target=forked._serve, args=(theirs, side, 4, forked.REPORT), daemon=True)
    thread.start()
    return mine, thread


def test_a_forked_worker_goes_on_signing_while_it_syncs_and_reports_a_group(
    pki: TestPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nuseal.package import fileio

    pairs = _packages(tmp_path, 3 * forked.REPORT)
    started: list[Path] = []
    events: list[tuple[str, str]] = []
    real_sign_one, real_replace = batch.sign_one, os.replace
    later = threading.Event()

    def watched_sign_one(job: batch.SignJob, src: Path, dst: Path, stamper: object) -> batch.SignOutcome:
        started.append(src)
        if len(started) > forked.REPORT + 4:  # a package beyond the first group and the threads' first round
            later.set()
        return real_sign_one(job, src, dst, stamper)  # type: ignore[arg-type]

    def slow_sync(folder: Path) -> None:
        events.append(("sync", Path(folder).name))
        if events.count(("sync", "out")) == 1:
            assert later.wait(10), "no package was started while the first group's folder was being synced"

    monkeypatch.setattr(batch, "sign_one", watched_sign_one)
    monkeypatch.setattr(fileio, "fsync_directory", slow_sync)
    monkeypatch.setattr(fileio.os, "replace", lambda a, b: (real_replace(a, b), events.append(("write", str(b))))[0])
    mine, thread = _serving(pki)
    forked._send(mine, list(enumerate(pairs)))
    mine.end()
    groups = []
    while (message := forked._receive(mine)) is not None:
        groups.append(message)
        events.append(("report", ",".join(str(i) for i, _ in message)))
    thread.join(10)
    assert sorted(i for group in groups for i, _ in group) == list(range(len(pairs)))
    assert all(1 <= len(group) <= forked.REPORT for group in groups)
    assert all(o.error is None and o.result is not None for group in groups for _, o in group)
    for group in groups:  # each output was written, then its folder synced, then it was reported
        at = events.index(("report", ",".join(str(i) for i, _ in group)))
        for index, _ in group:
            written = events.index(("write", str(pairs[index][1])))
            assert ("sync", "out") in events[written:at]
    assert len([e for e in events if e[0] == "sync"]) == len(groups)  # one folder fsync per group


def test_a_forked_worker_reports_a_folder_that_cannot_be_synced(
    pki: TestPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pairs = _three_packages_with_an_unsyncable_out_folder(tmp_path, monkeypatch)
    mine, thread = _serving(pki)
    forked._send(mine, list(enumerate(pairs)))
    mine.end()
    outcomes: dict[int, batch.SignOutcome] = {}
    while (message := forked._receive(mine)) is not None:
        outcomes.update(message)
    thread.join(10)
    assert [type(outcomes[i].error) for i in range(3)] == [OSError, OSError, type(None)]


@pytest.mark.usefixtures("forked_workers")
def test_forked_workers_stop_when_the_caller_stops(
    pki: TestPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pids: list[int] = []

    class Watched(forked._Worker):
        def __init__(self, pid: int, channel: forked._Channel) -> None:
            super().__init__(pid, channel)
            pids.append(pid)

    sent: list[int] = []
    real_send = forked._send

    def counting_send(channel: forked._Channel, value: object) -> None:
        if isinstance(value, list):
            sent.append(len(value))
        real_send(channel, value)

    monkeypatch.setattr(forked, "_Worker", Watched)
    monkeypatch.setattr(forked, "_send", counting_send)
    pairs = _packages(tmp_path, 80)
    written = _written_when_interrupted(pairs, pki, parallel=2)
    # Only what the workers were handed was signed (what they held when the caller stopped, and what replaced the
    # groups they had reported before: on a loaded machine the other worker may report several groups before the
    # first package's own); the rest of the batch was never started.
    assert 1 <= len(written) <= sum(sent) < len(pairs)
    assert not list((tmp_path / "out").glob(".*.tmp"))  # nothing half-written: the workers finished or stopped
    assert len(pids) == 2
    for pid in pids:  # both workers were waited for
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def test_handing_packages_to_a_worker_that_just_died_is_left_to_the_next_wait() -> None:
    mine, theirs = forked._channels()
    theirs.close()  # the worker is gone
    crew = object.__new__(forked._Crew)
    crew.workers, crew._ended = [forked._Worker(-1, mine)], set()
    todo = deque([0, 1, 2])
    crew.give(crew.workers[0], todo, ["a", "b", "c"], 2)  # no BrokenPipeError out of the batch
    assert crew.workers[0].held == {0, 1} and list(todo) == [2]
    assert forked._receive(mine) is None  # what wait() then reads: the end, so the held packages are re-run
    mine.close()
