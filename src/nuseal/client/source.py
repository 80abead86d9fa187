"""A small NuGet V3 client: service index, package versions, package download (spec §8; NuGet V3 protocol).

Resources used: the flat container (``PackageBaseAddress``) first, ``RegistrationsBaseUrl`` as a fallback,
and ``RepositorySignatures``, each found through ``nuseal.protocol``'s resource type table in NuGet's order
of preference. Every document is parsed into its ``nuseal.protocol`` model. Every request goes through the
injected ``httpx.Client`` with explicit timeouts; every failure is a ``FetchError`` naming the URL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx

from nuseal.errors import FetchError
from nuseal.protocol import package_content
from nuseal.protocol.document import Document
from nuseal.protocol.package_content import PackageVersionsIndex
from nuseal.protocol.registration import RegistrationIndex, RegistrationLeafItem, RegistrationPageDocument
from nuseal.protocol.repository_signatures import read_repository_signatures
from nuseal.protocol.service_index import ResourceKind, ServiceIndex
from nuseal.protocol.urls import check_https
from nuseal.trust.repository_signatures import RepositorySignatureInfo
from nuseal.versioning import NuGetVersion

#: Called as ``progress(bytes_done, total_or_None)`` while a package downloads.
ProgressCallback = Callable[[int, int | None], None]

DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
#: A hostile or broken feed must not fill the disk: refuse packages larger than this by default.
DEFAULT_MAX_PACKAGE_BYTES = 2 * 1024**3
_CHUNK = 1024 * 1024
_D = TypeVar("_D", bound=Document)


@dataclass
class FeedSource:
    """One V3 source, its service index read lazily; answers are cached for the life of the object."""

    client: httpx.Client
    url: str
    allow_insecure_loopback: bool = False
    timeout: httpx.Timeout = field(default_factory=lambda: DEFAULT_TIMEOUT)
    max_package_bytes: int = DEFAULT_MAX_PACKAGE_BYTES
    _index: ServiceIndex | None = field(default=None, init=False, repr=False)
    _signatures: RepositorySignatureInfo | None = field(default=None, init=False, repr=False)
    _signatures_loaded: bool = field(default=False, init=False, repr=False)
    _registration_urls: dict[tuple[str, str], str] = field(default_factory=dict, init=False, repr=False)

    def _check(self, url: str, what: str) -> None:
        check_https(url, what, allow_insecure_loopback=self.allow_insecure_loopback)

    def _get(self, url: str, what: str, *, missing_ok: bool = False) -> bytes | None:
        self._check(url, f"The {what} URL")
        try:
            response = self.client.get(url, timeout=self.timeout, follow_redirects=False)
        except httpx.TimeoutException as exc:
            raise FetchError(f"Timed out fetching the {what} from '{url}'.") from exc
        except httpx.HTTPError as exc:
            raise FetchError(f"Could not fetch the {what} from '{url}': {exc}") from exc
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code != 200:
            raise FetchError(f"Fetching the {what} from '{url}' returned HTTP {response.status_code}.")
        return response.content

    def _document(self, model: type[_D], url: str, *, missing_ok: bool = False) -> _D | None:
        body = self._get(url, model.KIND, missing_ok=missing_ok)
        return None if body is None else model.parse(body, source=url)

    def service_index(self) -> ServiceIndex:
        if self._index is None:
            index = self._document(ServiceIndex, self.url)
            assert index is not None
            self._index = index
        return self._index

    def _base_url(self, kind: ResourceKind) -> str | None:
        url = self.service_index().url(kind)
        if url is None:
            return None
        return url if url.endswith("/") else url + "/"

    def repository_signatures(self) -> RepositorySignatureInfo | None:
        """The feed's RepositorySignatures resource, or ``None`` when its service index lists none."""
        if not self._signatures_loaded:
            match = self.service_index().find(ResourceKind.REPOSITORY_SIGNATURES)
            if match is not None:
                self._check(match.url, f"The RepositorySignatures resource of '{self.url}'")
                body = self._get(match.url, "RepositorySignatures resource")
                assert body is not None
                document = read_repository_signatures(body, source=match.url, resource_type=match.type,
                                                      allow_insecure_loopback=self.allow_insecure_loopback)
                self._signatures = RepositorySignatureInfo(match.url, document)
            self._signatures_loaded = True
        return self._signatures

    def versions(self, package_id: str) -> list[NuGetVersion]:
        """Every version the feed lists for ``package_id`` (empty when it has none)."""
        flat = self._base_url(ResourceKind.PACKAGE_BASE_ADDRESS)
        if flat is not None:
            index = self._document(PackageVersionsIndex, package_content.versions_url(flat, package_id),
                                   missing_ok=True)
            return [] if index is None else list(index.versions)
        return self._registration_versions(package_id)

    def _registration_versions(self, package_id: str) -> list[NuGetVersion]:
        base = self._base_url(ResourceKind.REGISTRATIONS_BASE_URL)
        if base is None:
            raise FetchError(f"The service index at '{self.url}' has neither a PackageBaseAddress nor a "
                             "RegistrationsBaseUrl resource.")
        index = self._document(RegistrationIndex, f"{base}{package_id.lower()}/index.json", missing_ok=True)
        if index is None:
            return []
        found: list[NuGetVersion] = []
        for page in index.items:
            leaves: list[RegistrationLeafItem]
            if page.items is not None:
                leaves = page.items
            else:  # page not inlined: fetch it
                assert page.url is not None  # the model requires @id when items are absent
                page_document = self._document(RegistrationPageDocument, page.url)
                assert page_document is not None
                leaves = page_document.items
            for leaf in leaves:
                entry = leaf.catalog_entry
                if not entry.is_listed:
                    continue
                self._registration_urls[(package_id.lower(), entry.version.lower)] = leaf.package_content
                found.append(entry.version)
        return found

    def package_url(self, package_id: str, version: NuGetVersion) -> str:
        flat = self._base_url(ResourceKind.PACKAGE_BASE_ADDRESS)
        if flat is not None:
            return package_content.package_url(flat, package_id, version)
        key = (package_id.lower(), version.lower)
        if key not in self._registration_urls:
            self._registration_versions(package_id)
        try:
            return self._registration_urls[key]
        except KeyError:
            raise FetchError(f"'{self.url}' does not list package '{package_id} {version}'.") from None

    def download(self, package_id: str, version: NuGetVersion, dest: Path,
                 progress: ProgressCallback | None = None) -> None:
        """Stream the ``.nupkg`` into ``dest`` (a fresh file the caller owns and deletes on failure)."""
        url = self.package_url(package_id, version)
        self._check(url, "The package URL")
        try:
            with self.client.stream("GET", url, timeout=self.timeout, follow_redirects=False) as response:
                if response.status_code != 200:
                    raise FetchError(f"Downloading '{url}' returned HTTP {response.status_code}.")
                total = _content_length(response)
                if total is not None and total > self.max_package_bytes:
                    raise FetchError(f"The package at '{url}' is {total} bytes, over the limit of "
                                     f"{self.max_package_bytes}.")
                done = 0
                with dest.open("wb") as out:
                    for chunk in response.iter_bytes(_CHUNK):
                        done += len(chunk)
                        if done > self.max_package_bytes:
                            raise FetchError(f"The package at '{url}' exceeds the limit of "
                                             f"{self.max_package_bytes} bytes.")
                        out.write(chunk)
                        if progress is not None:
                            progress(done, total)
        except httpx.TimeoutException as exc:
            raise FetchError(f"Timed out downloading '{url}'.") from exc
        except httpx.HTTPError as exc:
            raise FetchError(f"Could not download '{url}': {exc}") from exc


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("Content-Length")
    return int(value) if value is not None and value.isdigit() else None
