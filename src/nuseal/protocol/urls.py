"""URL rules of the V3 protocol: what counts as an absolute resource URL and the https requirement.

NuGet requires https for the RepositorySignatures resource and the certificates it lists
(``RepositorySignaturesResourceMustBeHttps``, ``RepositoryContentUrlMustBeHttps``); nuseal applies the same
rule to every URL it fetches from a feed. The scheme is compared case-insensitively, as NuGet does.
``allow_insecure_loopback=True`` lets plain http through for 127.0.0.1, localhost and [::1] only: it
exists for tests and local development servers.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from nuseal.errors import FetchError

_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def is_absolute_url(url: str) -> bool:
    """``True`` for ``scheme://host...``; the service index skips resources whose ``@id`` is not."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return False
    return bool(parts.scheme and parts.netloc)


def check_https(url: str, what: str, *, allow_insecure_loopback: bool = False) -> None:
    """``FetchError`` naming ``what`` and ``url`` unless ``url`` is absolute https.

    With ``allow_insecure_loopback``, plain http is accepted for loopback hosts only.
    """
    try:
        parts = urlsplit(url)
        scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    except ValueError:
        scheme, host = "", ""
    if scheme == "https" and host:
        return
    if allow_insecure_loopback and scheme == "http" and host in _LOOPBACK_HOSTS:
        return
    raise FetchError(f"{what} must be an absolute https URL: '{url}'.")
