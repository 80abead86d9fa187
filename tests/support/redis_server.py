"""A throwaway Redis 7 (Debian's ``redis-server``) on 127.0.0.1: no persistence, no config file, our child.

Named ``redis_server`` so that it never shadows the ``redis`` client package. Fixture: ``redis_server`` (session);
a test that needs an empty keyspace calls ``flushall()`` on its client or uses a database number of its own.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests.support.processes import ManagedProcess, RealPartError, failing_clearly, find_binary, free_port

START_TIMEOUT = 30.0


@dataclass(frozen=True)
class RedisServer:
    port: int
    host: str = "127.0.0.1"

    def url(self, db: int = 0) -> str:
        """``redis://127.0.0.1:PORT/db``, as redis-py's ``Redis.from_url`` takes it."""
        return f"redis://{self.host}:{self.port}/{db}"

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(host=self.host, port=self.port, db=db, socket_timeout=5)


def _pong(port: int) -> bool:
    with redis.Redis(host="127.0.0.1", port=port, socket_timeout=1) as client:
        return bool(client.ping())


@contextmanager
def running_redis(attempts: int = 3) -> Iterator[RedisServer]:
    """Start redis-server on a free loopback port (``--save '' --appendonly no``); stop it afterwards."""
    binary = find_binary("redis-server", "/usr/bin/redis-server", package="redis-server")
    root = Path(tempfile.mkdtemp(prefix="nuseal-redis-"))
    try:
        for attempt in range(attempts):
            port = free_port()
            process = ManagedProcess(
                "redis-server",
                [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", str(root), "--daemonize", "no", "--logfile", ""],
                root / f"redis-{attempt}.log", cwd=root,
            )  # fmt: skip
            try:
                process.wait_ready(functools.partial(_pong, port), START_TIMEOUT)
            except RealPartError:
                if "Address already in use" in process.log_tail(40) and attempt + 1 < attempts:
                    continue
                raise
            break
        try:
            yield RedisServer(port)
        finally:
            process.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real Redis for the session (see module docstring)."""
    with failing_clearly(), running_redis() as server:
        yield server
