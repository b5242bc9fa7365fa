"""results in their own table

Revision ID: 0013_item_results
Revises: 0012_partial_batch_index
Create Date: 2026-12-01

A fetch wrote each result into its item's row: an ``UPDATE`` that rewrote the wide row (its
request included) and, on PostgreSQL, an entry in every index of ``items``, which alone took
longer than twice the raw write of the same results (issue 13, benchmarks/README). Results
now go into ``item_results``, inserted once (``COPY`` / ``executemany``) and keyed by the batch
and provider key; the item keeps status ``submitted`` and its batch, and readers see the two
joined (``db.item_view``). ``provider_batches.result_totals`` holds the batch's stored results
summed per status (items, tokens, costs), so counting a job's items or settling a batch's
budget needs no join (``db.result_totals``).

Items settled before this revision keep their results in their own row; the view reads those
as they are, so nothing is moved.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# Frozen copies of the column types at this revision (never import app code in a migration).
JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIME = sa.DateTime(timezone=True)

revision = "0013_item_results"
down_revision = "0012_partial_batch_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "item_results",
        sa.Column("batch_id", sa.String(40), nullable=False),
        sa.Column("provider_key", sa.String(500), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("response", JSON_TYPE, nullable=True),
        sa.Column("output_text", sa.Text(), nullable=True),
        sa.Column("finish_reason", sa.String(50), nullable=True),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in (
            "input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens",
            "cache_write_tokens", "cache_write_1h_tokens")),
        sa.Column("error", JSON_TYPE, nullable=True),
        sa.Column("cost_pusd", sa.BigInteger(), nullable=True),
        sa.Column("sync_cost_pusd", sa.BigInteger(), nullable=True),
        sa.Column("completed_at", TIME, nullable=False),
        sa.ForeignKeyConstraint(["batch_id"], ["provider_batches.id"], ondelete="CASCADE",
                                name="fk_item_results_batch_id_provider_batches"),
        sa.PrimaryKeyConstraint("batch_id", "provider_key", name="pk_item_results"),
    )
    with op.batch_alter_table("provider_batches") as batch:
        batch.add_column(sa.Column("result_totals", JSON_TYPE, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("provider_batches") as batch:
        batch.drop_column("result_totals")
    op.drop_table("item_results")
