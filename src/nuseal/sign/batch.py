"""Signing many packages with one request: ``sign_batch`` gives one ``SignOutcome`` per package, in input order.

A package that cannot be signed (refused, unreadable, a timestamp failure) is that package's outcome, never the end
of the batch; so is a bug hit while signing it (``error`` then says "internal error"). ``parallel=N`` signs in N
worker processes (``nuseal.parallel.ordered_map``): each worker opens its own keep-alive connection to the
timestamp service, so up to N timestamp requests are in flight at once, and the outputs' fsyncs overlap (the file
system commits them together). Outcomes still arrive, and reach ``on_outcome``, in input order.

Only in-memory keys (``KeySigner``: PFX and PEM files) go to worker processes; a PKCS#11 session does not survive
a fork, so a token signs in this process whatever ``parallel`` says. One package, or ``parallel=1``, is signed in
this process too: no pool start-up.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from nuseal import parallel as process_pool
from nuseal.errors import NusealError
from nuseal.sign.author import AuthorSignRequest, sign_package
from nuseal.sign.common import SignResult, Timestamper
from nuseal.sign.repository import RepositorySignRequest, repo_sign_package
from nuseal.sign.signers import KeySigner
from nuseal.timestamp.client import HttpTimestamper


@dataclass(frozen=True)
class SignJob:
    """What every package of a batch is signed with.

    ``clock`` gives each package's signing time (and, as local time, its zip entry time); it must be a
    module-level function when signing in worker processes that do not inherit memory. ``timestamper_url``: the
    RFC 3161 service each worker connects to (``None``: no timestamp).
    """

    request: AuthorSignRequest | RepositorySignRequest
    clock: Callable[[], datetime]
    timestamper_url: str | None = None
    timestamp_timeout: float = 10.0


@dataclass(frozen=True)
class SignOutcome:
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
        if isinstance(job.request, RepositorySignRequest):
            result = repo_sign_package(src, dst, job.request, timestamper=timestamper, now=now)
        else:
            result = sign_package(src, dst, job.request, timestamper=timestamper, now=now)
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
        for outcome in process_pool.ordered_map(
            _sign_in_worker, [(Path(s), Path(d)) for s, d in pairs], workers=min(parallel, len(pairs)),
            on_failure=_worker_failed, initializer=_open_worker, initargs=(job,),
        ):  # fmt: skip
            record(outcome)
        return outcomes
    owned = _http_timestamper(job) if timestamper is None and job.timestamper_url is not None else None
    try:
        for src, dst in pairs:
            record(sign_one(job, Path(src), Path(dst), timestamper or owned))
    finally:
        if owned is not None:
            owned.close()
    return outcomes


def _http_timestamper(job: SignJob) -> HttpTimestamper:
    assert job.timestamper_url is not None
    # The clock makes NU3025 (TSA certificate not yet / no longer valid) a judgement about now.
    return HttpTimestamper(job.timestamper_url, timeout=job.timestamp_timeout, clock=job.clock)


def _internal_error(src: Path, reason: str) -> NusealError:
    return NusealError(f"'{src}' could not be signed: internal error: {reason}")


# --- worker processes ---------------------------------------------------------------------------------------------

#: A worker's job and its own timestamp connection, made once by ``_open_worker`` (a worker serves one batch).
_worker: tuple[SignJob, Timestamper | None] | None = None


def _open_worker(job: SignJob) -> None:
    global _worker
    _worker = (job, _http_timestamper(job) if job.timestamper_url is not None else None)


def _sign_in_worker(pair: tuple[Path, Path]) -> SignOutcome:
    assert _worker is not None, "the pool initializer sets up the worker"
    job, timestamper = _worker
    return sign_one(job, pair[0], pair[1], timestamper)


def _worker_failed(pair: tuple[Path, Path], reason: str) -> SignOutcome:
    return SignOutcome(pair[0], pair[1], error=_internal_error(pair[0], reason))
