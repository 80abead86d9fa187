"""Settings of repository signing and jobs, and the crash-test fault hook (off unless armed)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from nuseal.server import faults
from nuseal.server.settings import SettingsError, load_settings


def test_repository_signing_settings_come_from_the_environment(tmp_path: Path) -> None:
    settings = load_settings({"data_dir": tmp_path}, environ={
        "NUSEAL_REPOSITORY_KEY_SECRET": "s" * 16, "NUSEAL_REPOSITORY_PKCS11_PIN": "1234",
        "NUSEAL_SERVE_WORKER": "off", "NUSEAL_JOB_LEASE_SECONDS": "30", "NUSEAL_RESIGN_BATCH_SIZE": "7",
    })  # fmt: skip
    assert (settings.repository_key_secret, settings.repository_pkcs11_pin) == ("s" * 16, "1234")
    assert (settings.serve_worker, settings.job_lease_seconds, settings.resign_batch_size) == (False, 30, 7)
    assert "s" * 16 not in repr(settings) and "1234" not in repr(settings)
    defaults = load_settings({"data_dir": tmp_path})
    assert (defaults.serve_worker, defaults.job_lease_seconds, defaults.resign_batch_size) == (True, 300, 50)


def test_a_short_key_secret_is_refused_without_repeating_it(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"data_dir": tmp_path}, environ={"NUSEAL_REPOSITORY_KEY_SECRET": "short-secret"})
    assert str(caught.value) == ("invalid repository_key_secret (environment variable NUSEAL_REPOSITORY_KEY_SECRET): "
                                 "expected at least 16 characters")  # fmt: skip
    with pytest.raises(SettingsError, match="expected a whole number from 1 to 86400"):
        load_settings({"data_dir": tmp_path}, environ={"NUSEAL_JOB_LEASE_SECONDS": "0"})


def test_the_fault_hook_is_off_unless_armed(monkeypatch: pytest.MonkeyPatch) -> None:
    kills: list[tuple[int, int]] = []
    monkeypatch.setattr(faults.os, "kill", lambda pid, sig: kills.append((pid, sig)))
    assert faults.arm_from_environ({}) is None
    for point in faults.CRASH_POINTS:
        faults.checkpoint(point)
    assert kills == []
    assert faults.arm_from_environ({faults.ENV: "resign.committed:3"}) == "resign.committed"
    faults.checkpoint("resign.signed")  # another point: not counted
    faults.checkpoint("resign.committed")
    faults.checkpoint("resign.committed")
    assert kills == []
    faults.checkpoint("resign.committed")
    assert kills == [(faults.os.getpid(), signal.SIGKILL)]
    faults.arm(None)


@pytest.mark.parametrize("value", ["resign.nowhere", "resign.signed:x", "resign.signed:0"])
def test_the_fault_hook_refuses_what_would_test_nothing(value: str) -> None:
    with pytest.raises(faults.FaultError, match=faults.ENV):
        faults.arm_from_environ({faults.ENV: value})
    faults.arm(None)
