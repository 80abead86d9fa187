"""nuseal.forked: a worker on its pipes, and what the module costs a process that forks."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from pathlib import Path

from nuseal import forked


def _serving(work: forked.Side[int, int]) -> tuple[forked._Channel, threading.Thread]:
    """``forked._serve`` with one thread, groups of two and no commit (``verify_batch``'s workers) on a thread of
    this process, and this process's end of its pipes."""
    mine, theirs = forked._channels()
    thread = threading.Thread(target=forked._serve, args=(theirs, work, 1, 2), daemon=True)
    thread.start()
    return mine, thread


def _groups(mine: forked._Channel) -> list[list[tuple[int, int]]]:
    groups = []
    while (message := forked._receive(mine)) is not None:
        groups.append(message)
    mine.close()
    return groups


def test_a_worker_reads_its_items_from_a_pipe_and_sends_the_results_in_groups() -> None:
    side: forked.Side[int, int] = forked.Side(lambda item: item * 10, lambda item, exc: -1, None,
                                              contextlib.nullcontext())
    mine, thread = _serving(side)
    forked._send(mine, [(0, 0), (1, 1), (2, 2)])
    forked._send(mine, [(3, 3), (4, 4)])
    mine.end()
    groups = _groups(mine)
    thread.join(10)
    assert not thread.is_alive()
    assert sorted(entry for group in groups for entry in group) == [(i, i * 10) for i in range(5)]
    assert all(1 <= len(group) <= 2 for group in groups)


def test_a_worker_reports_what_it_holds_before_waiting_for_more() -> None:
    """This process gives more only for verdicts it has: a worker holding fewer than a group sends them."""
    side: forked.Side[int, int] = forked.Side(lambda item: item + 1, lambda item, exc: -1, None,
                                              contextlib.nullcontext())
    mine, thread = _serving(side)
    forked._send(mine, [(7, 7)])
    assert forked._receive(mine) == [(7, 8)]  # one result, although a group is two
    forked._send(mine, [(8, 8)])
    assert forked._receive(mine) == [(8, 9)]
    mine.end()
    assert _groups(mine) == []
    thread.join(10)
    assert not thread.is_alive()


def test_a_worker_turns_an_escaping_error_into_its_items_result() -> None:
    def work(item: int) -> int:
        if item == 1:
            raise RuntimeError("bug")
        return item

    side: forked.Side[int, int] = forked.Side(work, lambda item, exc: -len(str(exc)), None, contextlib.nullcontext())
    mine, thread = _serving(side)
    forked._send(mine, [(0, 0), (1, 1), (2, 2)])
    mine.end()
    results = dict(entry for group in _groups(mine) for entry in group)
    thread.join(10)
    assert results == {0: 0, 1: -3, 2: 2}


def test_streamed_results_in_input_order_from_forked_workers_on_pipes() -> None:
    def start() -> forked.Side[int, tuple[int, int]]:
        return forked.Side(lambda item: (item, os.getpid()), lambda item, exc: (-1, 0), None,
                           contextlib.nullcontext())

    results = list(forked.streamed(list(range(9)), workers=2, threads=1, start=start, rerun=lambda lost: [],
                                   report=2))
    assert [item for item, _ in results] == list(range(9))
    assert os.getpid() not in {pid for _, pid in results}


def test_a_message_larger_than_the_pipe_buffer_arrives_whole() -> None:
    mine, theirs = forked._channels()
    value = [(index, os.urandom(1000)) for index in range(300)]  # ~310 KB pickled: several 64 KiB pipe reads
    writer = threading.Thread(target=forked._send, args=(theirs, value), daemon=True)
    writer.start()
    assert forked._receive(mine) == value
    writer.join(10)
    theirs.end()
    assert forked._receive(mine) is None  # then the end of the stream
    mine.close()
    theirs.close()


def test_importing_forked_loads_neither_socket_nor_pickle_nor_queue() -> None:
    """They are imports on the path of every parallel batch before its first fork (issue 12)."""
    code = ("import sys; import nuseal.forked; "
            "print(sorted(m for m in ('socket', 'selectors', 'pickle', 'queue') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(Path(forked.__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
