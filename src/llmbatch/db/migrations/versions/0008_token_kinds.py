"""token kinds, exact costs and budgets

Revision ID: 0008_token_kinds
Revises: 0005
Create Date: 2026-11-30

Items keep every token kind (cache writes and their one-hour class beside the existing input,
cached, output and reasoning counts) and their cost as whole picodollars, both the batch price
billed and the synchronous price the same tokens would have cost (exact sums on every backend;
the float ``cost_usd`` is converted and dropped), plus the upper bound of their batch cost
reserved against budgets. Budgets: one ledger row per scope (a tenant's month, a job), locked
while a batch reserves, and one reservation row per provider batch.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision = "0008_token_kinds"
down_revision = "0007_webhooks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("items") as batch:
        batch.add_column(sa.Column("cache_write_tokens", sa.Integer(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("cache_write_1h_tokens", sa.Integer(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("cost_pusd", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("sync_cost_pusd", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("cost_bound_pusd", sa.BigInteger(), nullable=True))
    items = sa.table("items", sa.column("cost_usd", sa.Float()),
                     sa.column("cost_pusd", sa.BigInteger()))
    op.execute(sa.update(items).where(items.c.cost_usd.is_not(None))
               .values(cost_pusd=sa.cast(sa.func.round(items.c.cost_usd * 1e12), sa.BigInteger)))
    with op.batch_alter_table("items") as batch:
        batch.drop_column("cost_usd")
    op.create_table(
        "budget_ledgers",
        sa.Column("scope", sa.String(200), primary_key=True),
        sa.Column("limit_pusd", sa.BigInteger(), nullable=True),
        sa.Column("committed_pusd", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "budget_reservations",
        sa.Column("batch_id", sa.String(40), primary_key=True),
        sa.Column("job_id", sa.String(40), sa.ForeignKey("jobs.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("scopes", JSON_TYPE, nullable=False),
        sa.Column("reserved_pusd", sa.BigInteger(), nullable=False),
        sa.Column("actual_pusd", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_budget_reservations_job_id", "budget_reservations", ["job_id"])


def downgrade() -> None:
    op.drop_index("ix_budget_reservations_job_id", "budget_reservations")
    op.drop_table("budget_reservations")
    op.drop_table("budget_ledgers")
    with op.batch_alter_table("items") as batch:
        batch.add_column(sa.Column("cost_usd", sa.Float(), nullable=True))
    items = sa.table("items", sa.column("cost_usd", sa.Float()),
                     sa.column("cost_pusd", sa.BigInteger()))
    op.execute(sa.update(items).where(items.c.cost_pusd.is_not(None))
               .values(cost_usd=sa.cast(items.c.cost_pusd, sa.Float) / 1e12))
    with op.batch_alter_table("items") as batch:
        for name in ("cost_bound_pusd", "sync_cost_pusd", "cost_pusd", "cache_write_1h_tokens",
                     "cache_write_tokens"):
            batch.drop_column(name)
