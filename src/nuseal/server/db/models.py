"""SQLAlchemy 2 models of the feed's tables (SERVER_DESIGN.md "Data model"), portable to SQLite and PostgreSQL.

The Alembic history in ``migrations/`` creates exactly these tables; a test compares the two so they never drift.
Rules: every timestamp is timezone-aware UTC (:class:`UtcDateTime`), names are lower-case, case-insensitive
identities (account names, package ids and versions) are kept twice: as typed and lower-cased with a UNIQUE
constraint on the lower-cased copy, since SQLite and PostgreSQL disagree on case-insensitive collations.
Constraint names follow one naming convention so later migrations can refer to them on both databases.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """``TIMESTAMP WITH TIME ZONE`` that only accepts aware datetimes and always returns UTC-aware ones.

    SQLite has no time zone type and hands back naive values; they were written as UTC, so UTC is attached.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the database stores UTC-aware timestamps only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UtcDateTime(),
        dict[str, Any]: JSON(none_as_null=True),  # Python None is SQL NULL, not the JSON 'null'
        list[Any]: JSON(),
    }


class AccountKind(str, enum.Enum):
    USER = "user"
    ORGANIZATION = "organization"


class VersionStatus(str, enum.Enum):
    """Where a pushed version is in the validation pipeline; only ``available`` versions are served."""

    VALIDATING = "validating"
    AVAILABLE = "available"
    FAILED = "failed"


class SignatureKindColumn(str, enum.Enum):
    """The outermost signature of the served package."""

    UNSIGNED = "unsigned"
    AUTHOR = "author"
    REPOSITORY = "repository"


def _values_check(column: str, enum_type: type[enum.Enum]) -> str:
    return f"{column} IN ({', '.join(repr(member.value) for member in enum_type)})"


class Account(Base):
    """A user or an organization (one name space, as on nuget.org)."""

    __tablename__ = "accounts"
    __table_args__ = (CheckConstraint(_values_check("kind", AccountKind), name="kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    lower_name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    email: Mapped[str | None] = mapped_column(String(254))
    is_site_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]

    @property
    def is_organization(self) -> bool:
        return self.kind == AccountKind.ORGANIZATION.value


class Membership(Base):
    """A user's membership of an organization: admin or collaborator."""

    __tablename__ = "memberships"

    organization_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)

    organization: Mapped[Account] = relationship(foreign_keys=[organization_id])
    member: Mapped[Account] = relationship(foreign_keys=[member_id])


