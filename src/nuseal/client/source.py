"""A small NuGet V3 client: service index, package versions, package download (spec §8; NuGet V3 protocol).

Resources used: ``PackageBaseAddress/3.0.0`` (flat container) first, ``RegistrationsBaseUrl`` as a fallback,
and ``RepositorySignatures`` through ``nuseal.trust.repository_signatures``. Every request goes through the
injected ``httpx.Client`` with explicit timeouts; every failure is a ``FetchError`` naming the URL.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from nuseal.errors import FetchError
from nuseal.feed.versioning import NuGetVersion
from nuseal.trust.repository_signatures import (
    RepositorySignatureInfo,
    check_https,
    find_repository_signatures_url,
    parse_repository_signatures,
)

#: Called as ``progress(bytes_done, total_or_None)`` while a package downloads.
ProgressCallback = Callable[[int, int | None], None]

DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
#: A hostile or broken feed must not fill the disk: refuse packages larger than this by default.
DEFAULT_MAX_PACKAGE_BYTES = 2 * 1024**3
_CHUNK = 1024 * 1024
_FLAT_CONTAINER = "PackageBaseAddress/3.0.0"
_REGISTRATION_PREFIX = "RegistrationsBaseUrl"


@dataclass
class FeedSource:
    """One V3 source, its service index read lazily; answers are cached for the life of the object."""

    client: httpx.Client
    url: str
    allow_insecure_loopback: bool = False
    timeout: httpx.Timeout = field(default_factory=lambda: DEFAULT_TIMEOUT)
    max_package_bytes: int = DEFAULT_MAX_PACKAGE_BYTES
    _index: dict[str, Any] | None = field(default=None, init=False, repr=False)
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

    def _get_json(self, url: str, what: str, *, missing_ok: bool = False) -> dict[str, Any] | None:
        body = self._get(url, what, missing_ok=missing_ok)
        if body is None:
            return None
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise FetchError(f"The {what} at '{url}' is not valid JSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise FetchError(f"The {what} at '{url}' is not a JSON object.")
        return doc

    def service_index(self) -> dict[str, Any]:
        if self._index is None:
            doc = self._get_json(self.url, "service index")
            assert doc is not None
            if not isinstance(doc.get("resources"), list):
                raise FetchError(f"The service index at '{self.url}' has no 'resources' array.")
            self._index = doc
        return self._index

    def _resource(self, matches: Callable[[str], bool]) -> str | None:
        for res in self.service_index()["resources"]:
            if not isinstance(res, dict):
                continue
            types = res.get("@type")
            type_list = types if isinstance(types, list) else [types]
            if any(isinstance(t, str) and matches(t) for t in type_list):
                rid = res.get("@id")
                if not isinstance(rid, str) or not rid:
                    raise FetchError(f"A resource of type {types!r} in '{self.url}' has no '@id'.")
                return rid if rid.endswith("/") else rid + "/"
        return None

    def repository_signatures(self) -> RepositorySignatureInfo | None:
        """The feed's RepositorySignatures resource, or ``None`` when its service index lists none."""
        if not self._signatures_loaded:
            url = find_repository_signatures_url(self.service_index(), self.url)
            if url is not None:
                self._check(url, f"The RepositorySignatures resource of '{self.url}'")
                doc = self._get_json(url, "RepositorySignatures resource")
                assert doc is not None
                self._signatures = parse_repository_signatures(
                    doc, url, allow_insecure_loopback=self.allow_insecure_loopback)
            self._signatures_loaded = True
        return self._signatures

    def versions(self, package_id: str) -> list[NuGetVersion]:
        """Every version the feed lists for ``package_id`` (empty when it has none)."""
        flat = self._resource(lambda t: t == _FLAT_CONTAINER)
        if flat is not None:
            url = f"{flat}{package_id.lower()}/index.json"
            doc = self._get_json(url, "package versions", missing_ok=True)
            if doc is None:
                return []
            raw = doc.get("versions")
            if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
                raise FetchError(f"The package versions at '{url}' have no 'versions' array of strings.")
            return [_version(v, url) for v in raw]
        return self._registration_versions(package_id)

    def _registration_versions(self, package_id: str) -> list[NuGetVersion]:
        base = self._resource(lambda t: t.startswith(_REGISTRATION_PREFIX))
        if base is None:
            raise FetchError(f"The service index at '{self.url}' has neither PackageBaseAddress/3.0.0 nor "
                             "RegistrationsBaseUrl.")
        url = f"{base}{package_id.lower()}/index.json"
        doc = self._get_json(url, "registration index", missing_ok=True)
        if doc is None:
            return []
        found: list[NuGetVersion] = []
        for page in _list(doc, "items", url):
            items = page.get("items")
            if items is None:  # page not inlined: fetch it
                page_url = page.get("@id")
                if not isinstance(page_url, str):
                    raise FetchError(f"A registration page in '{url}' has neither 'items' nor '@id'.")
                page_doc = self._get_json(page_url, "registration page")
                assert page_doc is not None
                items, where = _list(page_doc, "items", page_url), page_url
            else:
                items, where = _list(page, "items", url), url
            for leaf in items:
                entry = leaf.get("catalogEntry")
                content = leaf.get("packageContent")
                if not isinstance(entry, dict) or not isinstance(entry.get("version"), str) \
                        or not isinstance(content, str):
                    raise FetchError(f"A registration leaf in '{where}' lacks catalogEntry.version or packageContent.")
                version = _version(entry["version"], where)
                if entry.get("listed", True) is False:
                    continue
                self._registration_urls[(package_id.lower(), version.text.lower())] = content
                found.append(version)
        return found

    def package_url(self, package_id: str, version: NuGetVersion) -> str:
        lower_id, lower_version = package_id.lower(), version.text.lower()
        flat = self._resource(lambda t: t == _FLAT_CONTAINER)
        if flat is not None:
            return f"{flat}{lower_id}/{lower_version}/{lower_id}.{lower_version}.nupkg"
        if (lower_id, lower_version) not in self._registration_urls:
            self._registration_versions(package_id)
        try:
            return self._registration_urls[(lower_id, lower_version)]
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


def _version(text: str, url: str) -> NuGetVersion:
    try:
        return NuGetVersion.parse(text)
    except ValueError as exc:
        raise FetchError(f"'{url}' lists an invalid version: {exc}") from None


def _list(doc: dict[str, Any], key: str, url: str) -> list[dict[str, Any]]:
    value = doc.get(key)
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise FetchError(f"'{url}' has no '{key}' array of objects.")
    return value
