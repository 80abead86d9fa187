"""The job queue: huey on SQLite (embedded: ``queue_url = sqlite:///DATA/queue.db``) or on Redis
(``redis://HOST:PORT/N``, for workers on several machines), and the tasks registered on it.

Messages carry ids only; the database is the source of truth. Dequeuing removes a message before its task runs,
so a worker killed mid-task loses the message: that costs time, never work, because every task is idempotent and
:func:`nuseal.server.services.rotation.sweep` (a periodic task every minute, and at every worker start) finds
work whose lease expired or that nobody holds and enqueues it again. A duplicate message is harmless too: leases
make the second delivery find nothing to do.

Tasks (names are part of the queue's format: keep them):

- ``nuseal.resign_batch(run_id)``: one batch of a re-signing run; enqueues the next batch while work remains.
- ``nuseal.validate(version_id)``: the push pipeline's validation job (:mod:`nuseal.server.services.validation`):
  a ``validating`` version to ``available`` (repository-signed) or ``failed``.
- ``nuseal.sweep()``: periodic; re-enqueues abandoned work (re-signing batches, ``validating`` versions nobody
  holds), completes finished runs; extra sweeps can be added with :meth:`JobQueue.add_sweep`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Final
from urllib.parse import unquote, urlsplit

from huey import RedisHuey, SqliteHuey, crontab
from huey.api import Huey

from nuseal.errors import NusealError
from nuseal.server.jobs.runtime import WorkerRuntime
from nuseal.server.services import rotation, validation
from nuseal.server.settings import ServerSettings

_log = logging.getLogger(__name__)

QUEUE_NAME: Final = "nuseal"
#: Batches started at once for a new run: the parallelism a run can reach (chains end when nothing is left).
RESIGN_FANOUT: Final = 8
#: Seconds before huey retries a task that raised (a TSA or storage outage, a worker without a key).
RETRY_DELAY: Final = 10

Sweep = Callable[[WorkerRuntime, "JobQueue"], None]


class QueueError(NusealError):
    """The queue URL cannot be used."""


def open_huey(settings: ServerSettings) -> Huey:
    """The huey instance for ``settings.queue_url`` (no results store: results live in the database)."""
    url = settings.queue_url
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        # SQLAlchemy's spelling, as for the database: what follows "sqlite:///" is the file name.
        path = Path(unquote(url.removeprefix("sqlite:///")))
        if not url.startswith("sqlite:///") or not path.is_absolute():
            raise QueueError(f"invalid queue URL {url!r}: expected sqlite:////ABSOLUTE/queue.db")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise QueueError(f"cannot create the queue folder '{path.parent}': {exc.strerror}") from None
        return SqliteHuey(QUEUE_NAME, filename=str(path), results=False, utc=True, timeout=10)
    if parts.scheme in ("redis", "rediss"):
        return RedisHuey(QUEUE_NAME, url=url, results=False, utc=True)
    raise QueueError(f"unsupported queue URL {url!r}: use sqlite:///FILE or redis://HOST:PORT/N")


class JobQueue:
    """The tasks on one huey instance. Enqueuing needs nothing else; running them needs :meth:`bind`."""

    def __init__(self, huey: Huey) -> None:
        self.huey = huey
        self._runtime: WorkerRuntime | None = None
        self._sweeps: list[Sweep] = [_resign_sweep, _validation_sweep]
        self._resign = huey.task(name="nuseal.resign_batch", retries=3, retry_delay=RETRY_DELAY)(self._resign_batch)
        self._validate = huey.task(name="nuseal.validate", retries=3, retry_delay=RETRY_DELAY)(self._validate_version)
        self._sweep = huey.periodic_task(crontab(minute="*"), name="nuseal.sweep")(self.run_sweep)

    # --- enqueuing (any process) -------------------------------------------------------------------------------

    def enqueue_resign(self, run_id: int, copies: int = 1) -> None:
        """Start ``copies`` batch chains for the run (more copies = more workers on it at once)."""
        for _ in range(copies):
            self._resign(run_id)

    def enqueue_validation(self, version_id: int) -> None:
        """Hand a ``validating`` version to the validation job (called after the push's commit)."""
        self._validate(version_id)

    def enqueue_sweep(self) -> None:
        self._sweep()

    def pending(self) -> int:
        """Messages waiting in the queue (for tests and status)."""
        return int(self.huey.pending_count())

    # --- running (worker processes) -------------------------------------------------------------------------

    def bind(self, runtime: WorkerRuntime) -> None:
        """Run tasks with ``runtime`` (called once by the workers of this process before they start)."""
        self._runtime = runtime

    @property
    def runtime(self) -> WorkerRuntime:
        if self._runtime is None:
            raise RuntimeError("this process runs no workers: JobQueue.bind() was not called")
        return self._runtime

    def add_sweep(self, sweep: Sweep) -> None:
        """Also run ``sweep(runtime, queue)`` whenever the queue is swept."""
        self._sweeps.append(sweep)

    def run_sweep(self) -> None:
        """Re-enqueue abandoned work and complete finished runs (the periodic task; also called at start-up)."""
        for sweep in self._sweeps:
            try:
                sweep(self.runtime, self)
            except NusealError as exc:  # one sweep failing (database down) must not stop the others
                _log.warning("sweep failed", extra={"fields": {"sweep": sweep.__name__, "error": str(exc)}})

    def _validate_version(self, version_id: int) -> None:
        runtime = self.runtime
        signing = validation.FeedSigning(runtime.keyring, runtime.service_index_url)
        try:
            outcome = validation.validate_version(runtime.ctx, version_id, signing=signing)
        except rotation.NoActiveCertificateError as exc:
            # Nothing to sign with: the version stays validating (never served unsigned); the sweep retries.
            _log.warning("validation waits", extra={"fields": {"version": version_id, "reason": exc.message}})
            return
        if outcome is validation.Outcome.RETRY:  # the active certificate changed under the job: sign again
            self._validate(version_id)

    def _resign_batch(self, run_id: int) -> None:
        runtime = self.runtime
        try:
            result = rotation.process_batch(runtime.ctx, runtime.keyring, run_id,
                                            service_index_url=runtime.service_index_url)  # fmt: skip
        except rotation.NoActiveCertificateError as exc:
            # Nothing to sign with yet: 'repo-cert activate' enqueues the run again (and so does the sweep).
            _log.warning("re-signing waits", extra={"fields": {"run": run_id, "reason": exc.message}})
            return
        _log.info("re-signing batch", extra={"fields": {
            "run": run_id, "worker": runtime.name, "claimed": result.claimed, "resigned": result.resigned,
            "failed": result.failed, "skipped": result.skipped, "remaining": result.remaining,
            "completed": result.completed,
        }})  # fmt: skip
        if result.more and result.claimed:
            self._resign(run_id)


def _validation_sweep(runtime: WorkerRuntime, queue: JobQueue) -> None:
    stuck = validation.stuck_versions(runtime.ctx)
    for version_id in stuck:
        queue.enqueue_validation(version_id)
    if stuck:
        _log.info("sweep", extra={"fields": {"validating": stuck}})


def _resign_sweep(runtime: WorkerRuntime, queue: JobQueue) -> None:
    found = rotation.sweep(runtime.ctx)
    for run_id in found.to_continue:
        queue.enqueue_resign(run_id)
    if found.to_continue or found.completed:
        _log.info("sweep", extra={"fields": {"continued": list(found.to_continue),
                                             "completed": list(found.completed)}})  # fmt: skip
