"""Job workers in this process: huey consumer threads bound to a :class:`WorkerRuntime`.

- :class:`EmbeddedWorkers` runs inside ``nuseal serve`` (the embedded default): started after the socket is bound,
  stopped after the web server; the web server owns the process signals, so the consumer installs none.
- :func:`run_workers` is ``nuseal worker``: the consumer in the foreground until SIGINT (finish the current tasks)
  or SIGTERM (stop now; interrupted work is picked up again by the sweep: every task is safe to re-run).

Both sweep once at start-up, so the work a killed process left behind starts again without waiting for the
periodic sweep. Threads share one keyring (keys unsealed once per process); for CPU-bound signing on several cores
run one ``nuseal worker`` per core.
"""

from __future__ import annotations

import logging
import threading
from typing import Final

from huey.consumer import Consumer

from nuseal.errors import NusealError
from nuseal.server.jobs.queue import JobQueue
from nuseal.server.jobs.runtime import WorkerRuntime
from nuseal.server.services import rotation

_log = logging.getLogger(__name__)

#: Idle polling of the SQLite queue (Redis blocks on the queue instead): starts at 50 ms, backs off to 250 ms,
#: so a new job waits at most a quarter of a second.
_POLL_START, _POLL_MAX, _POLL_BACKOFF = 0.05, 0.25, 1.5
#: How long a graceful stop waits for running tasks before leaving them to the sweep.
SHUTDOWN_TIMEOUT: Final = 10.0


def _consumer_options(threads: int) -> dict[str, object]:
    return {"workers": threads, "worker_type": "thread", "periodic": True, "initial_delay": _POLL_START,
            "max_delay": _POLL_MAX, "backoff": _POLL_BACKOFF, "shutdown_timeout": SHUTDOWN_TIMEOUT}  # fmt: skip


class _QuietConsumer(Consumer):  # type: ignore[misc]
    """A consumer that leaves the process signals alone (the web server handles SIGINT/SIGTERM)."""

    def _set_signal_handlers(self) -> None:  # huey's hook; uvicorn must keep its own handlers
        return None


def _warm_up(runtime: WorkerRuntime) -> None:
    """Open the active signing certificate once (best effort: a job that needs it reports what is wrong)."""
    try:
        cert = rotation.signing_certificate(runtime.ctx, runtime.keyring, runtime.service_index_url)
        _log.info("signing ready", extra={"fields": {"worker": runtime.name, "certificate": cert.sha256}})
    except NusealError as exc:
        _log.info("signing warm-up skipped", extra={"fields": {"worker": runtime.name, "reason": exc.message}})
    except Exception:  # never let the warm-up thread die noisily: the jobs meet the same problem and report it
        _log.exception("signing warm-up failed")


def _start_up(queue: JobQueue, runtime: WorkerRuntime) -> None:
    queue.bind(runtime)
    queue.run_sweep()  # work a killed worker left behind, without waiting for the periodic sweep


class EmbeddedWorkers:
    """Worker threads inside ``nuseal serve``."""

    def __init__(self, queue: JobQueue, runtime: WorkerRuntime, *, threads: int) -> None:
        self.queue = queue
        self.runtime = runtime
        self._consumer = _QuietConsumer(queue.huey, **_consumer_options(threads))

    def start(self) -> None:
        _start_up(self.queue, self.runtime)
        self._consumer.start()
        _log.info("workers started", extra={"fields": {"worker": self.runtime.name,
                                                       "threads": self._consumer.workers}})  # fmt: skip

    def stop(self) -> None:
        """Finish the running tasks (at most ``SHUTDOWN_TIMEOUT`` seconds; the rest is left to the sweep)."""
        self._consumer.stop(graceful=True)
        self.runtime.close()
        _log.info("workers stopped", extra={"fields": {"worker": self.runtime.name}})


def run_workers(queue: JobQueue, runtime: WorkerRuntime, *, threads: int) -> None:
    """``nuseal worker``: run until SIGINT/SIGTERM (huey's consumer loop, with its health checks)."""
    _start_up(queue, runtime)
    # Unseal the active key and make the trial signature now, beside the consumer, rather than in the first job:
    # a worker started for a rotation or a burst of pushes then signs at full speed from its first package.
    threading.Thread(target=_warm_up, args=(runtime,), name="nuseal-warm-up", daemon=True).start()
    consumer = Consumer(queue.huey, **_consumer_options(threads))
    try:
        consumer.run()
    finally:
        runtime.close()
