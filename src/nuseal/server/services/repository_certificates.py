"""The feed's repository certificates: adding one (with its key), listing, activating, and what is published.

States (``repository_certificates.state``): ``listed`` (published in RepositorySignatures, not signing),
``active`` (signs new pushes; at most one), ``retired`` (signs nothing; stays published until no served package
carries it) and ``revoked`` (unpublished at once). A certificate is published from the moment it is added, so
clients that sync their trusted signers see it before any package carries it (server.md §B.8, §C.4).

Adding refuses a certificate NuGet would not accept for repository signing, with the library's own rules
(``nuseal.sign.checks``: RSA >= 2048, SHA-2 signature, code-signing EKU, no lifetime-signing EKU, valid now,
no expired chain certificate), then signs and re-verifies a throw-away package with it (``trial_sign``): the key
works, the TSA answers and its chain is trusted. Retiring and revoking (which re-sign served packages) are in
:mod:`nuseal.server.services.rotation`.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from nuseal.errors import NusealError
from nuseal.findings import Finding
from nuseal.server.db.models import (
    PackageVersion,
    RepositoryCertificate,
    RepositoryCertificateState,
    RepositoryKeyKind,
    VersionStatus,
)
from nuseal.server.services import audit
from nuseal.server.services.context import ServiceContext
from nuseal.server.services.errors import ConflictError, InvalidInputError, NotFoundError
from nuseal.server.services.permissions import Actor
from nuseal.server.services.repository_keys import (
    RepositoryCert,
    RepositoryKeyError,
    key_secret,
    seal_signer,
    verification_trust,
)
from nuseal.server.services.repository_signing import trial_sign
from nuseal.server.settings import env_var
from nuseal.sign.checks import check_signing_certificate
from nuseal.sign.signers import KeySigner, Pkcs11Config, Pkcs11Signer, Signer, order_chain
from nuseal.timestamp.client import HttpTimestamper
from nuseal.x509 import certs, tools

CERTIFICATE_ADD: Final = "repository:certificate:add"
CERTIFICATE_ACTIVATE: Final = "repository:certificate:activate"
CERTIFICATE_RETIRE: Final = "repository:certificate:retire"
CERTIFICATE_REVOKE: Final = "repository:certificate:revoke"
CERTIFICATE_UNLIST: Final = "repository:certificate:unlist"
#: The service index a trial signature names: any https URL will do (nothing is published).
TRIAL_SERVICE_INDEX: Final = "https://repository-signing-check.invalid/v3/index.json"
_HEX = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class RepositoryCertificateInfo:
    """A repository certificate as ``repo-cert list`` shows it."""

    sha256: str
    subject: str
    issuer: str
    not_before: datetime
    not_after: datetime
    state: str
    listed: bool
    key: str  # "sealed-pfx" or "pkcs11"
    timestamper_url: str | None
    development: bool
    served_packages: int
    created_at: datetime
    activated_at: datetime | None
    retired_at: datetime | None
    revoked_at: datetime | None
    unlisted_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        def iso(moment: datetime | None) -> str | None:
            return None if moment is None else moment.isoformat()

        return {
            "sha256": self.sha256, "subject": self.subject, "issuer": self.issuer,
            "not_before": iso(self.not_before), "not_after": iso(self.not_after), "state": self.state,
            "listed": self.listed, "key": self.key, "timestamper": self.timestamper_url,
            "development": self.development, "served_packages": self.served_packages,
            "created_at": iso(self.created_at), "activated_at": iso(self.activated_at),
            "retired_at": iso(self.retired_at), "revoked_at": iso(self.revoked_at),
            "unlisted_at": iso(self.unlisted_at),
        }  # fmt: skip


@dataclass(frozen=True)
class AddedCertificate:
    info: RepositoryCertificateInfo
    warnings: tuple[Finding, ...]  # sign-time chain warnings (self-issued root, partial chain)


@dataclass(frozen=True)
class Pkcs11Reference:
    """Where a repository key lives on a PKCS#11 token; the PIN is a setting of every worker."""

    module: Path
    token: str
    key_label: str | None = None
    key_id: str | None = None  # hex


# --- queries ------------------------------------------------------------------------------------------------


