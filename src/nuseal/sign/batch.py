"""Signing many packages with one request: ``sign_batch`` gives one ``SignOutcome`` per package, in input order.

A package that cannot be signed (refused, unreadable, a timestamp failure) is that package's outcome, never the end
of the batch; so is a bug hit while signing it (``error`` then says "internal error"). ``parallel=N`` signs in N
worker processes, each with ``IN_FLIGHT`` packages in flight at once on its threads, so that their timestamp
requests are concurrent on the worker's keep-alive connections (one ``HttpTimestamper``, whose client pools them)
and their fsyncs overlap, while the CPU work of one package runs as the others wait (issue 12: a timestamped
signature is mostly waiting, for the TSA and for the disk). From a single-threaded process the workers are forked
by ``nuseal.forked`` and stream: they never drain between packages and report outcomes in groups, each after
one fsync per folder. Otherwise (other threads running) ``nuseal.parallel.ordered_map`` runs them: a worker takes a
run of up to ``RUN_SIZE`` packages, signs them on a thread pool made once per worker and reports the run. No thread
is started per package. Outcomes still arrive, and reach ``on_outcome``, in input order.

A worker that dies loses the packages it held; they are then signed again one at a time, each in a process of its
own, so that only the package that kills its process is lost (as ``ordered_map`` does for single items).

Only in-memory keys (``KeySigner``: PFX and PEM files) go to worker processes; a PKCS#11 session does not survive
a fork, so a token signs in this process whatever ``parallel`` says, one package after the other (a token session
serves one operation at a time). ``parallel=1`` signs in this process too (no pool start-up), with the same
``IN_FLIGHT`` packages in flight on threads when the key is in memory and the timestamper an ``HttpTimestamper``
(or none), which are safe to share between threads. Durable outputs are fsynced one by one before their renames in
both cases; their folders once per run in a worker, once per group of outcomes ready together in this process,
always before those outcomes are reported (docs/decisions.md, "Durable outputs").
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from nuseal import forked
from nuseal import parallel as process_pool
from nuseal.errors import NusealError
from nuseal.record import Struct, replace
from nuseal.sign.author import AuthorSignRequest, sign_package
from nuseal.sign.common import SignResult, Timestamper
from nuseal.sign.signers import KeySigner
from nuseal.timestamp.client import HttpTimestamper
from nuseal.x509 import certs

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

    from nuseal.sign.repository import RepositorySignRequest

# nuseal.sign.repository (and the signature parser it brings) is imported by the first repository signature: author
# signing does not load it.

#: Packages one worker process has in flight at once (its run of packages, signed on that many threads). Four
#: cover a loopback TSA's round trip and two fsyncs per package with the CPU work of the others (bench/timestamp).
IN_FLIGHT = 4
#: Packages a worker process is given per task (signed ``IN_FLIGHT`` at a time on its threads). Each task costs the
#: pool ~0.5-0.9 ms of the parent's CPU under load (pickling, the pool's threads waking, the result read back);
#: runs of 8 halve that against runs of 4 and still spread 200 packages over 25 tasks (bench/timestamp).
RUN_SIZE = 8


class SignJob(Struct, frozen=True):
    """What every package of a batch is signed with.

    ``clock`` gives each package's signing time (and, as local time, its zip entry time); it must be a
    module-level function when signing in worker processes that do not inherit memory. ``timestamper_url``: the
    RFC 3161 service each worker connects to (``None``: no timestamp).
    """

    request: AuthorSignRequest | RepositorySignRequest
    clock: Callable[[], datetime]
    timestamper_url: str | None = None
    timestamp_timeout: float = 10.0


class SignOutcome(Struct, frozen=True):
    """One package of a batch: the result, or the error that stopped it (nothing was written then)."""

    src: Path
    dst: Path
    result: SignResult | None = None
    error: NusealError | OSError | None = None


OutcomeCallback = Callable[[SignOutcome], None]


def sign_one(job: SignJob, src: Path, dst: Path, timestamper: Timestamper | None) -> SignOutcome:
    """Sign ``src`` into ``dst`` as ``job`` says; every failure becomes the outcome's ``error``."""
    try:
        now = job.clock()
        if isinstance(job.request, AuthorSignRequest):
            result = sign_package(src, dst, job.request, timestamper=timestamper, now=now)
        else:
            from nuseal.sign.repository import repo_sign_package

            result = repo_sign_package(src, dst, job.request, timestamper=timestamper, now=now)
    except (NusealError, OSError) as exc:
        return SignOutcome(src, dst, error=exc)
    except Exception as exc:  # a bug must cost this package, not the batch
        return SignOutcome(src, dst, error=_internal_error(src, f"{type(exc).__name__}: {exc}"))
    return SignOutcome(src, dst, result=result)


