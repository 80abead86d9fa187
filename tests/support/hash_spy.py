"""A spy on ``nuseal.package.hashing``'s one hashing function, shared by the prefetch tests of the package layer and
of the CLI: it records the name of the thread of every real hash pass over a package (prefetched or not)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any, BinaryIO

import pytest

from nuseal.package import hashing


def hash_pass_threads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Fixture body: the list the spy fills; prefetches left over from other tests are forgotten before, and the
    ones a test leaves running are stopped after."""
    threads: list[str] = []
    real = hashing._plan_digests

    def spy(f: BinaryIO, plan: list[hashing.Segment], algorithms: tuple[str, ...], *rest: Any) -> tuple[bytes, ...]:
        threads.append(threading.current_thread().name)
        return real(f, plan, algorithms, *rest)

    monkeypatch.setattr(hashing, "_plan_digests", spy)
    monkeypatch.setattr(hashing, "_prefetches", {})
    yield threads
    hashing.stop_prefetches()
