"""The RepositorySignatures document (server.md §C) and the rules of how NuGet reads it (§C.4), in one place.

Shape (§C.3): ``allRepositorySigned`` and ``signingCertificates``, each certificate with ``fingerprints``
(hash OID → hex; nuget.org writes lower case, and the case is kept as published), ``subject``, ``issuer``,
``notBefore``/``notAfter`` (written ``2024-02-23T00:00:00.0000000Z``) and ``contentUrl``.

Rules (``read_repository_signatures``, and ``served_as`` for a server):
- **Type preference** 5.0.0, then 4.9.0, then 4.7.0: ``ResourceKind.REPOSITORY_SIGNATURES`` in the service
  index table, used by ``ServiceIndex.find``.
- **``allRepositorySigned: true`` only under ``RepositorySignatures/5.0.0``** (§C.2: 4.7.0 and 4.9.0 must say
  false). A 4.x document that says true is refused: the clients that read those types cannot honour it, and
  silently reading it as false would drop the feed's promise. ``served_as`` writes false for 4.x.
- **https**: every ``contentUrl`` must be https (NuGet ``RepositoryContentUrlMustBeHttps``); the resource's
  own URL is checked by whoever fetches it (``urls.check_https``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar, Protocol

from pydantic import field_validator

from nuseal.errors import ProtocolError
from nuseal.protocol.document import Document, Model, Timestamp
from nuseal.protocol.service_index import ResourceKind
from nuseal.protocol.urls import check_https

#: The only resource type whose document may say ``allRepositorySigned: true``.
ALL_SIGNED_TYPE = "RepositorySignatures/5.0.0"
_OID = re.compile(r"[0-9]+(?:\.[0-9]+)+")
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+")


class HashAlgorithm(Protocol):
    """Anything naming a hash algorithm by OID (``nuseal``'s ``HashAlgorithmName`` does)."""

    @property
    def oid(self) -> str: ...


class RepositorySignatureCertificate(Model):
    fingerprints: dict[str, str]
    subject: str
    issuer: str
    not_before: Timestamp
    not_after: Timestamp
    content_url: str

    @field_validator("fingerprints")
    @classmethod
    def _oid_to_hex(cls, value: dict[str, str]) -> dict[str, str]:
        for oid, fingerprint in value.items():
            if not _OID.fullmatch(oid):
                raise ValueError(f"'{oid}' is not a hash algorithm OID")
            if not _HEX.fullmatch(fingerprint):
                raise ValueError(f"the fingerprint for {oid} is not hexadecimal: '{fingerprint}'")
        return value

    def fingerprint(self, algorithm: HashAlgorithm) -> str | None:
        """The listed fingerprint for ``algorithm`` as published, or ``None``."""
        return self.fingerprints.get(algorithm.oid) or None


class RepositorySignatures(Document):
    KIND: ClassVar[str] = "RepositorySignatures resource"

    all_repository_signed: bool
    signing_certificates: list[RepositorySignatureCertificate]

    def served_as(self, resource_type: str) -> RepositorySignatures:
        """This document as a server must serve it under ``resource_type``: 4.7.0/4.9.0 say false (§C.2)."""
        if resource_type not in ResourceKind.REPOSITORY_SIGNATURES.preferred:
            raise ValueError(f"'{resource_type}' is not a RepositorySignatures resource type")
        if self.all_repository_signed and resource_type != ALL_SIGNED_TYPE:
            return self.model_copy(update={"all_repository_signed": False})
        return self


def read_repository_signatures(data: bytes | str | Mapping[str, Any], *, source: str, resource_type: str,
                               allow_insecure_loopback: bool = False) -> RepositorySignatures:
    """Parse the document fetched from ``source``, advertised in the service index as ``resource_type``.

    ``ProtocolError`` when it is malformed or says ``allRepositorySigned: true`` under a 4.x type;
    ``FetchError`` when a ``contentUrl`` is not https (loopback http allowed only when asked).
    """
    document = RepositorySignatures.parse(data, source=source)
    where = f"The {RepositorySignatures.KIND} at '{source}'"
    if document.all_repository_signed and resource_type != ALL_SIGNED_TYPE:
        raise ProtocolError(f"{where} is advertised as {resource_type} but says allRepositorySigned: true, "
                            f"which only {ALL_SIGNED_TYPE} may say.", document=where,
                            field="allRepositorySigned")
    for index, certificate in enumerate(document.signing_certificates):
        check_https(certificate.content_url, f"The contentUrl of signingCertificates[{index}] at '{source}'",
                    allow_insecure_loopback=allow_insecure_loopback)
    return document