def sign_batch(pairs: Sequence[tuple[Path, Path]], job: SignJob, *, parallel: int = 1,
               on_outcome: OutcomeCallback | None = None,
               timestamper: Timestamper | None = None) -> list[SignOutcome]:
    """Sign every ``(src, dst)`` pair; one outcome per pair, in input order (see the module doc).

    ``timestamper`` is used in this process (default: an ``HttpTimestamper`` for ``job.timestamper_url``, kept
    open for the batch); worker processes always connect to ``job.timestamper_url`` themselves.
    """
    outcomes: list[SignOutcome] = []

    def record(outcome: SignOutcome) -> None:
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)

    if parallel > 1 and len(pairs) > 1 and isinstance(job.request.signer, KeySigner):
        workers = min(parallel, len(pairs))
        size = max(1, min(RUN_SIZE, -(-len(pairs) // workers)))  # every worker gets work in a short batch
        items = [(Path(s), Path(d)) for s, d in pairs]
        if forked.can_fork():
            for outcome in forked.streamed(items, workers=workers, threads=min(size, IN_FLIGHT),
                                         start=lambda: _streaming_side(job), rerun=lambda lost: _one_by_one(lost, job)):
                record(outcome)
            return outcomes
        # Forking is unsafe with other threads running: a pool of forkserver (or spawned) processes, to which the
        # job travels pickled, signs runs of packages (each run drains before the worker takes the next).
        runs = [items[i : i + size] for i in range(0, len(items), size)]
        for run, signed in zip(runs, process_pool.ordered_map(
            _sign_run_in_worker, runs, workers=min(workers, len(runs)), on_failure=_run_failed,
            initializer=_open_worker, initargs=(job, min(size, IN_FLIGHT)),
        ), strict=True):  # fmt: skip
            for outcome in signed if signed is not None else _one_by_one(run, job):
                record(outcome)
        return outcomes
    owned = _http_timestamper(job) if timestamper is None and job.timestamper_url is not None else None
    stamper = timestamper or owned
    try:
        if len(pairs) > 1 and isinstance(job.request.signer, KeySigner) and (
                stamper is None or isinstance(stamper, HttpTimestamper)):
            # As in a worker: each output is fsynced before its rename, and the folders once per group of outcomes
            # ready together, before they are reported (a folder fsync per package cost ~0.2 ms of CPU and a disk
            # round trip).
            threaded, grouped = _folder_sync_left_to_caller(job)
            # The warning filters are process-wide: set once around the threads (see _sign_run_in_worker).
            with certs.quiet():
                for group in _in_flight(pairs, lambda pair: sign_one(threaded, Path(pair[0]), Path(pair[1]),
                                                                     stamper)):
                    for outcome in _sync_folders(group) if grouped else group:
                        record(outcome)
        else:
            for src, dst in pairs:
                record(sign_one(job, Path(src), Path(dst), stamper))
    finally:
        if owned is not None:
            owned.close()
    return outcomes


def _in_flight(pairs: Sequence[tuple[Path, Path]], work: Callable[[tuple[Path, Path]], SignOutcome]
               ) -> Iterator[list[SignOutcome]]:
    """``work`` for every pair on ``IN_FLIGHT`` threads of this process, outcomes in input order, in groups: the
    next outcome (waited for) and those after it that are already done, at most ``IN_FLIGHT``. At most twice
    ``IN_FLIGHT`` packages are started ahead of the group reported, and none after the caller stops."""
    from concurrent.futures import ThreadPoolExecutor

    threads = ThreadPoolExecutor(min(IN_FLIGHT, len(pairs)), thread_name_prefix="nuseal-sign")
    pending: deque[Future[SignOutcome]] = deque()
    try:
        for pair in pairs:
            pending.append(threads.submit(work, pair))
            if len(pending) >= 2 * IN_FLIGHT:
                yield _ready(pending)
        while pending:
            yield _ready(pending)
    finally:
        threads.shutdown(wait=True, cancel_futures=True)


def _ready(pending: deque[Future[SignOutcome]]) -> list[SignOutcome]:
    """The first pending outcome (waited for) and the done ones right after it, up to ``IN_FLIGHT`` in all."""
    group = [pending.popleft().result()]
    while pending and len(group) < IN_FLIGHT and pending[0].done():
        group.append(pending.popleft().result())
    return group


def _http_timestamper(job: SignJob) -> HttpTimestamper:
    assert job.timestamper_url is not None
    # The clock makes NU3025 (TSA certificate not yet / no longer valid) a judgement about now.
    return HttpTimestamper(job.timestamper_url, timeout=job.timestamp_timeout, clock=job.clock)


def _internal_error(src: Path, reason: str) -> NusealError:
    return NusealError(f"'{src}' could not be signed: internal error: {reason}")


# --- worker processes ---------------------------------------------------------------------------------------------

#: A worker's job, its own timestamp connection and its thread pool, made once by ``_open_worker`` (a worker
#: serves one batch).
_worker: tuple[SignJob, Timestamper | None, ThreadPoolExecutor | None] | None = None


def _open_worker(job: SignJob, in_flight: int = 1) -> None:
    global _worker
    threads = None
    if in_flight > 1:
        from concurrent.futures import ThreadPoolExecutor

        threads = ThreadPoolExecutor(in_flight, thread_name_prefix="nuseal-sign")
        if job.request.options.durable:
            # Each output is still fsynced before its rename; the folder (which makes the renames durable) is
            # fsynced once per run by ``_sign_run_in_worker``, before the run's outcomes are reported.
            job = _without_folder_sync(job)
    _worker = (job, _http_timestamper(job) if job.timestamper_url is not None else None, threads)


def _streaming_side(job: SignJob) -> forked.Side[tuple[Path, Path], SignOutcome]:
    """What a forked streaming worker does (``forked.streamed``, in the worker): sign on its own keep-alive timestamp
    connections; each output fsynced before its rename, and the folders once per group, before the group leaves
    the worker."""
    job, grouped = _folder_sync_left_to_caller(job)
    stamper = _http_timestamper(job) if job.timestamper_url is not None else None

    def failed(pair: tuple[Path, Path], exc: BaseException) -> SignOutcome:
        return SignOutcome(pair[0], pair[1], error=_internal_error(pair[0], f"{type(exc).__name__}: {exc}"))

    # The warning filters are process-wide: set once around the threads (see _sign_run_in_worker).
    return forked.Side(lambda pair: sign_one(job, pair[0], pair[1], stamper), failed,
                     _sync_folders if grouped else None, certs.quiet())


def _folder_sync_left_to_caller(job: SignJob) -> tuple[SignJob, bool]:
    """For a durable job that syncs folders: the job without that step and ``True`` (the caller fsyncs each folder
    once per group, ``_sync_folders``); any other job as it is and ``False``."""
    if job.request.options.durable and job.request.options.sync_folder:
        return _without_folder_sync(job), True
    return job, False


def _without_folder_sync(job: SignJob) -> SignJob:
    """``job`` leaving the fsync of each output's folder to the caller (``_sync_folders``)."""
    options = replace(job.request.options, sync_folder=False)
    return replace(job, request=replace(job.request, options=options))


def _sign_in_worker(pair: tuple[Path, Path]) -> SignOutcome:
    assert _worker is not None, "the pool initializer sets up the worker"
    job, timestamper, _ = _worker
    return sign_one(job, pair[0], pair[1], timestamper)


def _sign_run_in_worker(run: list[tuple[Path, Path]]) -> list[SignOutcome]:
    """A run of packages signed concurrently on the worker's threads; outcomes in the run's order."""
    assert _worker is not None, "the pool initializer sets up the worker"
    job, timestamper, threads = _worker
    if threads is None or len(run) == 1:
        outcomes = [sign_one(job, src, dst, timestamper) for src, dst in run]
    else:
        # The warning filters are process-wide: set once around the run, so that the threads' own (nested)
        # quiet() blocks never restore a state without them while another thread still needs them.
        with certs.quiet():
            outcomes = list(threads.map(lambda pair: sign_one(job, pair[0], pair[1], timestamper), run))
    options = job.request.options
    return _sync_folders(outcomes) if options.durable and not options.sync_folder else outcomes


def _sync_folders(outcomes: list[SignOutcome]) -> list[SignOutcome]:
    """fsync the folder of every written output once (durable renames); an output whose folder cannot be synced
    becomes that error: it is not reported written."""
    from nuseal.package.fileio import fsync_directory

    failed: dict[Path, OSError] = {}
    for folder in dict.fromkeys(o.dst.parent for o in outcomes if o.result is not None):
        try:
            fsync_directory(folder)
        except OSError as exc:
            failed[folder] = exc
    if not failed:
        return outcomes
    return [SignOutcome(o.src, o.dst, error=failed[o.dst.parent]) if o.result is not None and o.dst.parent in failed
            else o for o in outcomes]


def _run_failed(run: list[tuple[Path, Path]], reason: str) -> None:
    del run, reason  # the run is signed again one package at a time (``_one_by_one``)


def _one_by_one(run: list[tuple[Path, Path]], job: SignJob) -> list[SignOutcome]:
    """A run whose worker died, signed again one package per task: only the package that kills its process fails."""
    return list(process_pool.ordered_map(_sign_in_worker, run, workers=1, on_failure=_worker_failed,
                                         initializer=_open_worker, initargs=(job,)))


def _worker_failed(pair: tuple[Path, Path], reason: str) -> SignOutcome:
    return SignOutcome(pair[0], pair[1], error=_internal_error(pair[0], reason))
