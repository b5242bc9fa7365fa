"""provider-side data deletion state

Revision ID: 0009_retention
Revises: 0008_token_kinds
Create Date: 2026-11-30

Each provider batch remembers what became of its data at the provider once its results were
stored (``cleanup_state``: pending, deleted, kept, failed; empty for batches fetched before
this revision) and how many deletion attempts were made (``cleanup_attempts``), so that a
failed deletion is retried by the tick a bounded number of times (docs/privacy.md).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_retention"
down_revision = "0008_token_kinds"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("provider_batches") as batch:
        batch.add_column(sa.Column("cleanup_state", sa.String(20), nullable=True))
        batch.add_column(sa.Column("cleanup_attempts", sa.Integer(), nullable=False,
                                   server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("provider_batches") as batch:
        batch.drop_column("cleanup_attempts")
        batch.drop_column("cleanup_state")
