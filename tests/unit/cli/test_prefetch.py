"""``nuseal verify`` hashes a large package ahead (``nuseal.cli.prefetch``): from the raw command line, before the
parser and the verifier are imported, and the verifier takes that digest instead of reading the file again."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import VECTORS
from tests.support import tamper
from tests.support.hash_spy import hash_pass_threads

from nuseal.cli import entry, prefetch
from nuseal.package import hashing, headstart
from nuseal.package.hashing import unsigned_view_plan
from nuseal.package.zipformat import find_signature_entry, read_layout
from nuseal.verify import batch

SIGNED = VECTORS / "fixtures" / "TestPackage.AuthorSigned.1.0.0.nupkg"
PREFETCH_THREAD = "nuseal-prefetch-hash"


@pytest.fixture
def hash_passes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The thread name of every real hash pass over a package (prefetched or not)."""
    yield from hash_pass_threads(monkeypatch)


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[str | Path]:
    """The paths ``hashing.prefetch`` and ``headstart.start`` are called with (nothing is hashed)."""
    calls: list[str | Path] = []

    def fake(path: str | Path, algorithms: tuple[str, ...] = (hashing.SIGNED_ALGORITHM,)) -> bool:
        calls.append(path)
        return True

    def fake_start(path: str) -> bool:
        calls.append(path)
        return True

    monkeypatch.setattr(hashing, "prefetch", fake)
    monkeypatch.setattr(headstart, "start", fake_start)
    return calls


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with a "large" package (the threshold lowered below its size), a second one and a small file."""
    monkeypatch.setattr(prefetch, "PREFETCH_MIN_BYTES", 1000)
    (tmp_path / "big.nupkg").write_bytes(SIGNED.read_bytes())
    (tmp_path / "big2.nupkg").write_bytes(SIGNED.read_bytes())
    (tmp_path / "root.pem").write_bytes(b"x" * 999)
    (tmp_path / "folder").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(("words", "expected"), [
    (["big.nupkg", "--trust-roots", "root.pem", "-v", "q"], ["big.nupkg"]),
    (["--revocation-mode", "offline", "big.nupkg"], ["big.nupkg"]),
    (["root.pem", "big.nupkg", "missing.nupkg", "folder"], ["big.nupkg"]),
    (["big.nupkg", "big2.nupkg"], []),  # a batch: for_paths decides, knowing the workers
    (["--configfile=big.nupkg", "root.pem"], []),
    (["root.pem", "missing.nupkg", "*.nupkg"], []),
], ids=" ".join)  # fmt: skip
def test_the_command_line_names_the_package_to_prefetch(words: list[str], expected: list[str], files: Path,
                                                        started: list[str | Path]) -> None:
    prefetch.from_command_line(words)
    assert [Path(path) for path in started] == [Path(name) for name in expected]


@pytest.mark.parametrize(("names", "workers", "expected"), [
    (["big.nupkg"], 2, ["big.nupkg"]),
    (["big.nupkg", "big2.nupkg"], 1, ["big.nupkg"]),  # verified in this process, the rest hashed ahead
    (["big.nupkg", "big2.nupkg"], 2, []),  # worker processes hash their own
    (["root.pem"], 1, []),
    ([], 1, []),
], ids=str)  # fmt: skip
def test_parsed_paths_prefetch_only_what_this_process_verifies(names: list[str], workers: int, expected: list[str],
                                                               files: Path, started: list[str | Path]) -> None:
    prefetch.for_paths([Path(name) for name in names], workers)
    assert [Path(path) for path in started] == [Path(name) for name in expected]


def _verify(*args: str) -> int:
    with pytest.raises(SystemExit) as exited:
        entry.main(["verify", "--revocation-mode", "offline", "--json", *args])
    assert isinstance(exited.value.code, int)
    return exited.value.code


def test_the_verifier_takes_the_prefetched_digest(files: Path, hash_passes: list[str],
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    resumed: list[int] = []
    real_state_at = headstart.RawPass.state_at

    def state_at(self: headstart.RawPass, offset: int) -> Any:
        resumed.append(offset)
        return real_state_at(self, offset)

    monkeypatch.setattr(headstart.RawPass, "state_at", state_at)
    _verify("big.nupkg")
    out = capsys.readouterr().out
    (package,) = json.loads(out)["packages"]
    assert package["valid"] and "NU3008" not in out  # the package hash matched...
    assert hash_passes == [PREFETCH_THREAD]  # ...and it was computed once, ahead, on the prefetch thread
    assert hashing._prefetches == {}  # taken
    # The pass from byte 0, started from the command line, carried the stream up to the signature entry.
    with open(files / "big.nupkg", "rb") as f:
        layout = read_layout(f)
        first = unsigned_view_plan(f, layout, find_signature_entry(f, layout))[0]
    assert isinstance(first, hashing.FileRange) and resumed == [first.end]


def test_a_prefetched_digest_still_catches_a_modified_package(files: Path, hash_passes: list[str],
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    tamper.append_to_entry(SIGNED, files / "big.nupkg")
    assert _verify("big.nupkg") == 1
    out = capsys.readouterr().out
    (package,) = json.loads(out)["packages"]
    assert not package["valid"] and "NU3008" in out
    assert hash_passes == [PREFETCH_THREAD]


def test_without_a_prefetch_the_verifier_hashes_itself(files: Path, hash_passes: list[str],
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(prefetch, "PREFETCH_MIN_BYTES", 1 << 40)
    _verify("big.nupkg")
    capsys.readouterr()
    assert hash_passes == ["MainThread"]  # the spy sees every pass: the test above would see this one too


@pytest.mark.parametrize("processes", ["pool", "forked workers"])
def test_a_batch_for_worker_processes_stops_the_prefetch_first(files: Path, hash_passes: list[str],
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str],
                                                               processes: str) -> None:
    (files / "small.nupkg").write_bytes(SIGNED.read_bytes()[:900])  # below the lowered threshold
    seen: list[tuple[list[str], int]] = []
    real_start = headstart.start
    prefetched: list[bool] = []
    monkeypatch.setattr(headstart, "start", lambda *args: prefetched.append(real_start(*args)) or True)

    def running() -> tuple[list[str], int]:
        names = [t.name for t in threading.enumerate() if t.name in (PREFETCH_THREAD, headstart.THREAD_NAME)]
        return names, len(hashing._prefetches)

    def fake_pool(work: Any, items: list[Any], *, workers: int, on_failure: Any, **_: Any) -> Iterator[Any]:
        seen.append(running())
        for item in items:
            yield on_failure(item, "not run (test)")

    def fake_forked(tasks: list[Any], setup: Any, workers: int) -> Iterator[Any]:
        seen.append(running())
        for task in tasks:
            yield batch._worker_failed(task, "not run (test)")

    monkeypatch.setattr(batch.process_pool, "ordered_map", fake_pool)
    monkeypatch.setattr(batch, "_forked", fake_forked)
    monkeypatch.setattr(batch, "_can_fork", lambda: processes != "pool")
    _verify("--parallel", "2", "big.nupkg", "small.nupkg")
    capsys.readouterr()
    assert prefetched == [True]  # from the command line, before the paths were parsed
    assert seen == [([], 0)]  # stopped and forgotten by the time the pool started or the workers were forked


def test_the_verifier_checks_the_signatures_before_it_waits_for_the_hash(files: Path, hash_passes: list[str],
                                                                         monkeypatch: pytest.MonkeyPatch,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from nuseal.verify import engine

    events: list[str] = []
    real_trust, real_digests = engine._trust_and_validity, hashing.plan_digests

    def trust(*args: Any) -> Any:
        events.append("signatures")
        return real_trust(*args)

    def digests(*args: Any) -> tuple[bytes, ...]:
        events.append("package hash")
        return real_digests(*args)

    monkeypatch.setattr(engine, "_trust_and_validity", trust)
    monkeypatch.setattr(hashing, "plan_digests", digests)
    assert _verify("big.nupkg") == 0
    capsys.readouterr()
    # The hash still running on the other core is waited for last (the findings keep NuGet's order).
    assert events == ["signatures", "package hash"]
    assert hash_passes == [PREFETCH_THREAD]