class ApiKey(Base):
    """An API key: only a salted hash of its secret is stored; the plaintext is shown once at creation."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[str] = mapped_column(String(32), unique=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    holder_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    salt: Mapped[str] = mapped_column(String(64))
    secret_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[Any]]
    globs: Mapped[list[Any]]
    description: Mapped[str] = mapped_column(String(256), default="")
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]

    owner: Mapped[Account] = relationship(foreign_keys=[owner_id])
    holder: Mapped[Account] = relationship(foreign_keys=[holder_id])


class PackageRegistration(Base):
    """A package id; its case is the case of the first push."""

    __tablename__ = "package_registrations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    package_id: Mapped[str] = mapped_column(String(128))
    lower_id: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime]

    owners: Mapped[list[Account]] = relationship(secondary="package_owners", order_by="Account.lower_name")


class PackageOwner(Base):
    __tablename__ = "package_owners"

    registration_id: Mapped[int] = mapped_column(
        ForeignKey("package_registrations.id", ondelete="CASCADE"), primary_key=True
    )
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)


class PackageVersion(Base):
    """One pushed version; served only while ``status`` is ``available``, from ``package_blob``."""

    __tablename__ = "package_versions"
    __table_args__ = (
        UniqueConstraint("registration_id", "lower_version"),
        CheckConstraint(_values_check("status", VersionStatus), name="status"),
        CheckConstraint(_values_check("signature_kind", SignatureKindColumn), name="signature_kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    registration_id: Mapped[int] = mapped_column(
        ForeignKey("package_registrations.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[str] = mapped_column(String(128))
    lower_version: Mapped[str] = mapped_column(String(128))
    full_version: Mapped[str] = mapped_column(String(256))
    is_prerelease: Mapped[bool] = mapped_column(Boolean)
    is_semver2: Mapped[bool] = mapped_column(Boolean)
    listed: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default=VersionStatus.VALIDATING.value)
    pushed_at: Mapped[datetime]
    pushed_by_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"))
    pushed_for_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"))
    package_blob: Mapped[str | None] = mapped_column(String(512))
    package_sha512: Mapped[str | None] = mapped_column(String(88))
    package_size: Mapped[int | None] = mapped_column(BigInteger)
    upload_blob: Mapped[str | None] = mapped_column(String(512))
    upload_sha512: Mapped[str | None] = mapped_column(String(88))
    nuspec_blob: Mapped[str | None] = mapped_column(String(512))
    package_metadata: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    findings: Mapped[list[Any]] = mapped_column(JSON, default=list)
    author_cert_sha256: Mapped[str | None] = mapped_column(String(64))
    repo_cert_sha256: Mapped[str | None] = mapped_column(String(64))
    signature_kind: Mapped[str] = mapped_column(String(16), default=SignatureKindColumn.UNSIGNED.value)
    published_at: Mapped[datetime | None]
    # reposign (issue 11, revision 0002): a background job's lease on the row (validation, re-signing). A job
    # takes it with a conditional UPDATE, so two workers never process the same version at once.
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]

    registration: Mapped[PackageRegistration] = relationship()


class AuditEvent(Base):
    """Who did what, when, to what, with the state before and after (warehouse-style ``domain:subject:action``)."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(256))
    action: Mapped[str] = mapped_column(String(64), index=True)
    subject: Mapped[str] = mapped_column(String(512))
    before: Mapped[dict[str, Any] | None]
    after: Mapped[dict[str, Any] | None]


# ---------------------------------------------------------------------------------------------------------------
# Issue 10 (governance branch): author-signing certificates per account and the required signer per package
# (spec server.md §A.1-A.5). Revision 0002_governance_certificates creates these tables.


class Certificate(Base):
    """An uploaded author-signing certificate, identified by the SHA-256 of its DER bytes (lower-case hex).

    The DER itself is kept here (uploads are at most 10,000 bytes), so a registration is one transaction with no
    blob to orphan; nuget.org keeps ``user-certificates/SHA-256/{sha256}.cer`` blobs instead. The details are
    filled at registration (nuget.org only fills them after the first signed push). Rows are never deleted:
    unregistering removes the account's link only.
    """

    __tablename__ = "certificates"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    der: Mapped[bytes] = mapped_column(LargeBinary)
    subject: Mapped[str] = mapped_column(String(2048))
    issuer: Mapped[str] = mapped_column(String(2048))
    not_before: Mapped[datetime]
    not_after: Mapped[datetime]
    created_at: Mapped[datetime]


class AccountCertificate(Base):
    """A certificate registered to an account (user or organization); one certificate may be on many accounts."""

    __tablename__ = "account_certificates"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    certificate_sha256: Mapped[str] = mapped_column(
        ForeignKey("certificates.sha256", ondelete="RESTRICT"), primary_key=True, index=True
    )
    registered_at: Mapped[datetime]

    certificate: Mapped[Certificate] = relationship()


class PackageRequiredSigner(Base):
    """The required signer of a package (0 or 1 row per registration; no row means "Any")."""

    __tablename__ = "package_required_signers"

    registration_id: Mapped[int] = mapped_column(
        ForeignKey("package_registrations.id", ondelete="CASCADE"), primary_key=True
    )
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)

    account: Mapped[Account] = relationship()


# feedapi (issue 9): the feed-state serial that read caches are keyed on (revision 0003_feed_state).


class FeedState(Base):
    """One row (``id`` 1): ``serial`` goes up in every transaction that changes what the feed serves (a version
    becomes available, is unlisted, relisted or deleted, owners change). Server processes cache rendered documents
    per serial and drop them when the serial they read differs, so every process sees a change at once."""

    __tablename__ = "feed_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    serial: Mapped[int] = mapped_column(BigInteger, default=0)


