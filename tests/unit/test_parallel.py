"""nuseal.parallel.ordered_map: input order whatever finishes first, the worker state made once, and a worker that
dies costing only its own item (under fork and, when other threads run, under forkserver)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from nuseal import parallel

_state: dict[str, int] = {}


def _remember(offset: int) -> None:
    _state["offset"] = offset
    _state["pid"] = os.getpid()


def _slow_first(item: int) -> tuple[int, int, int]:
    """Early items take longest, so a pool that returned in completion order would reverse them."""
    time.sleep(0.02 * (6 - item) if item < 6 else 0)
    return item, item + _state["offset"], _state["pid"]


def _kill_on_three(item: int) -> str:
    if item == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return f"ok {item}"


def _raise_on_two(item: int) -> str:
    if item == 2:
        raise KeyError("boom")
    return f"ok {item}"


def _failed(item: int, reason: str) -> str:
    return f"failed {item}: {reason}"


@pytest.fixture
def other_thread() -> Iterator[None]:
    """A running thread: ordered_map must then not fork this process (it uses forkserver)."""
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join()


def test_results_keep_input_order_and_the_initializer_runs_in_each_worker() -> None:
    results = list(parallel.ordered_map(_slow_first, list(range(10)), workers=3, on_failure=_failed,
                                        initializer=_remember, initargs=(100,)))
    assert [r[:2] for r in results] == [(i, i + 100) for i in range(10)]
    pids = {r[2] for r in results}
    assert os.getpid() not in pids and 1 <= len(pids) <= 3


def test_a_worker_killed_mid_batch_costs_only_its_item() -> None:
    results = list(parallel.ordered_map(_kill_on_three, list(range(8)), workers=2, on_failure=_failed))
    assert results[:3] == ["ok 0", "ok 1", "ok 2"] and results[4:] == [f"ok {i}" for i in range(4, 8)]
    assert results[3] == "failed 3: the worker process was killed by SIGKILL"


def test_an_exception_escaping_work_is_that_items_failure() -> None:
    results = list(parallel.ordered_map(_raise_on_two, list(range(4)), workers=2, on_failure=_failed))
    assert results == ["ok 0", "ok 1", "failed 2: KeyError: 'boom'", "ok 3"]


@pytest.mark.usefixtures("other_thread")
def test_with_other_threads_running_workers_are_not_forked_from_this_process() -> None:
    assert threading.active_count() > 1
    results = list(parallel.ordered_map(_slow_first, list(range(8)), workers=2, on_failure=_failed,
                                        initializer=_remember, initargs=(7,)))
    assert [r[:2] for r in results] == [(i, i + 7) for i in range(8)]
    killed = list(parallel.ordered_map(_kill_on_three, list(range(5)), workers=2, on_failure=_failed))
    assert killed[3].startswith("failed 3: the worker process was killed") and killed[4] == "ok 4"


def test_default_workers_is_the_usable_core_count() -> None:
    assert parallel.default_workers() == len(os.sched_getaffinity(0))