def normalize_fingerprint(text: str) -> str:
    """A SHA-256 fingerprint as stored: 64 lower-case hex digits (colons and spaces ignored)."""
    cleaned = re.sub(r"[\s:]", "", text).lower()
    if not _HEX.match(cleaned):
        raise InvalidInputError(f"invalid certificate fingerprint {text!r}: expected 64 hexadecimal digits (SHA-256)")
    return cleaned


def find_certificate(session: Session, fingerprint: str) -> RepositoryCertificate:
    row = session.get(RepositoryCertificate, normalize_fingerprint(fingerprint))
    if row is None:
        raise NotFoundError(f"no repository certificate {normalize_fingerprint(fingerprint)}")
    return row


def active_certificate(session: Session) -> RepositoryCertificate | None:
    return session.scalars(
        select(RepositoryCertificate).where(RepositoryCertificate.state == RepositoryCertificateState.ACTIVE.value)
    ).first()


def signs_now(session: Session, sha256: str) -> bool:
    """Whether ``sha256`` is the active certificate, holding a shared lock on its row until the transaction ends.

    The fence for publishing a signature made with it: call it in the transaction that switches a version to the
    signed bytes. On PostgreSQL the row lock (``FOR SHARE``) makes a concurrent ``activate`` wait for that commit,
    so a retire that follows it sees the version; SQLite's write transaction serializes them anyway.
    """
    row = session.get(RepositoryCertificate, sha256, with_for_update={"read": True})
    return row is not None and row.state == RepositoryCertificateState.ACTIVE.value


def listed_certificates(session: Session) -> list[RepositoryCertificate]:
    """The certificates published in RepositorySignatures, oldest first."""
    return list(session.scalars(
        select(RepositoryCertificate)
        .where(RepositoryCertificate.unlisted_at.is_(None),
               RepositoryCertificate.state != RepositoryCertificateState.REVOKED.value)
        .order_by(RepositoryCertificate.created_at, RepositoryCertificate.sha256)
    ))  # fmt: skip


def served_counts(session: Session) -> dict[str, int]:
    """How many served (available) versions carry each repository certificate."""
    rows = session.execute(
        select(PackageVersion.repo_cert_sha256, func.count())
        .where(PackageVersion.status == VersionStatus.AVAILABLE.value, PackageVersion.repo_cert_sha256.is_not(None))
        .group_by(PackageVersion.repo_cert_sha256)
    )
    return {str(sha256): int(count) for sha256, count in rows}


def info_of(row: RepositoryCertificate, served: int) -> RepositoryCertificateInfo:
    return RepositoryCertificateInfo(
        row.sha256, row.subject, row.issuer, row.not_before, row.not_after, row.state, row.listed, row.key_kind,
        row.timestamper_url, row.is_development, served, row.created_at, row.activated_at, row.retired_at,
        row.revoked_at, row.unlisted_at,
    )  # fmt: skip


def list_certificates(ctx: ServiceContext) -> list[RepositoryCertificateInfo]:
    with ctx.db.reading() as session:
        served = served_counts(session)
        rows = session.scalars(select(RepositoryCertificate).order_by(RepositoryCertificate.created_at,
                                                                      RepositoryCertificate.sha256))  # fmt: skip
        return [info_of(row, served.get(row.sha256, 0)) for row in rows]


def get_certificate(ctx: ServiceContext, fingerprint: str) -> RepositoryCertificateInfo:
    with ctx.db.reading() as session:
        row = find_certificate(session, fingerprint)
        return info_of(row, served_counts(session).get(row.sha256, 0))


# --- adding -------------------------------------------------------------------------------------------------


def load_file_signer(path: Path, password: str | None) -> KeySigner:
    """The key and chain of a PFX/P12 or PEM file (key + certificates); :class:`InvalidInputError` naming the file."""
    try:
        loaded = tools.load_certificate_file(path, password)
    except NusealError as exc:
        raise InvalidInputError(exc.message) from None
    if loaded.key is None:
        raise InvalidInputError(f"the certificate file '{path}' has no private key: a repository certificate "
                                "needs its key (a PFX, or a PEM file with the key)")  # fmt: skip
    chain = order_chain(loaded.certificate, [loaded.certificate, *loaded.others])
    return KeySigner(loaded.key, loaded.certificate, chain)