# reposign (issue 11): repository certificates, their keys, and re-signing runs (revision 0004).


class RepositoryCertificateState(str, enum.Enum):
    """``active`` signs new pushes (one at most); ``listed`` is published but not signing; ``retired`` signs
    nothing and stays published until no served package carries it; ``revoked`` is unpublished at once."""

    ACTIVE = "active"
    LISTED = "listed"
    RETIRED = "retired"
    REVOKED = "revoked"


class RepositoryKeyKind(str, enum.Enum):
    """Where the private key is: a sealed PKCS#12 in the row, or a PKCS#11 token every worker can reach."""

    SEALED_PFX = "sealed-pfx"
    PKCS11 = "pkcs11"


class ResignReason(str, enum.Enum):
    RETIRE = "retire"
    REVOKE = "revoke"


class ResignRunState(str, enum.Enum):
    RUNNING = "running"
    COMPLETED = "completed"


class RepositoryCertificate(Base):
    """A certificate the feed repository-signs with, or did; listed in RepositorySignatures while published."""

    __tablename__ = "repository_certificates"
    __table_args__ = (
        CheckConstraint(_values_check("state", RepositoryCertificateState), name="state"),
        CheckConstraint(_values_check("key_kind", RepositoryKeyKind), name="key_kind"),
    )

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)  # lower-case hex of the DER
    der: Mapped[bytes] = mapped_column(LargeBinary)
    #: The issuers to embed in signatures, leaf excluded, as base64 DER (the order the chain goes up).
    chain: Mapped[list[Any]]
    subject: Mapped[str] = mapped_column(Text)
    issuer: Mapped[str] = mapped_column(Text)
    not_before: Mapped[datetime]
    not_after: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(16))
    key_kind: Mapped[str] = mapped_column(String(16))
    #: ``sealed-pfx``: the PKCS#12 (key + chain) encrypted with the feed's key-encryption secret.
    sealed_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    #: ``pkcs11``: module path, token label and key label or hex id; the PIN comes from the settings.
    pkcs11_module: Mapped[str | None] = mapped_column(String(1024))
    pkcs11_token: Mapped[str | None] = mapped_column(String(256))
    pkcs11_key_label: Mapped[str | None] = mapped_column(String(256))
    pkcs11_key_id: Mapped[str | None] = mapped_column(String(256))
    #: RFC 3161 service for this certificate's signatures; NULL for the development TSA of the data folder.
    timestamper_url: Mapped[str | None] = mapped_column(String(2048))
    is_development: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    activated_at: Mapped[datetime | None]
    retired_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    #: When it left the RepositorySignatures list (retired with nothing left to re-sign, or revoked).
    unlisted_at: Mapped[datetime | None]

    @property
    def listed(self) -> bool:
        """Published in RepositorySignatures."""
        return self.unlisted_at is None and self.state != RepositoryCertificateState.REVOKED.value


class ResignRun(Base):
    """Re-signing every served package that carries ``certificate_sha256`` (a retire or a revoke): the counters
    change in the same transaction as each package, so they are exact after any crash."""

    __tablename__ = "resign_runs"
    __table_args__ = (
        CheckConstraint(_values_check("reason", ResignReason), name="reason"),
        CheckConstraint(_values_check("state", ResignRunState), name="state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    certificate_sha256: Mapped[str] = mapped_column(ForeignKey("repository_certificates.sha256"), index=True)
    reason: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    started_by: Mapped[str] = mapped_column(String(256))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    #: Served packages carrying the certificate when the run started.
    total: Mapped[int] = mapped_column(Integer)
    resigned: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)


class ResignFailure(Base):
    """A package a run could not re-sign, with the reason (it keeps its old signature; a new run retries it)."""

    __tablename__ = "resign_failures"

    run_id: Mapped[int] = mapped_column(ForeignKey("resign_runs.id", ondelete="CASCADE"), primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("package_versions.id", ondelete="CASCADE"), primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime]


#: Re-signing looks versions up by the certificate they carry.
Index("ix_package_versions_repo_cert_sha256", PackageVersion.repo_cert_sha256)
