"""provider webhook receipts

Revision ID: 0011_provider_webhook_receipts
Revises: 0010_provider_batch_index
Create Date: 2026-11-30

The ``webhook-id`` of each provider webhook delivery acted on, so that the vendor's repeat of
the same delivery (at least once: an answer lost on the way back) is acknowledged without a
second wake-up (``service_layer.provider_webhooks``). Rows older than the vendors' retry window
are deleted as new ones arrive, so the table stays small.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Frozen copy of the column type at this revision (never import app code in a migration).
TIME = sa.DateTime(timezone=True)

revision = "0011_provider_webhook_receipts"
down_revision = "0010_provider_batch_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provider_webhook_receipts",
        sa.Column("provider", sa.String(50), nullable=False),
        sa.Column("delivery_id", sa.String(200), nullable=False),
        sa.Column("received_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("provider", "delivery_id", name="pk_provider_webhook_receipts"),
    )
    op.create_index("ix_provider_webhook_receipts_received_at", "provider_webhook_receipts",
                    ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_provider_webhook_receipts_received_at",
                  table_name="provider_webhook_receipts")
    op.drop_table("provider_webhook_receipts")
