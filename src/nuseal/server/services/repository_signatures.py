"""The ``RepositorySignatures`` resource this feed serves (server.md §C): its documents, certificates and the
service index entries that advertise it.

- ``/v3/repository-signatures/{4.7.0,4.9.0,5.0.0}/index.json``: the same list of published certificates;
  ``allRepositorySigned`` is computed under 5.0.0 and always false under 4.7.0/4.9.0 (clients 4.7-4.9 cannot
  install from a source that says true, §C.2), through the protocol model's ``served_as``.
- ``allRepositorySigned`` is true only while at least one certificate is published and *every* served (available)
  version carries a repository signature from a published certificate: computed from the database on each request,
  never configured, so a revocation or a package signed before the feed had certificates turns it false at once.
- Each certificate: fingerprints keyed by hash OID (SHA-256, SHA-384, SHA-512; lower-case hex), ``subject`` and
  ``issuer`` as .NET writes ``X509Certificate2.Subject`` (most specific RDN first, ``, ``-joined, ``S=`` for the
  state: ``nuseal.x509.certs.name_string``, as nuget.org's document shows them), ``notBefore``/``notAfter`` in
  nuget.org's ``…0000000Z`` form, and ``contentUrl`` ``{base}/v3/repository-signatures/certificates/{sha256}.crt``
  serving the DER.
- NuGet requires https for the resource and for every ``contentUrl`` (§C.3-C.4). The service index advertises the
  resource only when the public URL is https (TLS here or at a proxy in front), or with the explicit development
  flag ``dev_allow_http_repository_signatures``, in which case the server logs that clients will refuse it.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from typing import Final

from cryptography import x509
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nuseal.enums import HashAlgorithmName
from nuseal.protocol.repository_signatures import RepositorySignatureCertificate, RepositorySignatures
from nuseal.protocol.service_index import ResourceKind, ServiceIndexResource
from nuseal.server.db.models import PackageVersion, RepositoryCertificate, VersionStatus
from nuseal.server.services.context import ServiceContext
from nuseal.server.services.errors import NotFoundError
from nuseal.server.services.repository_certificates import listed_certificates, normalize_fingerprint
from nuseal.server.settings import ServerSettings
from nuseal.x509 import certs

_log = logging.getLogger(__name__)

PATH: Final = "/v3/repository-signatures"
#: The versions served, each at ``{PATH}/{version}/index.json`` (NuGet prefers 5.0.0, then 4.9.0, then 4.7.0).
VERSIONS: Final = ("4.7.0", "4.9.0", "5.0.0")
COMMENT: Final = "The endpoint for discovering information about this package source's repository signatures."
CERTIFICATE_MEDIA_TYPE: Final = "application/pkix-cert"


def resource_type(version: str) -> str:
    return f"RepositorySignatures/{version}"


def enabled(settings: ServerSettings, base_url: str) -> bool:
    """Whether the feed serves and advertises the resource: an https public URL, or the development flag."""
    return base_url.startswith("https://") or settings.dev_allow_http_repository_signatures


def http_warning(settings: ServerSettings, base_url: str) -> str | None:
    """The start-up warning for the development flag over plain http (None when it does not apply)."""
    if base_url.startswith("https://") or not settings.dev_allow_http_repository_signatures:
        return None
    return (f"RepositorySignatures is advertised over plain http ({base_url}) because "
            "dev_allow_http_repository_signatures is set: NuGet clients refuse a RepositorySignatures resource or "
            "certificate contentUrl that is not https (RepositoryContentUrlMustBeHttps) and restore from this feed "
            "fails for them. Development only.")  # fmt: skip


def repository_signature_resources(settings: ServerSettings, base_url: str | None = None) -> list[ServiceIndexResource]:
    """The service index entries for this resource, one per type in NuGet's preference order, or none (http)."""
    base = (base_url or settings.base_url()).rstrip("/")
    if not enabled(settings, base):
        return []
    versions = [t.removeprefix("RepositorySignatures/") for t in ResourceKind.REPOSITORY_SIGNATURES.preferred]
    return [ServiceIndexResource(url=f"{base}{PATH}/{version}/index.json", type=resource_type(version),
                                 comment=COMMENT) for version in versions if version in VERSIONS]  # fmt: skip


def certificate_url(base_url: str, sha256: str) -> str:
    return f"{base_url.rstrip('/')}{PATH}/certificates/{sha256}.crt"


def all_repository_signed(session: Session) -> bool:
    """True iff some certificate is published and every served version carries one of the published certificates."""
    published = [row.sha256 for row in listed_certificates(session)]
    if not published:
        return False
    unsigned = session.scalar(
        select(func.count()).select_from(PackageVersion).where(
            PackageVersion.status == VersionStatus.AVAILABLE.value,
            PackageVersion.repo_cert_sha256.is_(None) | PackageVersion.repo_cert_sha256.not_in(published),
        )
    )  # fmt: skip
    return not unsigned


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def certificate_entry(row: RepositoryCertificate, base_url: str) -> RepositorySignatureCertificate:
    cert = x509.load_der_x509_certificate(row.der)
    fingerprints = {algorithm.oid: hashlib.new(algorithm.hashlib_name, row.der).hexdigest()
                    for algorithm in HashAlgorithmName}  # fmt: skip
    return RepositorySignatureCertificate(
        fingerprints=fingerprints, subject=certs.subject_string(cert), issuer=certs.issuer_string(cert),
        not_before=_utc(cert.not_valid_before_utc), not_after=_utc(cert.not_valid_after_utc),
        content_url=certificate_url(base_url, row.sha256),
    )  # fmt: skip


def document(ctx: ServiceContext, version: str, base_url: str) -> RepositorySignatures:
    """The document served at ``{PATH}/{version}/index.json``; :class:`NotFoundError` for another version."""
    if version not in VERSIONS:
        raise NotFoundError(f"no RepositorySignatures/{version} resource (served: {', '.join(VERSIONS)})")
    with ctx.db.reading() as session:
        entries = [certificate_entry(row, base_url) for row in listed_certificates(session)]
        signed = all_repository_signed(session)
    full = RepositorySignatures(all_repository_signed=signed, signing_certificates=entries)
    return full.served_as(resource_type(version))


def certificate_der(ctx: ServiceContext, sha256: str) -> bytes:
    """The DER of a certificate this feed publishes or published (revoked ones stay downloadable: clients that
    cached the list may still ask, and the bytes are public)."""
    try:
        key = normalize_fingerprint(sha256)
    except Exception:
        raise NotFoundError(f"no repository certificate {sha256!r}") from None
    with ctx.db.reading() as session:
        row = session.get(RepositoryCertificate, key)
        if row is None:
            raise NotFoundError(f"no repository certificate {key}")
        return bytes(row.der)
