"""headstart: a SHA-256 pass from byte 0 started before the zip layout is known, resumed by ``hashing.prefetch``."""

from __future__ import annotations

import hashlib
import mmap
import os
import sys
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.conftest import VECTORS
from tests.support.pki import TestPki
from tests.unit.sign.helpers import make_package, signer_for

from nuseal.package import hashing, headstart
from nuseal.package.zipformat import find_signature_entry, read_layout
from nuseal.sign.author import AuthorSignRequest, sign_package
from nuseal.sign.common import SignOptions
from nuseal.verify.policy import HashAlgorithmName

SIGNED = VECTORS / "fixtures" / "TestPackage.AuthorSigned.1.0.0.nupkg"
WINDOW = 2 * mmap.ALLOCATIONGRANULARITY  # small windows: many checkpoints in a small file


@pytest.fixture(autouse=True)
def small_windows(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(headstart, "WINDOW", WINDOW)
    monkeypatch.setattr(headstart, "_passes", {})
    monkeypatch.setattr(hashing, "_prefetches", {})
    yield
    hashing.stop_prefetches()


def _pass(path: Path) -> headstart.RawPass:
    assert headstart.start(str(path))
    job = headstart.take(headstart.identity_of(path.stat()))
    assert job is not None
    return job


@pytest.mark.parametrize("offset", [0, 1, WINDOW - 1, WINDOW, WINDOW + 1, 3 * WINDOW, 3 * WINDOW + 5])
def test_the_state_at_an_offset_resumes_to_the_hash_of_the_bytes_before_it(offset: int, tmp_path: Path) -> None:
    data = os.urandom(3 * WINDOW + 5)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    position, state = _pass(path).state_at(offset)
    assert position <= offset
    state.update(data[position:offset])
    assert state.digest() == hashlib.sha256(data[:offset]).digest()


def test_a_pass_is_taken_once(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 100)
    _pass(path)
    assert headstart.take(headstart.identity_of(path.stat())) is None


def test_nothing_starts_for_what_is_not_a_readable_regular_file(tmp_path: Path) -> None:
    assert not headstart.start(str(tmp_path / "missing.nupkg"))
    assert not headstart.start(str(tmp_path))
    assert headstart._passes == {}


@pytest.fixture
def offsets(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The offsets ``RawPass.state_at`` is asked for: where a prefetch carried on from a pass."""
    asked: list[int] = []
    real = headstart.RawPass.state_at

    def state_at(self: headstart.RawPass, offset: int) -> tuple[int, hashlib._Hash]:
        asked.append(offset)
        return real(self, offset)

    monkeypatch.setattr(headstart.RawPass, "state_at", state_at)
    return asked


def test_prefetch_carries_on_from_the_pass(tmp_path: Path, offsets: list[int]) -> None:
    package = tmp_path / "p.nupkg"
    package.write_bytes(SIGNED.read_bytes())  # signed with SHA-256
    assert headstart.start(str(package))
    assert hashing.prefetch(package)
    with open(package, "rb") as f:
        layout = read_layout(f)
        entry = find_signature_entry(f, layout)
        plan = hashing.unsigned_view_plan(f, layout, entry)
        view = _bytes(f, plan)
        assert hashing.package_hash(f, layout, entry, "sha256") == hashlib.sha256(view).digest()
    first = plan[0]
    assert isinstance(first, hashing.FileRange) and offsets == [first.end]


def test_a_pass_that_does_not_fit_is_stopped_and_not_used(pki: TestPki, tmp_path: Path, offsets: list[int]) -> None:
    package = make_package(tmp_path / "p.nupkg")
    options = SignOptions(hash_algorithm=HashAlgorithmName.SHA512)
    sign_package(package, package, AuthorSignRequest(signer_for(pki.leaf), options), timestamper=None,
                 now=datetime.now(UTC))
    assert headstart.start(str(package))
    (job,) = headstart._passes.values()
    assert hashing.prefetch(package)  # a SHA-512 signature: the SHA-256 pass is no use
    assert not job.thread.is_alive() and offsets == []
    with open(package, "rb") as f:
        layout = read_layout(f)
        entry = find_signature_entry(f, layout)
        view = _bytes(f, hashing.unsigned_view_plan(f, layout, entry))
        assert hashing.package_hash(f, layout, entry, "sha512") == hashlib.sha512(view).digest()


def test_stopping_prefetches_stops_the_passes_too(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(8 * WINDOW))
    assert headstart.start(str(path))
    (job,) = headstart._passes.values()
    hashing.stop_prefetches()
    assert headstart._passes == {} and not job.thread.is_alive()


def test_the_switch_interval_is_short_only_while_a_pass_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = sys.getswitchinterval()
    seen: list[float] = []
    real = headstart.RawPass._hash

    def spy(self: headstart.RawPass) -> None:
        seen.append(sys.getswitchinterval())
        real(self)

    monkeypatch.setattr(headstart.RawPass, "_hash", spy)
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 100)
    _pass(path).thread.join()
    assert seen == [pytest.approx(headstart.SWITCH_INTERVAL)]
    assert sys.getswitchinterval() == before


def _bytes(f: object, plan: list[hashing.Segment]) -> bytes:
    out = bytearray()
    hashing.feed_plan(f, plan, out.extend)  # type: ignore[arg-type]
    return bytes(out)


def test_a_pass_over_a_file_that_is_no_signed_package_is_stopped(tmp_path: Path) -> None:
    unsigned = tmp_path / "u.nupkg"
    with zipfile.ZipFile(unsigned, "w") as zf:
        zf.writestr("a.bin", os.urandom(8 * WINDOW))
    junk = tmp_path / "junk.nupkg"
    junk.write_bytes(os.urandom(8 * WINDOW))
    for path in (unsigned, junk):
        assert headstart.start(str(path))
        job = headstart._passes[headstart.identity_of(path.stat())]
        assert not hashing.prefetch(path)
        assert job.taken and not job.thread.is_alive()  # a thread left running would slow the exit (guard.exit_now)


def test_the_pass_has_ended_when_its_state_is_handed_over(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(8 * WINDOW))
    job = _pass(path)
    job.state_at(3 * WINDOW)
    assert not job.thread.is_alive()
