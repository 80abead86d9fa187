"""Issue 10 (governance): author-signing certificates, their registration to accounts, required signers.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "certificates",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.Column("subject", sa.String(length=2048), nullable=False),
        sa.Column("issuer", sa.String(length=2048), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_certificates")),
    )
    op.create_table(
        "account_certificates",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("certificate_sha256", sa.String(length=64), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_account_certificates_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["certificate_sha256"], ["certificates.sha256"],
            name=op.f("fk_account_certificates_certificate_sha256_certificates"), ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("account_id", "certificate_sha256", name=op.f("pk_account_certificates")),
    )
    op.create_index(
        op.f("ix_account_certificates_certificate_sha256"), "account_certificates", ["certificate_sha256"],
        unique=False,
    )
    op.create_table(
        "package_required_signers",
        sa.Column("registration_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_package_required_signers_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["registration_id"], ["package_registrations.id"],
            name=op.f("fk_package_required_signers_registration_id_package_registrations"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("registration_id", name=op.f("pk_package_required_signers")),
    )
    op.create_index(
        op.f("ix_package_required_signers_account_id"), "package_required_signers", ["account_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_package_required_signers_account_id"), table_name="package_required_signers")
    op.drop_table("package_required_signers")
    op.drop_index(op.f("ix_account_certificates_certificate_sha256"), table_name="account_certificates")
    op.drop_table("account_certificates")
    op.drop_table("certificates")
