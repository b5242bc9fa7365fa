"""tenants: API keys (stored only as hashes) and an index for a tenant's job list

Revision ID: 0006_tenants
Revises: 0005
Create Date: 2026-11-30

Every job already carries a ``tenant`` (default ``'default'``, what the key-less local CLI
uses). The API authenticates callers by key and scopes every query to the key's tenant, so it
needs the keys - never the key itself: ``secret_hash`` is the SHA-256 of a 256-bit random
secret, found by its short public ``prefix`` - and a ``(tenant, created_at)`` index so that a
tenant's newest jobs are one index range.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_tenants"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("prefix", sa.String(length=40), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("tenant", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("admin", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("prefix", name="uq_api_keys_prefix"),
    )
    op.create_index("ix_jobs_tenant_created", "jobs", ["tenant", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_tenant_created", table_name="jobs")
    op.drop_table("api_keys")
