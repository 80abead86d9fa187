"""A static NuGet V3 feed: a directory written by the test and served over HTTP on 127.0.0.1.

Layout: ``v3/index.json`` (service index), ``v3/flatcontainer/{id}/index.json`` and
``.../{id}/{ver}/{id}.{ver}.nupkg`` (PackageBaseAddress/3.0.0), optionally ``v3/registration/{id}/index.json``
(RegistrationsBaseUrl/3.6.0; pages inline, or linked ``page/{lower}/{upper}.json`` documents when
``registration_page_size`` is set) and ``v3/repository-signatures/{4.7.0,5.0.0}/index.json``. Every document
is built and written through the ``nuseal.protocol`` models, as a server would.
"""

from __future__ import annotations

import functools
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from nuseal.package.nuspec import read_identity
from nuseal.protocol.document import Document
from nuseal.protocol.package_content import PackageVersionsIndex, package_url
from nuseal.protocol.registration import (
    CatalogEntry,
    RegistrationIndex,
    RegistrationLeafItem,
    RegistrationPage,
    RegistrationPageDocument,
)
from nuseal.protocol.repository_signatures import RepositorySignatureCertificate, RepositorySignatures
from nuseal.protocol.service_index import ServiceIndex, ServiceIndexResource
from nuseal.versioning import NuGetVersion

SHA256_OID = "2.16.840.1.101.3.4.2.1"
#: nuget.org's three repository certificates (SHA-256, vectors/EXPECTED.md).
NUGET_ORG_REPOSITORY_FINGERPRINTS = (
    "0e5f38f57dc1bcc806d8494f4f90fbcedd988b46760709cbeec6f4219aa6157d",
    "5a2901d6ada3d18260b9c6dfe2133c95d74b9eef6ae0e5dc334c8454d1477df4",
    "1f4b311d9acc115c8dc8018b5a49e00fce6da8e2855f9f014ca6f34570bc482d",
)
_SIGNATURE_TYPES = ("RepositorySignatures/4.7.0", "RepositorySignatures/5.0.0")


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class StaticFeed:
    def __init__(self, root: Path, base: str, *, flat_container: bool = True, registrations: bool = False,
                 registration_page_size: int | None = None) -> None:
        self.root = root
        self.base = base
        self.index_url = f"{base}/v3/index.json"
        self.flat_container = flat_container
        self.registrations = registrations
        self.registration_page_size = registration_page_size
        self.signatures: RepositorySignatures | None = None
        self.packages: dict[str, dict[NuGetVersion, tuple[str, Path]]] = {}
        self.write_index()

    def write_index(self) -> None:
        resources: list[ServiceIndexResource] = []
        if self.flat_container:
            resources.append(ServiceIndexResource(url=f"{self.base}/v3/flatcontainer/",
                                                  type="PackageBaseAddress/3.0.0"))
        if self.registrations:
            resources.append(ServiceIndexResource(url=f"{self.base}/v3/registration/",
                                                  type="RegistrationsBaseUrl/3.6.0"))
        if self.signatures is not None:
            for resource_type in _SIGNATURE_TYPES:
                relative = f"v3/repository-signatures/{resource_type.rpartition('/')[2]}/index.json"
                resources.append(ServiceIndexResource(url=f"{self.base}/{relative}", type=resource_type))
                self._write(relative, self.signatures.served_as(resource_type))
        self._write("v3/index.json", ServiceIndex(version="3.0.0", resources=resources))

    def set_repository_signatures(self, fingerprints: tuple[str, ...] | list[str], *, all_signed: bool) -> None:
        certs = [RepositorySignatureCertificate(
            fingerprints={SHA256_OID: fp}, subject="CN=NuGet.org Repository by Microsoft", issuer="CN=DigiCert",
            not_before=datetime(2018, 4, 10, tzinfo=UTC), not_after=datetime(2027, 5, 18, 23, 59, 59, tzinfo=UTC),
            content_url=f"https://api.nuget.org/v3-index/repository-signatures/certificates/{fp}.crt")
            for fp in fingerprints]
        self.signatures = RepositorySignatures(all_repository_signed=all_signed, signing_certificates=certs)
        self.write_index()

    def add(self, package: Path) -> None:
        """Publish a package file under the identity its nuspec declares."""
        identity = read_identity(package)
        version = NuGetVersion.parse(identity.version)
        flat = f"{self.base}/v3/flatcontainer/"
        target = self.root / package_url("v3/flatcontainer/", identity.id, version)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(package, target)
        lower_id = identity.id.lower()
        self.packages.setdefault(lower_id, {})[version] = (identity.id, target)
        versions = sorted(self.packages[lower_id])
        self._write(f"v3/flatcontainer/{lower_id}/index.json", PackageVersionsIndex(versions=versions))
        registration = f"{self.base}/v3/registration/{lower_id}/"
        leaves = [RegistrationLeafItem(
            url=f"{registration}{v.lower}.json", package_content=package_url(flat, self.packages[lower_id][v][0], v),
            catalog_entry=CatalogEntry(url=f"{registration}{v.lower}.json#catalog", id=self.packages[lower_id][v][0],
                                       version=v, listed=True))
            for v in versions]
        self._write(f"v3/registration/{lower_id}/index.json",
                    RegistrationIndex.of(f"{registration}index.json", self._pages(registration, leaves)))

    def _pages(self, registration: str, leaves: list[RegistrationLeafItem]) -> list[RegistrationPage]:
        index_url = f"{registration}index.json"
        if self.registration_page_size is None:
            return [RegistrationPage.inline(f"{index_url}#page/all", index_url, leaves)]
        pages = []
        size = self.registration_page_size
        for chunk in (leaves[i:i + size] for i in range(0, len(leaves), size)):
            bounds = [leaf.catalog_entry.version for leaf in chunk]
            url = f"{registration}page/{min(bounds).lower}/{max(bounds).lower}.json"
            self._write(url.removeprefix(f"{self.base}/"), RegistrationPageDocument.of(url, index_url, chunk))
            pages.append(RegistrationPage.linked(url, chunk))
        return pages

    def _write(self, relative: str, document: Document) -> None:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(document.to_json())


@contextmanager
def serve_feed(root: Path, **options: Any) -> Iterator[StaticFeed]:
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

