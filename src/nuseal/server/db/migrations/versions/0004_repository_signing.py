"""Repository signing (issue 11, branch reposign): repository certificates, re-signing runs and their failures,
and a job lease on package versions (lease_owner, lease_until) plus an index on the repository certificate a
served version carries.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "repository_certificates",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.Column("chain", sa.JSON(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("issuer", sa.Text(), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("key_kind", sa.String(length=16), nullable=False),
        sa.Column("sealed_key", sa.LargeBinary(), nullable=True),
        sa.Column("pkcs11_module", sa.String(length=1024), nullable=True),
        sa.Column("pkcs11_token", sa.String(length=256), nullable=True),
        sa.Column("pkcs11_key_label", sa.String(length=256), nullable=True),
        sa.Column("pkcs11_key_id", sa.String(length=256), nullable=True),
        sa.Column("timestamper_url", sa.String(length=2048), nullable=True),
        sa.Column("is_development", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("unlisted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("key_kind IN ('sealed-pfx', 'pkcs11')", name=op.f("ck_repository_certificates_key_kind")),
        sa.CheckConstraint(
            "state IN ('active', 'listed', 'retired', 'revoked')", name=op.f("ck_repository_certificates_state")
        ),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_repository_certificates")),
    )
    op.create_table(
        "resign_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("certificate_sha256", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("started_by", sa.String(length=256), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("resigned", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.CheckConstraint("reason IN ('retire', 'revoke')", name=op.f("ck_resign_runs_reason")),
        sa.CheckConstraint("state IN ('running', 'completed')", name=op.f("ck_resign_runs_state")),
        sa.ForeignKeyConstraint(
            ["certificate_sha256"],
            ["repository_certificates.sha256"],
            name=op.f("fk_resign_runs_certificate_sha256_repository_certificates"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resign_runs")),
    )
    op.create_index(op.f("ix_resign_runs_certificate_sha256"), "resign_runs", ["certificate_sha256"], unique=False)
    op.create_table(
        "resign_failures",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["resign_runs.id"], name=op.f("fk_resign_failures_run_id_resign_runs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["package_versions.id"],
            name=op.f("fk_resign_failures_version_id_package_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "version_id", name=op.f("pk_resign_failures")),
    )
    # Columns on a table of 0001: batch mode, so SQLite gets them too (it adds columns in place, no copy).
    with op.batch_alter_table("package_versions") as batch_op:
        batch_op.add_column(sa.Column("lease_owner", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_package_versions_repo_cert_sha256", "package_versions", ["repo_cert_sha256"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_package_versions_repo_cert_sha256", table_name="package_versions")
    with op.batch_alter_table("package_versions") as batch_op:
        batch_op.drop_column("lease_until")
        batch_op.drop_column("lease_owner")
    op.drop_table("resign_failures")
    op.drop_index(op.f("ix_resign_runs_certificate_sha256"), table_name="resign_runs")
    op.drop_table("resign_runs")
    op.drop_table("repository_certificates")
