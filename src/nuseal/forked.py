"""Forked worker processes that stream, for ``sign_batch`` and ``verify_batch`` with ``parallel=N`` when this process
may fork: each worker keeps its threads busy with items all the time and sends results back in groups; this process
hands out items as results come back and yields the results in input order.

``streamed(items, workers=N, threads=T, start=..., rerun=..., report=...)``: ``start()`` runs in each worker right
after the fork and gives a ``Side`` (what to do with one item, what to do to a group of results before they leave
the worker, and a context held while the threads run); nothing is pickled but items and results.

Why not ``nuseal.parallel.ordered_map`` (which both batches still use where they cannot fork): a pool task is a
function call, so a signing worker took a run of packages, waited for the slowest, fsynced the folder and only then
took the next run; each worker spent ~30 % of a 200-package batch with fewer packages in flight than threads, its
core idle while it waited for the disk or the TSA (bench/timestamp, issue 12). Here a worker never drains: its main
thread sends a group (after ``Side.commit``: the folder fsync, once per group) while its threads go on with the
items it holds. ``ProcessPoolExecutor`` also cost this process two threads, a pickled task and a future per run,
and ~25 ms of imports (``multiprocessing``, ``concurrent.futures.process``, ``logging``); two pipes per worker,
``pickle`` and plain threads do here.

A worker that dies loses the items it held: ``rerun(items)`` gives their results (both batches run them again one
at a time, each in a process of its own, so that only the package that kills its process fails); the other
workers go on, and if none is left a new round of workers takes what no worker was given.

Workers are forked only from a single-threaded process (``can_fork``): forking a process that has other threads
can copy a lock some thread held.

The wire is two pipes per worker (items one way, results the other), not a socket pair: ``socket`` brings
``selectors`` and ``array`` along, ~2-3 ms of imports on the path of every parallel batch before the first fork.
Closing this process's end of the items pipe tells a worker that nothing more comes.
"""

from __future__ import annotations

import os
import struct
import threading
from collections import deque
from collections.abc import Callable, Generator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: Results a worker sends together (one ``commit``, one message), unless it has nothing else in hand: each message
#: costs both processes a wake-up and a pickle, each signing commit a folder fsync. 8, as the runs of
#: ``ordered_map`` tasks before.
REPORT = 8
#: Items a worker holds beyond those on its threads and those it reports together, so that its threads never wait
#: for this process to answer a report with new items.
AHEAD = 4

_LENGTH = struct.Struct("!I")

try:
    # The C pickler itself: the ``pickle`` module around it is ~1,800 lines of Python (its pure-Python pickler) that
    # this process would load before forking, on the path of every parallel batch (issue 12). Same functions.
    from _pickle import dumps as _dumps
    from _pickle import loads as _loads
except ImportError:  # an interpreter without the accelerator
    from pickle import dumps as _dumps
    from pickle import loads as _loads

#: ``pickle.HIGHEST_PROTOCOL`` on every Python this runs on (3.11+), without importing ``pickle`` for it.
_PROTOCOL = 5


class Side(Generic[T, R]):
    """What a worker does, made by ``start()`` in the worker: ``work`` one item (it should catch its own errors:
    anything escaping becomes ``failed(item, exc)``), ``commit`` a group of results before they are sent, and
    ``context`` entered around the threads."""

    def __init__(self, work: Callable[[T], R], failed: Callable[[T, BaseException], R],
                 commit: Callable[[list[R]], list[R]] | None, context: AbstractContextManager[Any]) -> None:
        self.work, self.failed, self.commit, self.context = work, failed, commit, context


def can_fork() -> bool:
    """Whether workers may be forked from this process (a platform with ``fork``, no other thread running)."""
    return hasattr(os, "fork") and threading.active_count() == 1


