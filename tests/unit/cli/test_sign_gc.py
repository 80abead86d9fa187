"""``nuseal sign`` start-up runs without cyclic garbage collection, signing with it (start-up's objects frozen), and
an in-process signing leaves the collector as it found it, whatever happens (the mechanism, ``nuseal.cli.collector``,
shared with ``verify``, is tested in test_verify_gc.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.cli import run
from tests.support.pki import TEST_PASSWORD, TestPki
from tests.unit.sign.helpers import make_package

from nuseal.cli import sign_run


@pytest.fixture(autouse=True)
def _collector_restored() -> Iterator[None]:
    assert gc.isenabled() and gc.get_freeze_count() == 0
    yield
    assert gc.isenabled() and gc.get_freeze_count() == 0


@pytest.mark.parametrize("password", [TEST_PASSWORD, "wrong"])
def test_signing_in_process_leaves_the_collector_as_it_was(
    pki: TestPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, password: str
) -> None:
    pki.leaf.write_pfx(tmp_path / "leaf.pfx")
    make_package(tmp_path / "A.1.0.0.nupkg")
    monkeypatch.chdir(tmp_path)
    seen: list[tuple[bool, int]] = []
    real = sign_run._sign_all

    def watched(*args: object) -> int:
        result = real(*args)  # type: ignore[arg-type]
        seen.append((gc.isenabled(), gc.get_freeze_count()))
        return result

    monkeypatch.setattr(sign_run, "_sign_all", watched)
    code, _, _ = run("sign", "--certificate-path", "leaf.pfx", "--certificate-password", password, "A.1.0.0.nupkg")
    assert code == (0 if password == TEST_PASSWORD else 1)
    assert seen == ([(True, seen[0][1])] if password == TEST_PASSWORD else [])  # signed with the collector on
    assert not seen or seen[0][1] > 0  # and start-up's objects frozen
    assert gc.isenabled() and gc.get_freeze_count() == 0
