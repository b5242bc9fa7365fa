"""item results in their own table

Revision ID: 0012_item_results
Revises: 0011_provider_webhook_receipts
Create Date: 2026-11-30

Results move out of the item row into ``item_results``, one row per (batch, key), written once:
a fetch inserts a chunk of results in bulk (PostgreSQL ``COPY``) and settles the items from
them with one narrow ``UPDATE``, where it used to rewrite every wide item row (its request
included) with the response, and each of its index entries (issue 13, fetch at the floor).
``items`` keeps the summary readers aggregate (status, tokens, costs, finish reason, error);
``response`` and ``output_text`` live in ``item_results`` only.

Existing results move: each item holding a response or an output text and still pointing at its
batch becomes that batch's row for its key. An item sent back to pending (no batch) loses the
response of its failed attempt, as it would have on its next result.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# Frozen copy of the column type at this revision (never import app code in a migration).
JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision = "0012_item_results"
down_revision = "0011_provider_webhook_receipts"
branch_labels = None
depends_on = None

_COPIED = ("response", "output_text", "finish_reason", "input_tokens", "output_tokens",
           "cached_tokens", "reasoning_tokens", "cache_write_tokens", "cache_write_1h_tokens",
           "error", "cost_pusd", "sync_cost_pusd")


def upgrade() -> None:
    op.create_table(
        "item_results",
        sa.Column("batch_id", sa.String(40), nullable=False),
        sa.Column("provider_key", sa.String(500), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("response", JSON_TYPE, nullable=True),
        sa.Column("output_text", sa.Text(), nullable=True),
        sa.Column("finish_reason", sa.String(50), nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("cached_tokens", sa.Integer(), nullable=False),
        sa.Column("reasoning_tokens", sa.Integer(), nullable=False),
        sa.Column("cache_write_tokens", sa.Integer(), nullable=False),
        sa.Column("cache_write_1h_tokens", sa.Integer(), nullable=False),
        sa.Column("error", JSON_TYPE, nullable=True),
        sa.Column("cost_pusd", sa.BigInteger(), nullable=True),
        sa.Column("sync_cost_pusd", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("batch_id", "provider_key", name="pk_item_results"),
    )
    columns = ", ".join(_COPIED)
    # One row per (batch, key): an item's own batch holds it once.
    op.execute(f"""
        INSERT INTO item_results (batch_id, provider_key, outcome, status, {columns})
        SELECT batch_id, provider_key, status, status, {columns} FROM items
        WHERE batch_id IS NOT NULL AND (response IS NOT NULL OR output_text IS NOT NULL)""")
    with op.batch_alter_table("items") as batch:
        batch.drop_column("response")
        batch.drop_column("output_text")


def downgrade() -> None:
    with op.batch_alter_table("items") as batch:
        batch.add_column(sa.Column("response", JSON_TYPE, nullable=True))
        batch.add_column(sa.Column("output_text", sa.Text(), nullable=True))
    for column in ("response", "output_text"):
        op.execute(f"""
            UPDATE items SET {column} = (SELECT r.{column} FROM item_results AS r
              WHERE r.batch_id = items.batch_id AND r.provider_key = items.provider_key)
            WHERE batch_id IS NOT NULL""")
    op.drop_table("item_results")
