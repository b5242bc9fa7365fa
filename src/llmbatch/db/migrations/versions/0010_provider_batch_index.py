"""an index on provider batch ids

Revision ID: 0010_provider_batch_index
Revises: 0009_retention
Create Date: 2026-11-30

A provider's batch webhook names the batch by the provider's id; the wake-up finds our batch
by ``(provider, provider_batch_id)`` (``db.early_polls``), which without an index scans every
batch ever sent. Not unique: ids are the provider's, and two providers (or two projects of one
provider) may reuse one.
"""

from __future__ import annotations

from alembic import op

revision = "0010_provider_batch_index"
down_revision = "0009_retention"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_provider_batches_provider_batch_id", "provider_batches",
                    ["provider_batch_id", "provider"])


def downgrade() -> None:
    op.drop_index("ix_provider_batches_provider_batch_id", table_name="provider_batches")
