"""Child processes for the real parts (PostgreSQL, S3, Redis, nginx, ...): start, wait until ready, stop.

Shared by the per-part modules beside it; usable from pytest fixtures and from ``bench/`` scripts alike, so
failures raise :class:`RealPartError` (one clear line plus the tail of the part's log) and the fixtures turn that
into ``pytest.fail``. Every child runs in its own session (so ``stop`` reaches its workers too) and gets
``PR_SET_PDEATHSIG``: when the process that started it dies, even by SIGKILL, the kernel sends it SIGTERM, so no
server outlives a killed test run.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import NoReturn

_PR_SET_PDEATHSIG = 1
# Resolved now, in the parent: the child may only call it (no dlopen between fork and exec).
_prctl = ctypes.CDLL(None, use_errno=True).prctl
_prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
#: How ``scripts/install --test`` is named in every "not installed" message.
INSTALL_HINT = "run scripts/install --test"


class RealPartError(RuntimeError):
    """A real part could not be found, started or used; the message says which and why."""


def fail(error: RealPartError) -> NoReturn:
    """Fail the current test (or fixture) with the part's message and no Python traceback."""
    import pytest  # here, so that bench/ scripts can use these helpers without pytest

    pytest.fail(str(error), pytrace=False)


def free_port() -> int:
    """A loopback TCP port that is free right now (the kernel's pick; callers retry on a lost race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_binary(name: str, *candidates: str, package: str) -> str:
    """The path of ``name`` (on PATH or at one of ``candidates``); else a RealPartError naming the package."""
    found = shutil.which(name)
    if found:
        return found
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return candidate
    raise RealPartError(f"{name} not found (Debian package {package}): {INSTALL_HINT}")


def run_as_postgres() -> pwd.struct_passwd | None:
    """The ``postgres`` account when running as root (PostgreSQL refuses root), else None (run as ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError as exc:
        raise RealPartError(f"running as root but there is no 'postgres' user (package postgresql-15): "
                            f"{INSTALL_HINT}") from exc


def die_with_parent() -> None:  # runs in the child between fork and exec, after Popen's setuid
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class ManagedProcess:
    """One started server: its Popen, its log file, and a stop that always ends the whole process group."""

    def __init__(self, name: str, argv: Sequence[str], log: Path, *, env: dict[str, str] | None = None,
                 cwd: Path | None = None, user: pwd.struct_passwd | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            try:
                self.popen = subprocess.Popen(
                    self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                    start_new_session=True, preexec_fn=die_with_parent,
                    user=user.pw_uid if user else None, group=user.pw_gid if user else None,
                    extra_groups=[] if user else None,
                )
            except OSError as exc:
                raise RealPartError(f"{name}: cannot start {self.argv[0]}: {exc}") from exc

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        """True until the process exits. Does not reap it: an unreaped leader keeps its group id ours."""
        if self.popen.returncode is not None:
            return False
        try:
            return os.waitid(os.P_PID, self.popen.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None
        except ChildProcessError:
            return False

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"

    def error(self, what: str) -> RealPartError:
        return RealPartError(f"{self.name}: {what} (log {self.log}):\n{self.log_tail()}")

    def wait_ready(self, probe: Callable[[], bool], timeout: float, what: str = "not ready") -> None:
        """Poll ``probe`` until it returns True; fail early when the process exits, late on ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.running():
                self.stop()
                raise self.error(f"exited with code {self.popen.returncode} while starting")
            try:
                if probe():
                    return
            except Exception:  # a probe fails in many ways while the server boots; only the deadline counts
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise self.error(f"{what} after {timeout:.0f} s")
            time.sleep(0.05)

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 15.0) -> None:
        """Send ``sig`` to the process group, then SIGKILL what is left of it after ``timeout``. Idempotent."""
        if self.popen.returncode is not None:
            return
        self._signal_group(sig)
        if not self._exited_within(timeout):
            self._signal_group(signal.SIGKILL)
            self._exited_within(5)
        # Workers (nginx, postgres backends) may outlive the leader for a moment. The group id cannot have been
        # reused: the leader is not reaped until the wait below.
        self._signal_group(signal.SIGKILL)
        self.popen.wait()

    def _exited_within(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.running():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class failing_clearly:  # lowercase: used like contextlib's context managers
    """Inside a fixture: turn a RealPartError into a clear test failure (never a skip).

    A class, not ``@contextmanager``: its ``__exit__`` returns None, so type checkers know it swallows nothing
    and ``with failing_clearly(): return make()`` needs no dead code after it.
    """

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if isinstance(error, RealPartError):
            try:
                fail(error)
            except BaseException as failed:  # pytest's Failed: report the message once, not the chain
                failed.__suppress_context__ = True
                raise


def terminate(process: subprocess.Popen[str], timeout: float = 30.0) -> bool:
    """Stop ``process`` as an operator would (SIGTERM, so it shuts down gracefully), killing it after ``timeout``
    seconds; returns whether it stopped by itself in time (a process already gone counts as stopped)."""
    if process.poll() is not None:
        return True
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return False
    return True
