"""A feed's RepositorySignatures resource as trust: fetching it and what it does to verification (spec §8).

``fetch_repository_signatures`` reads the service index and the preferred RepositorySignatures resource over
an injected ``httpx.Client``; the documents and NuGet's rules for reading them (type preference,
``allRepositorySigned`` only under 5.0.0, https) are ``nuseal.protocol``'s. ``nuseal.trust.policy_builder``
turns the result into verification policy the way NuGet's restore does.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from nuseal.errors import FetchError
from nuseal.protocol.repository_signatures import (
    RepositorySignatureCertificate,
    RepositorySignatures,
    read_repository_signatures,
)
from nuseal.protocol.service_index import ResourceKind, ServiceIndex

# Re-exported: the CLI checks the URLs users type with the same rule.
from nuseal.protocol.urls import check_https as check_https

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


@dataclass(frozen=True)
class RepositorySignatureInfo:
    """A feed's RepositorySignatures document and the URL it was read from."""

    url: str
    document: RepositorySignatures

    @property
    def all_repository_signed(self) -> bool:
        return self.document.all_repository_signed

    @property
    def certificates(self) -> list[RepositorySignatureCertificate]:
        return self.document.signing_certificates


def _get(client: httpx.Client, url: str, what: str) -> bytes:
    try:
        response = client.get(url, timeout=DEFAULT_TIMEOUT, follow_redirects=False)
    except httpx.TimeoutException as exc:
        raise FetchError(f"Timed out fetching the {what} from '{url}'.") from exc
    except httpx.HTTPError as exc:
        raise FetchError(f"Could not fetch the {what} from '{url}': {exc}") from exc
    if response.status_code != 200:
        raise FetchError(f"Fetching the {what} from '{url}' returned HTTP {response.status_code}.")
    return response.content


def fetch_repository_signatures(
    client: httpx.Client, service_index_url: str, *, allow_insecure_loopback: bool = False,
) -> RepositorySignatureInfo | None:
    """Fetch the service index, then its RepositorySignatures resource. ``None`` if the feed has none.

    ``FetchError`` on network failures, non-200 answers and non-https URLs (NuGet:
    RepositorySignaturesResourceMustBeHttps); ``ProtocolError`` (a ``FetchError``) for invalid documents.
    """
    check_https(service_index_url, "The service index URL", allow_insecure_loopback=allow_insecure_loopback)
    index = ServiceIndex.parse(_get(client, service_index_url, "service index"), source=service_index_url)
    match = index.find(ResourceKind.REPOSITORY_SIGNATURES)
    if match is None:
        return None
    check_https(match.url, f"The RepositorySignatures resource of '{service_index_url}'",
                allow_insecure_loopback=allow_insecure_loopback)
    body = _get(client, match.url, "RepositorySignatures resource")
    document = read_repository_signatures(body, source=match.url, resource_type=match.type,
                                          allow_insecure_loopback=allow_insecure_loopback)
    return RepositorySignatureInfo(match.url, document)
