"""Verifying many packages, and the accept / exit decision shared by ``nuseal verify``, ``nuseal install`` and the
feed server.

Guarantees: results come back in input order; one bad package never stops the batch (an unreadable file is a
verdict with ``error``, and so is a bug in nuseal while verifying it: ``IssueCode.VERIFICATION_FAILED``, never an
exception). ``on_verdict`` is called once per package, in input order, as soon as its verdict is known, so a caller
can print or advance a progress bar while the batch runs.

``parallel=N`` verifies in N processes. When this process may fork (no other thread), N workers are forked
(``nuseal.forked.streamed``), each opening one ``TrustContext`` and streaming its verdicts back as packages are
handed out; otherwise a pool (``nuseal.parallel.ordered_map``), where each worker opens one ``TrustContext`` from the
``VerificationSetup`` (which pickles for that) and verifies one path per task. Either way verdicts come back, and
reach ``on_verdict``, in input order, and a process that dies (a crash in a native library) costs only the package
it was verifying: that package's verdict is ``IssueCode.VERIFICATION_FAILED``. One package, or ``parallel=1``, is
verified in this process.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from nuseal import parallel as process_pool
from nuseal.codes import IssueCode
from nuseal.package import hashing
from nuseal.verify.engine import TrustContext, verify_package
from nuseal.verify.paths import expand_paths
from nuseal.verify.policy import VerificationPolicy
from nuseal.verify.result import PackageVerdict
from nuseal.verify.setup import VerificationSetup

if TYPE_CHECKING:
    import httpx

    from nuseal import forked

__all__ = ["VerdictCallback", "accepted", "exit_code", "expand_paths", "missing_verdict", "verify_batch",
           "verify_guarded"]

#: Called with each verdict, in input order, as soon as it is known.
VerdictCallback = Callable[[PackageVerdict], None]


def missing_verdict(pattern: str) -> PackageVerdict:
    """The verdict for a path or glob that names no file (NuGet: "File does not exist")."""
    return PackageVerdict(pattern, None, None, False, (), error=f"File does not exist ({pattern}).",
                          error_code=IssueCode.PACKAGE_NOT_FOUND)


def verify_guarded(path: Path, *, policy: VerificationPolicy, trust: TrustContext, now: datetime,
                   compute_content_hash: bool = False) -> PackageVerdict:
    """``verify_package`` that never raises: an exception escaping the engine (a bug, or an environment failure
    such as MemoryError) becomes this package's verdict, invalid, with ``error_code`` VERIFICATION_FAILED."""
    try:
        return verify_package(path, policy=policy, trust=trust, now=now, compute_content_hash=compute_content_hash)
    except Exception as exc:
        return PackageVerdict(str(path), None, None, False, (), error_code=IssueCode.VERIFICATION_FAILED,
                              error=f"'{path}' could not be verified: internal error {type(exc).__name__}: {exc}")


def verify_batch(paths: Sequence[Path], setup: VerificationSetup, *, now: datetime,
                 on_verdict: VerdictCallback | None = None, client: httpx.Client | None = None,
                 compute_content_hash: bool = False, parallel: int = 1) -> list[PackageVerdict]:
    """Verify ``paths`` under ``setup`` as of ``now``; one verdict per path, in input order.

    ``parallel``: worker processes (``nuseal.parallel.default_workers()`` is the core count); 1 verifies in this
    process, where one ``TrustContext`` (one revocation checker and its cache) serves the whole batch and a large
    package is hashed on another core while the previous one is verified. ``client`` is the HTTP client for
    revocation requests (optional); it cannot cross into workers, so giving one means in process.
    """
    verdicts: list[PackageVerdict] = []
    if parallel > 1 and len(paths) > 1 and client is None:
        hashing.stop_prefetches()  # workers hash their own packages, and a running thread would spoil the fork
        tasks = [(str(p), now, compute_content_hash) for p in paths]
        workers = min(parallel, len(paths))
        results = _forked(tasks, setup, workers) if _can_fork() else _pooled(tasks, setup, workers)
        for verdict in results:
            verdicts.append(verdict)
            if on_verdict is not None:
                on_verdict(verdict)
        return verdicts
    with setup.open(client) as trust:
        for index, path in enumerate(paths):
            if index + 1 < len(paths):
                _hash_ahead(paths[index + 1], compute_content_hash)
            verdict = verify_guarded(path, policy=setup.policy, trust=trust, now=now,
                                     compute_content_hash=compute_content_hash)
            verdicts.append(verdict)
            if on_verdict is not None:
                on_verdict(verdict)
    return verdicts