def streamed(items: Sequence[T], *, workers: int, threads: int, start: Callable[[], Side[T, R]],
             rerun: Callable[[list[T]], list[R]], report: int = REPORT) -> Generator[R, None, None]:
    """A result for every item, in input order, from ``workers`` forked processes with ``threads`` threads each,
    which send their results in groups of up to ``report``."""
    import gc
    import queue  # noqa: F401  (the workers' import, made once here before they are forked)

    results: dict[int, R] = {}
    todo = deque(range(len(items)))  # not yet handed to a worker
    reported = 0
    # Frozen objects are never collected: the workers' collections leave what they inherit (and its memory pages)
    # alone. A caller that froze first (``nuseal sign``'s start-up) keeps its freeze.
    thawed = gc.get_freeze_count() == 0
    gc.freeze()
    try:
        while reported < len(items):
            assert todo, "every item given out was reported or re-run when the last worker ended"
            crew = _Crew(start, min(workers, len(todo)), threads, report)
            try:
                share = -(-len(todo) // len(crew.workers))  # a short batch still reaches every worker
                for worker in crew.workers:
                    crew.give(worker, todo, items, min(threads + report + AHEAD, share))
                while crew.live() and reported < len(items):
                    for worker, received in crew.wait():
                        if received is None:  # the worker died with items in hand
                            lost = sorted(worker.held)
                            worker.held.clear()
                            results.update(zip(lost, rerun([items[i] for i in lost]), strict=True))
                            continue
                        for index, result in received:
                            results[index] = result
                            worker.held.discard(index)
                        crew.give(worker, todo, items, len(received))
                    while reported in results:
                        yield results.pop(reported)
                        reported += 1
            finally:
                crew.close()
    finally:
        if thawed:
            gc.unfreeze()


class _Channel:
    """One end of a worker's two pipes: reads from one, writes to the other (``-1``: closed)."""

    __slots__ = ("reading", "writing")

    def __init__(self, reading: int, writing: int) -> None:
        self.reading = reading
        self.writing = writing

    def fileno(self) -> int:
        """The descriptor to wait on for a message (``-1`` once closed)."""
        return self.reading

    def end(self) -> None:
        """Say that nothing more will be sent: the other side reads the end of the stream."""
        if self.writing >= 0:
            os.close(self.writing)
            self.writing = -1

    def close(self) -> None:
        self.end()
        if self.reading >= 0:
            os.close(self.reading)
            self.reading = -1


def _channels() -> tuple[_Channel, _Channel]:
    """This process's end and the worker's end of two new pipes."""
    items_read, items_write = os.pipe()
    try:
        results_read, results_write = os.pipe()
    except BaseException:
        os.close(items_read)
        os.close(items_write)
        raise
    return _Channel(results_read, items_write), _Channel(items_read, results_write)


class _Worker:
    __slots__ = ("channel", "held", "pid")

    def __init__(self, pid: int, channel: _Channel) -> None:
        self.pid = pid
        self.channel = channel
        self.held: set[int] = set()  # indices given and not yet reported


class _Crew:
    """The forked workers of one round (a new round starts only if every worker of the last one died)."""

    def __init__(self, start: Callable[[], Side[Any, Any]], count: int, threads: int, report: int) -> None:
        import sys

        for stream in (sys.stdout, sys.stderr):  # nothing buffered here is written twice by a child
            stream.flush()
        self.workers: list[_Worker] = []
        self._ended: set[int] = set()
        try:
            for _ in range(count):
                mine, theirs = _channels()
                try:
                    pid = os.fork()
                except BaseException:
                    mine.close()
                    theirs.close()
                    raise
                if pid == 0:  # the worker; it never returns from here
                    code = 1
                    try:
                        mine.close()
                        for other in self.workers:  # else a worker would keep another's pipes open
                            other.channel.close()
                        _serve(theirs, start(), threads, report)
                        code = 0
                    finally:
                        os._exit(code)
                theirs.close()
                self.workers.append(_Worker(pid, mine))
        except BaseException:
            self.close()
            raise

    def live(self) -> bool:
        return any(w.channel.fileno() >= 0 for w in self.workers)

    def give(self, worker: _Worker, todo: deque[int], items: Sequence[Any], count: int) -> None:
        """Hand ``worker`` up to ``count`` more items; tell it there are no more once it holds none."""
        given: list[tuple[int, Any]] = []
        while todo and len(given) < count:
            index = todo.popleft()
            given.append((index, items[index]))
            worker.held.add(index)
        try:
            if given:
                _send(worker.channel, given)
            elif not worker.held and worker.pid not in self._ended:
                self._ended.add(worker.pid)
                worker.channel.end()  # the worker finishes and exits
        except OSError:
            pass  # the worker is gone: the next wait() finds its pipe at the end and re-runs what it held

    def wait(self) -> list[tuple[_Worker, list[tuple[int, Any]] | None]]:
        """The messages of the workers that sent one (``None``: the worker is gone with items in hand)."""
        import select

        live = {w.channel.fileno(): w for w in self.workers if w.channel.fileno() >= 0}
        poll = select.poll()  # not select(): no limit on descriptor numbers (fork means POSIX, which has poll)
        for fd in live:
            poll.register(fd, select.POLLIN)
        found: list[tuple[_Worker, list[tuple[int, Any]] | None]] = []
        for worker in (live[fd] for fd, _ in poll.poll()):
            message = _receive(worker.channel)
            if message is None:
                worker.channel.close()
                self._reap(worker)
                if not worker.held:
                    continue  # it had finished its work
            found.append((worker, message))
        return found

    def _reap(self, worker: _Worker) -> None:
        if worker.pid > 0:
            os.waitpid(worker.pid, 0)
            worker.pid = -worker.pid

    def close(self) -> None:
        """Close every pipe (a worker finishes what is on its threads and exits) and wait for the workers."""
        for worker in self.workers:
            worker.channel.close()
        for worker in self.workers:
            self._reap(worker)


# --- the wire: length-prefixed pickles between this process and its own children -----------------------------------


def _send(channel: _Channel, value: object) -> None:
    """``OSError`` (``BrokenPipeError``) when the other side is gone: Python ignores ``SIGPIPE``."""
    data = _dumps(value, _PROTOCOL)
    view = memoryview(_LENGTH.pack(len(data)) + data)
    while view:
        view = view[os.write(channel.writing, view):]


def _receive(channel: _Channel) -> Any:
    """The next message, or ``None`` at the end of the stream (also when it breaks off mid-message)."""
    head = _exactly(channel.reading, _LENGTH.size)
    if head is None:
        return None
    body = _exactly(channel.reading, _LENGTH.unpack(head)[0])
    return None if body is None else _loads(body)


def _exactly(fd: int, size: int) -> bytes | None:
    """``size`` bytes from ``fd``, or ``None`` at the end of the stream. A pipe gives at most its buffer per read
    (64 KiB on Linux): the chunks are joined once, not concatenated one by one."""
    chunks: list[bytes] = []
    left = size
    while left:
        chunk = os.read(fd, left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


# --- in the worker ------------------------------------------------------------------------------------------------


def _serve(channel: _Channel, side: Side[Any, Any], threads: int, report: int) -> None:
    """Work on what arrives on ``channel`` with ``threads`` threads; send the results back in groups until this
    process ends its stream and nothing is left. Plain threads and ``queue.SimpleQueue`` rather than a
    ``ThreadPoolExecutor``: ``concurrent.futures`` imports ``logging`` and ``traceback``, which each worker would
    pay after the fork.

    Also with one thread (``verify_batch``): a loop on the main thread that read items between two items saved
    0.1-0.9 % of the workers' instructions, but on a loaded machine (load 7-9 on 2 cores) its batches took 15-55 %
    longer (wall medians, same CPU; docs/performance.md "Batch verify, part 6")."""
    import queue

    work: queue.SimpleQueue[tuple[int, Any] | None] = queue.SimpleQueue()
    done: queue.SimpleQueue[tuple[int, Any] | None] = queue.SimpleQueue()
    started = [0]
    stopping = threading.Event()

    def take() -> None:
        """Reader thread: queue every item that arrives; ``None`` once the stream ends."""
        try:
            while (message := _receive(channel)) is not None:
                for entry in message:
                    started[0] += 1
                    work.put(entry)
        finally:
            done.put(None)

    def run() -> None:
        while (entry := work.get()) is not None:
            if stopping.is_set():
                continue  # this process stopped listening: start nothing more
            index, item = entry
            done.put((index, _outcome(side, item)))

    runners = [threading.Thread(target=run, name="nuseal-worker", daemon=True) for _ in range(threads)]
    with side.context:
        for runner in runners:
            runner.start()
        threading.Thread(target=take, name="nuseal-worker-reader", daemon=True).start()
        try:
            _report(channel, done, started, side.commit, report)
        finally:
            stopping.set()
            for _ in runners:
                work.put(None)
            for runner in runners:
                runner.join()
    channel.close()


def _outcome(side: Side[Any, Any], item: Any) -> Any:
    try:
        return side.work(item)
    except BaseException as exc:  # work() catches its own errors; anything else costs only its item
        try:
            return side.failed(item, exc)
        except BaseException:
            os._exit(1)  # never reported otherwise: the parent re-runs what this worker held, one per process


def _report(channel: _Channel, done: Any, started: list[int], commit: Callable[[list[Any]], list[Any]] | None,
            report: int) -> None:
    """Send the results in ``done`` in groups until the stream of items ended and every one is reported.

    A group is sent when it is ``report`` results long or when nothing else is in hand (this process gives more
    items only for results it received): one ``commit`` and one message per group, while the threads go on."""
    finished, ended = 0, False
    indices: list[int] = []
    results: list[Any] = []
    while not ended or finished < started[0]:
        entry = done.get()
        if entry is None:
            ended = True
        else:
            indices.append(entry[0])
            results.append(entry[1])
            finished += 1
        if indices and (len(indices) >= report or finished == started[0]):
            if commit is not None:
                results = commit(results)
            try:
                _send(channel, list(zip(indices, results, strict=True)))
            except OSError:  # this process stopped listening: finish what is on the threads, report nothing
                return
            indices, results = [], []