def load_file_certificates(path: Path) -> list[x509.Certificate]:
    """The certificates of a PEM or DER file (a PKCS#11 key's chain, leaf first or in any order)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"cannot read the certificate file '{path}': {exc.strerror}") from None
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise InvalidInputError(f"'{path}' is not a PEM or DER certificate file") from None


def open_pkcs11_signer(ctx: ServiceContext, reference: Pkcs11Reference,
                       certificates: tuple[x509.Certificate, ...] = ()) -> Pkcs11Signer:  # fmt: skip
    pin = ctx.settings.repository_pkcs11_pin
    if pin is None:
        raise InvalidInputError(f"set {env_var('repository_pkcs11_pin')} to the token's user PIN (every worker "
                                "signs with it; it is never stored in the database)")  # fmt: skip
    key_id = None
    if reference.key_id is not None:
        try:
            key_id = bytes.fromhex(reference.key_id)
        except ValueError:
            raise InvalidInputError(f"invalid PKCS#11 key id {reference.key_id!r}: expected hexadecimal") from None
    config = Pkcs11Config(reference.module, reference.token, pin, key_label=reference.key_label, key_id=key_id)
    try:
        return Pkcs11Signer(config, certificates=certificates)
    except NusealError as exc:
        raise InvalidInputError(exc.message) from None


def check_repository_certificate(signer: Signer, now: datetime) -> tuple[Finding, ...]:
    """NuGet's sign-time rules for the certificate and its chain (errors raise :class:`InvalidInputError`)."""
    try:
        return tuple(check_signing_certificate(signer.chain, now))
    except NusealError as exc:
        raise InvalidInputError(f"this certificate cannot repository-sign: {exc}") from None


def add_certificate(
    ctx: ServiceContext,
    actor: Actor,
    signer: Signer,
    *,
    timestamper_url: str | None,
    pkcs11: Pkcs11Reference | None = None,
    development: bool = False,
    local_tsa_url: Callable[[], str] | None = None,
) -> AddedCertificate:
    """Add a repository certificate (state ``listed``: published, not yet signing) with its key.

    ``signer`` holds the key: in memory (from a file: stored sealed) or on the token ``pkcs11`` names (stored as a
    reference). ``timestamper_url`` is the TSA its signatures use (``None`` only for the development certificate,
    which uses ``local_tsa_url``). Refused: an existing certificate (409), one NuGet would not sign with, one whose
    trial signature fails (400).
    """
    now = ctx.now()
    sha256 = certs.fingerprint(signer.certificate).lower()
    with ctx.db.reading() as session:
        existing = session.get(RepositoryCertificate, sha256)
        if existing is not None:
            raise ConflictError(f"repository certificate {sha256} was already added (state {existing.state})")
    warnings = check_repository_certificate(signer, now)
    if timestamper_url is None and not development:
        raise InvalidInputError("a repository certificate needs a timestamp service: give --timestamper URL")
    _trial(ctx, signer, sha256, timestamper_url, local_tsa_url, now)
    row = new_row(ctx, signer, sha256, timestamper_url=timestamper_url, pkcs11=pkcs11, development=development)
    with ctx.db.transaction() as session:
        if session.get(RepositoryCertificate, sha256) is not None:  # added concurrently
            raise ConflictError(f"repository certificate {sha256} was already added")
        session.add(row)
        audit.record(session, actor, CERTIFICATE_ADD, sha256, at=now, after=_audit_state(row))
        session.flush()
        info = info_of(row, 0)
    return AddedCertificate(info, warnings)


