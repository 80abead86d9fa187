"""Fault injection for crash tests: kill this process at a named point of a job, and nowhere else.

Off unless armed. ``nuseal serve`` and ``nuseal worker`` arm it from the environment variable
``NUSEAL_TEST_CRASH_AT=POINT[:N]`` (tests set it on the process they start): the N-th time (default 1) the process
reaches ``checkpoint(POINT)`` it sends itself SIGKILL, exactly what a power cut or the OOM killer does mid-job. A
point name that is not in :data:`CRASH_POINTS` is refused at start-up, so a typo cannot silently test nothing.
Nothing else reads the variable, and an unarmed checkpoint is one attribute test.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Mapping
from typing import Final

ENV: Final = "NUSEAL_TEST_CRASH_AT"

#: Every checkpoint a job passes, in the order a re-sign (then a push and its validation) passes them.
CRASH_POINTS: Final = (
    "resign.claimed",  # leases taken, nothing done yet
    "resign.signed",  # the new package is signed in a temporary folder
    "resign.blob_written",  # the new blob is stored, the database still serves the old one
    "resign.synced",  # the batch's new blobs are durable, the database still serves the old ones
    "resign.committed",  # the database serves the new blob, the old blob is not deleted yet
    "resign.old_blob_deleted",  # the version is done
    "resign.finalizing",  # nothing left for the run: about to complete it
    # the push pipeline (branch pipeline): the server's push, then the validation job (services.validation)
    "push.staged",  # the upload is stored under its upload key, no version row yet
    "push.persisted",  # the version row (validating) is committed, the job not enqueued yet
    "validate.leased",  # the job holds the version's lease, nothing read yet
    "validate.judged",  # checks, stripping, verification and signer rules passed
    "validate.signed",  # the repository-signed package is in a temporary folder
    "validate.blob_written",  # the signed blob is stored, the database still says validating
    "validate.committed",  # the version is available; the job has not returned yet
)


class FaultError(ValueError):
    """``NUSEAL_TEST_CRASH_AT`` names no checkpoint, or a bad count."""


class _Armed:
    point: str | None = None
    remaining = 0
    lock = threading.Lock()


def arm(point: str | None, count: int = 1) -> None:
    """Kill the process the ``count``-th time it reaches ``point`` (``None`` disarms)."""
    if point is not None and point not in CRASH_POINTS:
        raise FaultError(f"unknown crash point {point!r} in {ENV}: expected one of {', '.join(CRASH_POINTS)}")
    if count < 1:
        raise FaultError(f"{ENV}: the count must be 1 or more, not {count}")
    with _Armed.lock:
        _Armed.point, _Armed.remaining = point, count


def arm_from_environ(environ: Mapping[str, str]) -> str | None:
    """Arm from ``NUSEAL_TEST_CRASH_AT`` (``POINT`` or ``POINT:N``); returns the point, or None when unset."""
    value = environ.get(ENV, "").strip()
    if not value:
        arm(None)
        return None
    point, _, count = value.partition(":")
    if count and not count.isdigit():
        raise FaultError(f"{ENV}={value!r}: expected POINT or POINT:N")
    arm(point, int(count) if count else 1)
    return point


def checkpoint(point: str) -> None:
    """A named point of a job: kills the process here when armed for it (see the module docstring)."""
    if _Armed.point is None or _Armed.point != point:
        return
    with _Armed.lock:
        _Armed.remaining -= 1
        fire = _Armed.remaining == 0
    if fire:
        os.kill(os.getpid(), signal.SIGKILL)
