"""limits: token estimates, provider call slots and rate buckets

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Frozen copy of the column type at this revision (never import app code in a migration).
TIMESTAMP = sa.DateTime(timezone=True)

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing rows get 0: batches planned before this revision hold no share of the quota,
    # which is what they did before it existed.
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("estimated_tokens", sa.Integer(), nullable=False,
                                      server_default="0"))
    with op.batch_alter_table("provider_batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("estimated_tokens", sa.BigInteger(), nullable=False,
                                      server_default="0"))
    op.create_table(
        "provider_slots",
        sa.Column("provider", sa.String(length=50), nullable=False),
        sa.Column("slot", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=True),
        sa.Column("lease_until", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("provider", "slot", name=op.f("pk_provider_slots")),
    )
    op.create_table(
        "provider_rate_buckets",
        sa.Column("provider", sa.String(length=50), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("refilled_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("provider", name=op.f("pk_provider_rate_buckets")),
    )


def downgrade() -> None:
    op.drop_table("provider_rate_buckets")
    op.drop_table("provider_slots")
    with op.batch_alter_table("provider_batches", schema=None) as batch_op:
        batch_op.drop_column("estimated_tokens")
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.drop_column("estimated_tokens")