#: A package at least this large is hashed ahead (``hashing.prefetch``, another core) while the one before it is
#: verified; below it a thread costs more than it saves.
HASH_AHEAD_MIN_BYTES = 16 << 20


def _hash_ahead(path: Path, compute_content_hash: bool) -> None:
    try:
        large = Path(path).stat().st_size >= HASH_AHEAD_MIN_BYTES
    except OSError:
        return  # its verdict will say so
    if large:
        signed = hashing.SIGNED_ALGORITHM
        hashing.prefetch(Path(path), (signed, "sha512") if compute_content_hash else (signed,))


# --- worker processes ---------------------------------------------------------------------------------------------

#: Verdicts a forked worker sends together: small, so that work is handed out as it ends (a run of costly packages is
#: shared) and verdicts reach ``on_verdict`` soon; a message costs far less than a verification.
FORKED_REPORT = 2


def _can_fork() -> bool:
    from nuseal import forked  # here: its ``pickle`` and ``socket`` are start-up a batch in one process does not need

    return forked.can_fork()


def _forked(tasks: list[_Task], setup: VerificationSetup, workers: int) -> Iterator[PackageVerdict]:
    """Verdicts from ``workers`` processes forked from this one (``nuseal.forked``: no pool imports, no pickled
    setup, work handed out as verdicts come back). A worker that dies costs only the package that killed it: what
    it held is verified again in the pool, one package per task. If the system refuses a process or a socket pair,
    the pool verifies what is left."""
    from nuseal import forked

    stream = forked.streamed(tasks, workers=workers, threads=1, start=lambda: _forked_side(setup),
                             rerun=lambda lost: list(_pooled(lost, setup, 1)), report=FORKED_REPORT)
    done = 0
    try:
        while done < len(tasks):
            try:
                verdict = next(stream)
            except OSError:
                yield from _pooled(tasks[done:], setup, workers)
                return
            done += 1
            yield verdict
    finally:
        stream.close()


def _forked_side(setup: VerificationSetup) -> forked.Side[_Task, PackageVerdict]:
    """What a forked worker does (in the worker): one trust context for all it verifies."""
    from nuseal import forked

    held = contextlib.ExitStack()
    trust = held.enter_context(setup.open())

    def verify(task: _Task) -> PackageVerdict:
        path, now, compute_content_hash = task
        return verify_guarded(Path(path), policy=setup.policy, trust=trust, now=now,
                              compute_content_hash=compute_content_hash)

    def failed(task: _Task, exc: BaseException) -> PackageVerdict:
        return _worker_failed(task, f"{type(exc).__name__}: {exc}")

    return forked.Side(verify, failed, None, held)


def _pooled(tasks: list[_Task], setup: VerificationSetup, workers: int) -> Iterator[PackageVerdict]:
    return process_pool.ordered_map(_verify_in_worker, tasks, workers=workers, on_failure=_worker_failed,
                                    initializer=_open_worker, initargs=(setup,))

#: A worker's setup and open trust context, made once by ``_open_worker`` (a worker serves one batch).
_worker: tuple[VerificationSetup, TrustContext] | None = None
_worker_stack = contextlib.ExitStack()

_Task = tuple[str, datetime, bool]


def _open_worker(setup: VerificationSetup) -> None:
    global _worker
    _worker = (setup, _worker_stack.enter_context(setup.open()))


def _verify_in_worker(task: _Task) -> PackageVerdict:
    path, now, compute_content_hash = task
    assert _worker is not None, "the pool initializer opens the trust context"
    setup, trust = _worker
    return verify_guarded(Path(path), policy=setup.policy, trust=trust, now=now,
                          compute_content_hash=compute_content_hash)


def _worker_failed(task: _Task, reason: str) -> PackageVerdict:
    path = task[0]
    return PackageVerdict(path, None, None, False, (), error_code=IssueCode.VERIFICATION_FAILED,
                          error=f"'{path}' could not be verified: internal error: {reason}")


def accepted(verdict: PackageVerdict) -> bool:
    """The one accept decision: the package is valid and no error-level finding was reported (docs/decisions.md,
    "Exit code"; NuGet counts errors only, nuseal also requires validity so a corrupt download never passes)."""
    return verdict.valid and not verdict.errors


def exit_code(verdicts: Sequence[PackageVerdict]) -> int:
    """0 only when there was at least one package and every one is accepted; 1 otherwise."""
    return 0 if verdicts and all(accepted(v) for v in verdicts) else 1
