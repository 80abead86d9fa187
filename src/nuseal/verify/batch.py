"""Verifying many packages, and the accept / exit decision shared by ``nuseal verify``, ``nuseal install`` and the
feed server.

Guarantees: results come back in input order; one bad package never stops the batch (an unreadable file is a
verdict with ``error``, and so is a bug in nuseal while verifying it: ``IssueCode.VERIFICATION_FAILED``, never an
exception). ``on_verdict`` is called once per package, in input order, as soon as its verdict is known, so a caller
can print or advance a progress bar while the batch runs.

``parallel=N`` verifies in N processes. Up to ``SPLIT_MAX_PACKAGES`` packages, when this process may fork, N
helpers are forked, each verifying every N-th package and streaming its verdicts back through a pipe; larger
batches (or a process with other threads) go to a pool (``nuseal.parallel.ordered_map``), where each worker opens
one ``TrustContext`` from the ``VerificationSetup`` (which pickles for that) and verifies one path per task. Either
way verdicts come back, and reach ``on_verdict``, in input order, and a process that dies (a crash in a native
library) costs only the package it was verifying: that package's verdict is ``IssueCode.VERIFICATION_FAILED``.
One package, or ``parallel=1``, is verified in this process.
"""

from __future__ import annotations

import contextlib
import gc
import os
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, NoReturn

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
        if len(paths) <= SPLIT_MAX_PACKAGES and _can_fork():
            split = _verify_split(paths, setup, now, on_verdict, compute_content_hash, min(parallel, len(paths)))
            if split is not None:
                return split
        results = process_pool.ordered_map(
            _verify_in_worker, [(str(p), now, compute_content_hash) for p in paths],
            workers=min(parallel, len(paths)), on_failure=_worker_failed,
            initializer=_open_worker, initargs=(setup,),
        )  # fmt: skip
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


# --- a small batch: one forked helper per share ------------------------------------------------------------------

#: Up to this many packages, a parallel batch is shared out among helpers forked from this process
#: (``_verify_split``) rather than a process pool: the pool's imports (``concurrent.futures``, ``multiprocessing``),
#: its queues and its pickled tasks cost more CPU than it saves (measured at 18 and 144 packages,
#: docs/performance.md, "Batch verify, part 3"). Above it the pool's balancing of uneven packages is kept.
SPLIT_MAX_PACKAGES = 256

_LENGTH = struct.Struct("<I")


def _verify_split(paths: Sequence[Path], setup: VerificationSetup, now: datetime,
                  on_verdict: VerdictCallback | None, compute_content_hash: bool, processes: int,
                  ) -> list[PackageVerdict] | None:
    """``verify_batch`` of a small batch by ``processes`` helpers forked from this process, each with its share;
    ``None`` (nothing verified, no helper left) when the system refuses a process or a pipe.

    A helper writes each verdict to its pipe as soon as it has it (length, then pickle); this process reads them in
    input order and reports each as it arrives. When a helper dies (a crash in a native library), the verdicts it
    sent are kept and the rest of its share goes to the process pool, where a crash costs only the package that
    caused it: the guarantee of a pooled batch.
    """
    import signal  # here: ``pickle`` and ``signal`` are start-up time that a batch in one process does not need

    shares = _shares(len(paths), processes)
    owner = {index: helper for helper, share in enumerate(shares) for index in share}
    helpers: list[tuple[int, BinaryIO]] = []  # (pid, read end) per share; pid 0 once reaped
    streams: list[Iterator[PackageVerdict]] = []
    redone: dict[int, PackageVerdict] = {}  # verdicts of a dead helper's share, by index, from the pool
    verdicts: list[PackageVerdict] = []
    gc.freeze()  # the helpers' collections then leave the inherited objects (and their memory pages) alone
    try:
        for share in shares:
            try:
                read_end, write_end = os.pipe()
            except OSError:
                return None  # the helpers already forked are ended below
            try:
                pid = os.fork()
            except OSError:
                os.close(read_end)
                os.close(write_end)
                return None
            if pid == 0:  # the helper never returns: it ends here without this process's clean-up
                os.close(read_end)
                _helper([paths[index] for index in share], setup, now, compute_content_hash, write_end)
            os.close(write_end)
            helpers.append((pid, os.fdopen(read_end, "rb")))
            streams.append(_received(helpers[-1][1]))
        for index in range(len(paths)):
            helper = owner[index]
            verdict = redone[index] if index in redone else next(streams[helper], None)
            if verdict is None:  # the helper died: the pool verifies what it did not send
                pid, pipe = helpers[helper]
                pipe.close()
                os.waitpid(pid, 0)
                helpers[helper] = (0, pipe)
                rest = [i for i in shares[helper] if i >= index]
                tasks = [(str(paths[i]), now, compute_content_hash) for i in rest]
                redone.update(zip(rest, process_pool.ordered_map(
                    _verify_in_worker, tasks, workers=1, on_failure=_worker_failed, initializer=_open_worker,
                    initargs=(setup,),
                ), strict=True))  # fmt: skip
                verdict = redone[index]
            verdicts.append(verdict)
            if on_verdict is not None:
                on_verdict(verdict)
        return verdicts
    finally:
        gc.unfreeze()
        for pid, pipe in helpers:  # a live helper is left only after an exception (an interrupt, a callback)
            pipe.close()
            if pid:
                with contextlib.suppress(OSError):
                    if len(verdicts) < len(paths):
                        os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)


def _can_fork() -> bool:
    """Forking is safe only with no other thread running (one could hold a lock the copy would never release)."""
    return hasattr(os, "fork") and threading.active_count() == 1


def _shares(count: int, processes: int) -> list[list[int]]:
    """Which package indexes each helper verifies: every ``processes``-th, so that the first verdicts come from
    every helper and a run of costly packages is shared (measured: a shorter longest share than halves)."""
    return [list(range(helper, count, processes)) for helper in range(processes)]


def _helper(share: Sequence[Path], setup: VerificationSetup, now: datetime, compute_content_hash: bool,
            write_end: int) -> NoReturn:
    import pickle

    code = 1
    try:
        with os.fdopen(write_end, "wb") as pipe, setup.open() as trust:
            for path in share:
                verdict = verify_guarded(path, policy=setup.policy, trust=trust, now=now,
                                         compute_content_hash=compute_content_hash)
                data = pickle.dumps(verdict, pickle.HIGHEST_PROTOCOL)
                pipe.write(_LENGTH.pack(len(data)) + data)
                pipe.flush()
        code = 0
    finally:
        os._exit(code)


def _received(pipe: BinaryIO) -> Iterator[PackageVerdict]:
    """The verdicts a helper wrote, until its pipe ends or holds something else than a whole verdict."""
    import pickle

    while len(head := pipe.read(_LENGTH.size)) == _LENGTH.size:
        (length,) = _LENGTH.unpack(head)
        data = pipe.read(length)
        if len(data) != length:
            return
        try:
            verdict = pickle.loads(data)  # written by a helper forked from this process
        except Exception:
            return
        if not isinstance(verdict, PackageVerdict):
            return
        yield verdict
