"""The RepositorySignatures resource of a NuGet V3 feed (spec §8).

``parse_repository_signatures`` validates the JSON document, ``find_repository_signatures_url`` picks the
resource from a service index (``/5.0.0``, then ``/4.9.0``, then ``/4.7.0``), ``fetch_repository_signatures``
does both over an injected ``httpx.Client``; ``nuseal.trust.policy_builder`` turns the result into verification
policy the way NuGet's restore does.

URLs must be https (compared case-insensitively, as NuGet does). ``allow_insecure_loopback=True`` lets
plain http through for 127.0.0.1, localhost and [::1] only: it exists for tests against local servers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from nuseal.enums import HashAlgorithmName
from nuseal.errors import FetchError

#: Service index ``@type`` values, in NuGet's order of preference.
RESOURCE_TYPES = ("RepositorySignatures/5.0.0", "RepositorySignatures/4.9.0", "RepositorySignatures/4.7.0")
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True)
class RepositoryCertificateInfo:
    """One ``signingCertificates`` entry. ``fingerprints`` maps hash OID → hex, as published."""

    fingerprints: dict[str, str]
    subject: str
    issuer: str
    not_before: str
    not_after: str
    content_url: str

    def fingerprint(self, algorithm: HashAlgorithmName) -> str | None:
        return self.fingerprints.get(algorithm.oid) or None


@dataclass(frozen=True)
class RepositorySignatureInfo:
    """A parsed RepositorySignatures document plus where it came from."""

    url: str
    all_repository_signed: bool
    certificates: tuple[RepositoryCertificateInfo, ...]


def check_https(url: str, what: str, *, allow_insecure_loopback: bool = False) -> None:
    """``FetchError`` unless ``url`` is absolute https (scheme compared case-insensitively).

    With ``allow_insecure_loopback``, plain http is accepted for loopback hosts only.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "https" and parts.hostname:
        return
    if allow_insecure_loopback and scheme == "http" and (parts.hostname or "").lower() in _LOOPBACK_HOSTS:
        return
    raise FetchError(f"{what} must be an absolute https URL: '{url}'.")


def parse_repository_signatures(
    data: bytes | str | dict[str, Any], url: str, *, allow_insecure_loopback: bool = False,
) -> RepositorySignatureInfo:
    """Validate a RepositorySignatures JSON document fetched from ``url``.

    ``FetchError`` naming the field and URL for: invalid JSON, a missing or mistyped ``allRepositorySigned``
    / ``signingCertificates`` / certificate field, or a ``contentUrl`` that is not https
    (NuGet: RepositoryContentUrlMustBeHttps).
    """
    if isinstance(data, dict):
        doc: Any = data
    else:
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise FetchError(
                f"The RepositorySignatures resource at '{url}' is not valid JSON: {exc}"
            ) from exc
    if not isinstance(doc, dict):
        raise FetchError(f"The RepositorySignatures resource at '{url}' is not a JSON object.")
    all_signed = doc.get("allRepositorySigned")
    if not isinstance(all_signed, bool):
        raise FetchError(_missing("allRepositorySigned", url, "a boolean"))
    certs_json = doc.get("signingCertificates")
    if not isinstance(certs_json, list):
        raise FetchError(_missing("signingCertificates", url, "an array"))
    certs: list[RepositoryCertificateInfo] = []
    for index, item in enumerate(certs_json):
        where = f"signingCertificates[{index}]"
        if not isinstance(item, dict):
            raise FetchError(f"'{where}' in the RepositorySignatures resource at '{url}' is not an object.")
        fps = item.get("fingerprints")
        if not isinstance(fps, dict) or not all(isinstance(v, str) for v in fps.values()):
            raise FetchError(_missing(f"{where}.fingerprints", url, "an object of strings"))
        fields: dict[str, str] = {}
        for name in ("subject", "issuer", "notBefore", "notAfter", "contentUrl"):
            value = item.get(name)
            if not isinstance(value, str):
                raise FetchError(_missing(f"{where}.{name}", url, "a string"))
            fields[name] = value
        check_https(fields["contentUrl"], f"The contentUrl of {where} at '{url}'",
                    allow_insecure_loopback=allow_insecure_loopback)
        certs.append(RepositoryCertificateInfo(
            dict(fps), fields["subject"], fields["issuer"], fields["notBefore"], fields["notAfter"],
            fields["contentUrl"],
        ))
    return RepositorySignatureInfo(url, all_signed, tuple(certs))


def _missing(field: str, url: str, kind: str) -> str:
    return f"The RepositorySignatures resource at '{url}' is missing '{field}' or it is not {kind}."


def find_repository_signatures_url(service_index: bytes | str | dict[str, Any], index_url: str) -> str | None:
    """The ``@id`` of the preferred RepositorySignatures resource in a service index, or ``None``."""
    if isinstance(service_index, dict):
        doc: Any = service_index
    else:
        try:
            doc = json.loads(service_index)
        except (ValueError, UnicodeDecodeError) as exc:
            raise FetchError(f"The service index at '{index_url}' is not valid JSON: {exc}") from exc
    resources = doc.get("resources") if isinstance(doc, dict) else None
    if not isinstance(resources, list):
        raise FetchError(f"The service index at '{index_url}' has no 'resources' array.")
    for wanted in RESOURCE_TYPES:
        for res in resources:
            if not isinstance(res, dict):
                continue
            types = res.get("@type")
            type_list = types if isinstance(types, list) else [types]
            if wanted in type_list:
                rid = res.get("@id")
                if not isinstance(rid, str) or not rid:
                    raise FetchError(f"The {wanted} resource in '{index_url}' has no '@id'.")
                return rid
    return None


def _get_json(client: httpx.Client, url: str, what: str) -> bytes:
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

    ``FetchError`` on network failures, non-200 answers, invalid documents, and non-https URLs
    (NuGet: RepositorySignaturesResourceMustBeHttps).
    """
    check_https(service_index_url, "The service index URL", allow_insecure_loopback=allow_insecure_loopback)
    index = _get_json(client, service_index_url, "service index")
    resource_url = find_repository_signatures_url(index, service_index_url)
    if resource_url is None:
        return None
    check_https(resource_url, f"The RepositorySignatures resource of '{service_index_url}'",
                allow_insecure_loopback=allow_insecure_loopback)
    body = _get_json(client, resource_url, "RepositorySignatures resource")
    return parse_repository_signatures(body, resource_url, allow_insecure_loopback=allow_insecure_loopback)
