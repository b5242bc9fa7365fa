"""durable submit journal

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# Frozen copy of the column type at this revision (never import app code in a migration).
JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "submit_journal",
        sa.Column("tag", sa.String(length=40), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("keys_digest", sa.String(length=128), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.Column("batch_id", sa.String(length=200), nullable=True),
        sa.Column("ambiguous", sa.Boolean(), nullable=False),
        sa.Column("excluded", JSON_TYPE, nullable=False),
        sa.PrimaryKeyConstraint("tag", name=op.f("pk_submit_journal")),
    )


def downgrade() -> None:
    op.drop_table("submit_journal")
