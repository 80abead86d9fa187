"""Talking to a running feed over real HTTP the way NuGet clients do (nuget.exe 5.8's push: ``PUT`` to the
publish URL with a trailing slash, ``X-NuGet-ApiKey``, ``multipart/form-data`` with a quoted boundary, sent
chunked without ``Content-Length``)."""

from __future__ import annotations

import io
import secrets
import ssl
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from nuseal.package.nuspec import nuspec_in_archive, parse_manifest
from nuseal.server.services import apikeys
from nuseal.server.services.context import ServiceContext
from nuseal.server.services.permissions import Operator

TIMEOUT = 60.0


def multipart(data: bytes, boundary: str, *, filename: str = "package.nupkg") -> bytes:
    return (f"--{boundary}\r\nContent-Type: application/octet-stream\r\n"
            f'Content-Disposition: form-data; name="package"; filename="{filename}"\r\n\r\n').encode() + data + \
        f"\r\n--{boundary}--\r\n".encode()


def _chunks(body: bytes, size: int = 16 * 1024) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start:start + size]


#: How long a pushed version may stay ``validating`` in tests (the job usually takes well under a second).
VALIDATION_TIMEOUT = 90.0


def identity(package: Path | bytes) -> tuple[str, str]:
    """The (id, normalized version) a package's nuspec declares."""
    data = package if isinstance(package, bytes) else package.read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        manifest = parse_manifest(nuspec_in_archive(archive, "package").data, "nuspec")
    return manifest.id, manifest.version.normalized


def package_status(base_url: str, package_id: str, version: str, *,
                   verify: ssl.SSLContext | str | bool = True) -> dict[str, Any]:
    response = httpx.get(f"{base_url}/api/v1/packages/{package_id}/{version}", timeout=TIMEOUT, verify=verify)
    assert response.status_code == 200, f"status of {package_id} {version}: {response.status_code} {response.text}"
    body: dict[str, Any] = response.json()
    return body


def wait_validated(base_url: str, package_id: str, version: str, *, verify: ssl.SSLContext | str | bool = True,
                   timeout: float = VALIDATION_TIMEOUT) -> dict[str, Any]:
    """Poll the status API until the version leaves ``validating`` (the pipeline's job ran); its status document.
    Fails the test if it is still validating after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    url = f"{base_url}/api/v1/packages/{package_id}/{version}"
    # One connection for all polls (no TLS handshake each time), 5 polls a second: the server's CPU is the job's.
    with httpx.Client(verify=verify, timeout=TIMEOUT) as client:
        while True:
            response = client.get(url)
            assert response.status_code == 200, f"status of {package_id} {version}: {response.status_code}"
            body: dict[str, Any] = response.json()
            if body["status"] != "validating":
                return body
            if time.monotonic() > deadline:
                pytest.fail(f"{package_id} {version} still validating after {timeout:.0f} s: {body}")
            time.sleep(0.2)


def wait_available(base_url: str, package_id: str, version: str, *, verify: ssl.SSLContext | str | bool = True,
                   timeout: float = VALIDATION_TIMEOUT) -> dict[str, Any]:
    """:func:`wait_validated`, failing the test unless the version ended ``available``."""
    body = wait_validated(base_url, package_id, version, verify=verify, timeout=timeout)
    assert body["status"] == "available", f"{package_id} {version} ended {body['status']}: {body['findings']}"
    return body


def push(base_url: str, key: str | None, package: Path | bytes, *, chunked: bool = True,
         trailing_slash: bool = True, wait: bool = True, verify: ssl.SSLContext | str | bool = True) -> httpx.Response:
    """Push ``package`` as nuget.exe does; returns the response (any status). A 201 leaves the version
    ``validating``; with ``wait`` (the default) this returns only once the validation job has run (the version is
    ``available`` or ``failed``: see :func:`wait_validated`), so what follows sees the feed as it will stay."""
    data = package if isinstance(package, bytes) else package.read_bytes()
    boundary = secrets.token_hex(16)
    body = multipart(data, boundary)
    headers = {"Content-Type": f'multipart/form-data; boundary="{boundary}"', "User-Agent": "NuGet Command Line/5.8.0"}
    if key is not None:
        headers["X-NuGet-ApiKey"] = key
    url = f"{base_url}/api/v2/package" + ("/" if trailing_slash else "")
    content: bytes | Iterator[bytes] = _chunks(body) if chunked else body
    response = httpx.put(url, content=content, headers=headers, timeout=TIMEOUT, verify=verify)
    if wait and response.status_code == 201:
        wait_validated(base_url, *identity(data), verify=verify)
    return response


def api_key(ctx: ServiceContext, owner: str, holder: str | None = None, *,
            scopes: tuple[str, ...] = ("package:push", "package:unlist"), globs: tuple[str, ...] = ("*",),
            days: int = 30) -> str:
    """A new key (created by the operator) acting for ``owner``, held by ``holder``."""
    return apikeys.create(ctx, Operator(), owner, holder_name=holder, scopes=list(scopes), globs=list(globs),
                          expires_in_days=days).token
