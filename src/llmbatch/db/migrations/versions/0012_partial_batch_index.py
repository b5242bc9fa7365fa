"""the items' batch index holds planned items only

Revision ID: 0012_partial_batch_index
Revises: 0011_provider_webhook_receipts
Create Date: 2026-11-30

``ix_items_batch_id_provider_key`` serves every read by batch (the batch file, settling
results, the budget's release, the item history); an item has no batch until planning, so an
entry per item written at job creation indexed only NULLs that no query looks up, at a cost per
row paid while the job is created (issue 13). Partial (``WHERE batch_id IS NOT NULL``), it gets
an entry when planning assigns the batch; a query's ``batch_id = x`` implies the predicate, so
SQLite and PostgreSQL still use it (checked with their query plans in the tests).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_partial_batch_index"
down_revision = "0011_provider_webhook_receipts"
branch_labels = None
depends_on = None

INDEX = "ix_items_batch_id_provider_key"
PLANNED = sa.text("batch_id IS NOT NULL")


def upgrade() -> None:
    op.drop_index(INDEX, table_name="items")
    op.create_index(INDEX, "items", ["batch_id", "provider_key"],
                    sqlite_where=PLANNED, postgresql_where=PLANNED)


def downgrade() -> None:
    op.drop_index(INDEX, table_name="items")
    op.create_index(INDEX, "items", ["batch_id", "provider_key"])
