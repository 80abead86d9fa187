"""A throwaway PostgreSQL cluster on 127.0.0.1 for the server tests (Debian's ``postgresql`` package).

Minimal stand-in written by the server branch to prove the migrations and services on a real PostgreSQL; the
realparts branch brings the project's shared fixtures for PostgreSQL, S3 and Redis, which replace this file.
As root, ``initdb``/``pg_ctl`` run as the ``postgres`` user (PostgreSQL refuses to run as root). A missing
installation fails the test with the command that installs it; nothing is skipped.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

_USER = "nuseal"


def _bin_dir() -> Path:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if candidates:
        return candidates[-1].parent
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    pytest.fail("PostgreSQL is not installed (no initdb): run scripts/install --test (apt-get install postgresql)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresServer:
    """A running cluster; :meth:`url` gives a psycopg URL for one of its databases."""

    directory: Path
    port: int
    bin_dir: Path

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{_USER}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> None:
        """Run one statement outside a transaction (CREATE/DROP DATABASE, TRUNCATE)."""
        with psycopg.connect(host="127.0.0.1", port=self.port, user=_USER, dbname=database, autocommit=True) as conn:
            conn.execute(sql.encode())

    def stop(self) -> None:
        _run([str(self.bin_dir / "pg_ctl"), "-D", str(self.directory / "data"), "-m", "immediate", "stop"])
        shutil.rmtree(self.directory, ignore_errors=True)


def _run(command: list[str], *, as_postgres: bool = True) -> None:
    if as_postgres and os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if completed.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed ({completed.returncode}): {completed.stderr.strip()}")


def start_postgres() -> PostgresServer:
    bin_dir = _bin_dir()
    directory = Path(tempfile.mkdtemp(prefix="nuseal-pg-"))
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    data = directory / "data"
    _run([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", _USER, "--no-sync", "-E", "UTF8"])
    port = _free_port()
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {directory} -c fsync=off -c full_page_writes=off"
    _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(directory / "log"), "-o", options, "-w", "start"])
    return PostgresServer(directory=directory, port=port, bin_dir=bin_dir)
