"""A static NuGet V3 feed: a directory written by the test and served over HTTP on 127.0.0.1.

Layout: ``v3/index.json`` (service index), ``v3/flatcontainer/{id}/index.json`` and
``.../{id}/{ver}/{id}.{ver}.nupkg`` (PackageBaseAddress/3.0.0), optionally ``v3/registration/{id}/index.json``
(RegistrationsBaseUrl, inline pages) and ``v3/repository-signatures/index.json`` (RepositorySignatures/5.0.0).
"""

from __future__ import annotations

import functools
import json
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from nuseal.feed.versioning import NuGetVersion
from nuseal.package.nuspec import read_identity

SHA256_OID = "2.16.840.1.101.3.4.2.1"
#: nuget.org's three repository certificates (SHA-256, vectors/EXPECTED.md).
NUGET_ORG_REPOSITORY_FINGERPRINTS = (
    "0e5f38f57dc1bcc806d8494f4f90fbcedd988b46760709cbeec6f4219aa6157d",
    "5a2901d6ada3d18260b9c6dfe2133c95d74b9eef6ae0e5dc334c8454d1477df4",
    "1f4b311d9acc115c8dc8018b5a49e00fce6da8e2855f9f014ca6f34570bc482d",
)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class StaticFeed:
    def __init__(self, root: Path, base: str, *, flat_container: bool = True, registrations: bool = False) -> None:
        self.root = root
        self.base = base
        self.index_url = f"{base}/v3/index.json"
        self.flat_container = flat_container
        self.registrations = registrations
        self.signatures: dict[str, Any] | None = None
        self.packages: dict[str, dict[str, Path]] = {}
        self.write_index()

    def write_index(self) -> None:
        resources: list[dict[str, str]] = []
        if self.flat_container:
            resources.append({"@id": f"{self.base}/v3/flatcontainer/", "@type": "PackageBaseAddress/3.0.0"})
        if self.registrations:
            resources.append({"@id": f"{self.base}/v3/registration/", "@type": "RegistrationsBaseUrl/3.6.0"})
        if self.signatures is not None:
            resources.append({"@id": f"{self.base}/v3/repository-signatures/index.json",
                              "@type": "RepositorySignatures/5.0.0"})
            self._write("v3/repository-signatures/index.json", self.signatures)
        self._write("v3/index.json", {"version": "3.0.0", "resources": resources})

    def set_repository_signatures(self, fingerprints: tuple[str, ...] | list[str], *, all_signed: bool) -> None:
        certs = [{"fingerprints": {SHA256_OID: fp}, "subject": "CN=NuGet.org Repository by Microsoft",
                  "issuer": "CN=DigiCert", "notBefore": "2018-04-10T00:00:00.0000000Z",
                  "notAfter": "2027-05-18T23:59:59.0000000Z",
                  "contentUrl": f"https://api.nuget.org/v3-index/repository-signatures/certificates/{fp}.crt"}
                 for fp in fingerprints]
        self.signatures = {"allRepositorySigned": all_signed, "signingCertificates": certs}
        self.write_index()

    def add(self, package: Path) -> None:
        """Publish a package file under the identity its nuspec declares."""
        identity = read_identity(package)
        lower_id, lower_version = identity.id.lower(), identity.version.lower()
        target = self.root / "v3/flatcontainer" / lower_id / lower_version / f"{lower_id}.{lower_version}.nupkg"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(package, target)
        self.packages.setdefault(lower_id, {})[identity.version] = target
        versions = sorted(self.packages[lower_id], key=NuGetVersion.parse)
        self._write(f"v3/flatcontainer/{lower_id}/index.json", {"versions": [v.lower() for v in versions]})
        flat = f"{self.base}/v3/flatcontainer/{lower_id}"
        leaves = [{"catalogEntry": {"id": identity.id, "version": v},
                   "packageContent": f"{flat}/{v.lower()}/{lower_id}.{v.lower()}.nupkg"}
                  for v in versions]
        self._write(f"v3/registration/{lower_id}/index.json",
                    {"count": 1, "items": [{"count": len(leaves), "items": leaves}]})

    def _write(self, relative: str, document: dict[str, Any]) -> None:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document), encoding="utf-8")


@contextmanager
def serve_feed(root: Path, **options: bool) -> Iterator[StaticFeed]:
    """Serve ``root`` on 127.0.0.1 (OS-chosen port) as a StaticFeed until the block ends."""
    root.mkdir(parents=True, exist_ok=True)
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield StaticFeed(root, f"http://127.0.0.1:{server.server_address[1]}", **options)
    finally:
        server.shutdown()
        server.server_close()

