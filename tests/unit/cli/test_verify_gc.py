"""``nuseal verify`` start-up runs without cyclic garbage collection and verification with it (start-up's objects
frozen); an in-process verification, through the entry point (lean) or typer, leaves the collector as it found it."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest
from tests.conftest import VECTORS
from tests.support.cli import run

from nuseal.cli import collector
from nuseal.cli.entry import main
from nuseal.verify import batch

DAPPER = str(VECTORS / "real" / "Dapper.2.0.78.nupkg")


@pytest.fixture(autouse=True)
def _collector_restored() -> Iterator[None]:
    assert gc.isenabled() and gc.get_freeze_count() == 0
    yield
    assert gc.isenabled() and gc.get_freeze_count() == 0


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bool, int]]:
    """The collector's state (enabled, frozen objects) when each verification batch starts."""
    states: list[tuple[bool, int]] = []
    real = batch.verify_batch

    def watched(*args: Any, **kwargs: Any) -> Any:
        states.append((gc.isenabled(), gc.get_freeze_count()))
        return real(*args, **kwargs)

    monkeypatch.setattr(batch, "verify_batch", watched)
    return states


def test_start_up_does_not_collect_and_verifying_does_with_start_up_frozen() -> None:
    collector.pause()
    assert not gc.isenabled()
    with collector.after_start_up() as start_collecting:
        assert not gc.isenabled()
        start_collecting()
        assert gc.isenabled() and gc.get_freeze_count() > 0


def test_resume_undoes_pause_and_only_pause() -> None:
    collector.pause()
    collector.resume()
    assert gc.isenabled()
    gc.disable()
    try:
        collector.resume()  # nothing paused: a collector the caller turned off stays off
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_disabled_collector_stays_disabled() -> None:
    gc.disable()
    try:
        collector.pause()
        with collector.after_start_up() as start_collecting:
            start_collecting()
            assert not gc.isenabled()
        assert not gc.isenabled() and gc.get_freeze_count() == 0
    finally:
        gc.enable()


def test_the_collector_is_restored_when_start_up_fails() -> None:
    with pytest.raises(SystemExit), collector.after_start_up():
        raise SystemExit(1)


def test_the_entry_point_verifies_with_the_collector_on_and_start_up_frozen(seen: list[tuple[bool, int]]) -> None:
    with pytest.raises(SystemExit):
        main(["verify", "--revocation-mode", "offline", "-v", "q", "--parallel", "1", DAPPER])
    assert len(seen) == 1 and seen[0][0] and seen[0][1] > 0


def test_a_command_line_left_to_typer_leaves_the_collector_on(seen: list[tuple[bool, int]]) -> None:
    with pytest.raises(SystemExit):
        main(["verify", "-vq", DAPPER])  # combined short options: typer reads this one
    assert len(seen) == 1 and seen[0][0]


def test_typer_verifies_with_the_collector_on(seen: list[tuple[bool, int]]) -> None:
    code, _, _ = run("verify", "--revocation-mode", "offline", "--parallel", "1", DAPPER)
    assert code in (0, 1) and len(seen) == 1 and seen[0][0] and seen[0][1] > 0
