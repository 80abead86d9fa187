"""Ordered process pools for batches (``verify_batch``, ``sign_batch``): every core, results in input order, and a
worker that dies costs only the item it was working on.

``ordered_map(work, items, workers=N, initializer=..., initargs=..., on_failure=...)`` yields ``work(item)`` for
each item, in input order, as soon as that item and all before it are done. ``work`` and ``initializer`` are
module-level functions (they travel by reference); the initializer builds the worker's state once (a trust
context, a signer and its timestamp connection), so a task is only a path.

Start method: ``fork`` when this process has a single thread (workers start in milliseconds and inherit every
module already imported, the trust roots already parsed), else ``forkserver`` (forking a process that has other
threads can copy a lock some thread held), with ``spawn`` where neither exists. Under ``forkserver``/``spawn``
the initializer's arguments are pickled, which is why ``VerificationSetup`` and the signing job pickle.

Failure isolation: a worker that dies (a crash in a native library, SIGBUS on a file truncated while mapped,
the OOM killer) breaks a ``ProcessPoolExecutor`` and fails every pending item. Those items are then run again,
each alone in a fresh process: the one that kills its process gets ``on_failure(item, reason)`` as its result,
the others their real result, and the batch goes on in a new pool. An exception escaping ``work`` (it should
catch its own) is also given to ``on_failure``.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from concurrent.futures import Future
    from multiprocessing.context import BaseContext

# multiprocessing and concurrent.futures are imported when a pool is made: together they cost ~25 ms of start-up,
# which every command importing this module (for ``default_workers``) would pay.

T = TypeVar("T")
R = TypeVar("R")

#: Tasks queued per worker beyond the running one: keeps workers busy without queueing a whole huge batch.
_QUEUED_PER_WORKER = 4


def default_workers() -> int:
    """The number of processors this process may run on (the ``--parallel`` default)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _context(preload: Sequence[str]) -> BaseContext:
    import multiprocessing

    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    if "forkserver" in methods:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(list(preload))  # imported once by the server, not by every worker
        return context
    return multiprocessing.get_context("spawn")


def ordered_map(
    work: Callable[[T], R],
    items: Sequence[T],
    *,
    workers: int,
    on_failure: Callable[[T, str], R],
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
) -> Iterator[R]:
    """``work(item)`` for every item, in input order, computed by ``workers`` processes (see the module doc).

    Call it only for more than one item and more than one worker: a single item is cheaper in process.
    """
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    context = _context([work.__module__])
    position = 0
    while position < len(items):
        executor = ProcessPoolExecutor(workers, mp_context=context, initializer=initializer, initargs=initargs)
        pending: deque[tuple[T, Future[R]]] = deque()
        submitted = position
        broken = False
        try:
            while submitted < len(items) or pending:
                while submitted < len(items) and len(pending) < workers * (1 + _QUEUED_PER_WORKER):
                    pending.append((items[submitted], executor.submit(work, items[submitted])))
                    submitted += 1
                item, future = pending[0]
                try:
                    result = future.result()
                except BrokenProcessPool:
                    broken = True
                    break
                except Exception as exc:  # work() let something escape, or its result did not pickle
                    result = on_failure(item, f"{type(exc).__name__}: {exc}")
                pending.popleft()
                yield result
                position += 1
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
        if broken:
            # Everything still pending failed with the pool, except what finished before it broke: run those
            # items again, each alone, so that only the one that kills its process is lost.
            for item, future in pending:
                if future.done() and not future.cancelled() and future.exception() is None:
                    yield future.result()
                else:
                    yield _isolated(context, work, item, on_failure, initializer, initargs)
                position += 1


def _isolated(
    context: BaseContext,
    work: Callable[[T], R],
    item: T,
    on_failure: Callable[[T, str], R],
    initializer: Callable[..., None] | None,
    initargs: tuple[Any, ...],
) -> R:
    """``work(item)`` alone in a fresh process; ``on_failure`` with the reason if that process dies."""
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(  # type: ignore[attr-defined]
        target=_isolated_main, args=(sender, work, item, initializer, initargs), daemon=True
    )
    process.start()
    sender.close()
    try:
        outcome: tuple[bool, Any] = receiver.recv()
    except EOFError:
        process.join()
        return on_failure(item, _death(process.exitcode))
    finally:
        receiver.close()
    process.join()
    ok, value = outcome
    return value if ok else on_failure(item, value)


def _isolated_main(sender: Any, work: Callable[[Any], Any], item: Any, initializer: Callable[..., None] | None,
                   initargs: tuple[Any, ...]) -> None:
    try:
        if initializer is not None:
            initializer(*initargs)
        outcome: tuple[bool, Any] = (True, work(item))
    except Exception as exc:
        outcome = (False, f"{type(exc).__name__}: {exc}")
    sender.send(outcome)
    sender.close()


def _death(exitcode: int | None) -> str:
    import signal

    if exitcode is not None and exitcode < 0:
        try:
            return f"the worker process was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"the worker process was killed by signal {-exitcode}"
    return f"the worker process exited with status {exitcode}"
