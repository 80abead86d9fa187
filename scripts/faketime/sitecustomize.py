"""Loaded by every Python process that ``scripts/test-future`` starts (it puts this folder on ``PYTHONPATH``).

libfaketime 0.9.10 (Debian 12) cannot move the monotonic clock safely for Python 3.11: when it does (its default),
a lock or ``threading.Event`` wait with a timeout never returns, because glibc's ``sem_clockwait`` is not
intercepted and the kernel is handed a deadline a year ahead; when it does not (``FAKETIME_DONT_FAKE_MONOTONIC=1``,
what the script sets), every ``time.sleep`` fails with EINVAL from its ``clock_nanosleep`` wrapper. The monotonic
clock is no calendar date, so the script leaves it alone, and this module gives ``time.sleep`` a ``select``-based
body with the same contract (it sleeps at least the time asked, raises ``ValueError`` for a negative time).
"""

from __future__ import annotations

import os
import select
import time


def _sleep(seconds: float) -> None:
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        select.select([], [], [], left)


if os.environ.get("FAKETIME_DONT_FAKE_MONOTONIC") == "1" and "faketime" in os.environ.get("LD_PRELOAD", ""):
    time.sleep = _sleep