def new_row(
    ctx: ServiceContext,
    signer: Signer,
    sha256: str,
    *,
    timestamper_url: str | None,
    pkcs11: Pkcs11Reference | None,
    development: bool,
) -> RepositoryCertificate:
    """The row of a new certificate (state ``listed``), its key sealed or referenced."""
    certificate = signer.certificate
    row = RepositoryCertificate(
        sha256=sha256, der=tools.der_bytes(certificate),
        chain=[base64.b64encode(tools.der_bytes(c)).decode("ascii") for c in signer.chain[1:]],
        subject=certs.subject_string(certificate), issuer=certs.issuer_string(certificate),
        not_before=certificate.not_valid_before_utc, not_after=certificate.not_valid_after_utc,
        state=RepositoryCertificateState.LISTED.value, timestamper_url=timestamper_url,
        is_development=development, created_at=ctx.now(),
    )  # fmt: skip
    if pkcs11 is not None:
        row.key_kind = RepositoryKeyKind.PKCS11.value
        row.pkcs11_module = str(pkcs11.module.absolute())
        row.pkcs11_token = pkcs11.token
        row.pkcs11_key_label = pkcs11.key_label
        row.pkcs11_key_id = pkcs11.key_id.lower() if pkcs11.key_id else None
    else:
        if not isinstance(signer, KeySigner):
            raise TypeError("a key that is not on a PKCS#11 token must be in memory (KeySigner)")
        row.key_kind = RepositoryKeyKind.SEALED_PFX.value
        try:
            row.sealed_key = seal_signer(signer, key_secret(ctx.settings), sha256)
        except RepositoryKeyError as exc:
            raise InvalidInputError(exc.message) from None
    return row


def _trial(ctx: ServiceContext, signer: Signer, sha256: str, timestamper_url: str | None,
           local_tsa_url: Callable[[], str] | None, now: datetime) -> None:  # fmt: skip
    url = timestamper_url if timestamper_url is not None else (local_tsa_url() if local_tsa_url else None)
    if url is None:
        raise InvalidInputError("the development certificate needs the development TSA")
    cert = RepositoryCert(sha256, signer, verification_trust(ctx.settings, signer.chain), timestamper_url)
    try:
        with HttpTimestamper(url, timeout=30.0, clock=ctx.clock) as stamper:
            trial_sign(service_index_url=TRIAL_SERVICE_INDEX, repo_cert=cert, timestamper=stamper, now=now)
    except NusealError as exc:
        raise InvalidInputError(f"a trial repository signature with certificate {sha256} failed: {exc}") from None


def _audit_state(row: RepositoryCertificate) -> dict[str, Any]:
    return {"state": row.state, "listed": row.listed, "subject": row.subject, "key": row.key_kind,
            "timestamper": row.timestamper_url, "development": row.is_development}  # fmt: skip


# --- activating -----------------------------------------------------------------------------------------------


def activate(ctx: ServiceContext, actor: Actor, fingerprint: str) -> tuple[RepositoryCertificateInfo, bool]:
    """Make the certificate the one new pushes and re-signing use (the previous active one becomes ``listed``).

    Returns the info and whether anything changed. Refused for a retired or revoked certificate, and for one that
    is not valid now.
    """
    now = ctx.now()
    with ctx.db.transaction() as session:
        # Lock every row (PostgreSQL; SQLite's write transaction already serializes): one active certificate.
        rows = list(session.scalars(select(RepositoryCertificate).with_for_update()))
        row = find_certificate(session, fingerprint)
        if row.state == RepositoryCertificateState.ACTIVE.value:
            return info_of(row, served_counts(session).get(row.sha256, 0)), False
        if row.state != RepositoryCertificateState.LISTED.value:
            raise ConflictError(f"repository certificate {row.sha256} is {row.state}: it cannot sign again "
                                "(add a new certificate)")  # fmt: skip
        if not row.not_before <= now < row.not_after:
            raise ConflictError(f"repository certificate {row.sha256} is not valid now (valid "
                                f"{row.not_before.isoformat()} to {row.not_after.isoformat()})")  # fmt: skip
        previous = [r for r in rows if r.state == RepositoryCertificateState.ACTIVE.value]
        session.execute(
            update(RepositoryCertificate)
            .where(RepositoryCertificate.state == RepositoryCertificateState.ACTIVE.value)
            .values(state=RepositoryCertificateState.LISTED.value)
        )
        row.state = RepositoryCertificateState.ACTIVE.value
        row.activated_at = now
        audit.record(session, actor, CERTIFICATE_ACTIVATE, row.sha256, at=now,
                     before={"active": [r.sha256 for r in previous]}, after={"active": [row.sha256]})
        session.flush()
        session.refresh(row)
        return info_of(row, served_counts(session).get(row.sha256, 0)), True
