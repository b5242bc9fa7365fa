"""batch failure: the neutral reason a provider failed a batch as a whole

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

``provider_batches.failure`` holds ``BatchFailure.as_dict()`` (kind, retryable, items_ran,
code, message); the quota hold and the settling of unreported items key on its ``kind``
instead of the vendor's error code. Rows written before this revision are converted once:
the two codes older versions stored for a quota refusal and a batch the provider lost become
those kinds, and any other batch-level error code of a batch still waiting to be fetched
becomes a non-retryable failure, which is how it was settled before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# Frozen copy of the column type at this revision (never import app code in a migration).
JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# What revisions before 0005 stored in error_code (a record of old data, not a rule in force).
_LEGACY = {"token_limit_exceeded": ("quota", True, False),
           "provider_lost_batch": ("lost", True, True)}
# Codes the planner itself writes on waiting batches: never a provider's failure.
_OWN_CODES = ("waiting_for_token_quota", "waiting_for_batch_slot", "waiting_after_token_limit")


def upgrade() -> None:
    op.add_column("provider_batches", sa.Column("failure", JSON_TYPE, nullable=True))
    batches = sa.table("provider_batches", sa.column("id", sa.String()),
                       sa.column("status", sa.String()), sa.column("ended_at", sa.DateTime()),
                       sa.column("error", sa.Text()), sa.column("error_code", sa.String()),
                       sa.column("failure", JSON_TYPE))
    conn = op.get_bind()
    rows = conn.execute(sa.select(batches.c.id, batches.c.status, batches.c.error,
                                  batches.c.error_code)
                        .where(batches.c.ended_at.is_not(None),
                               batches.c.error_code.is_not(None),
                               batches.c.error_code.not_in(_OWN_CODES))).all()
    for batch_id, status, error, code in rows:
        if code in _LEGACY:
            kind, retryable, items_ran = _LEGACY[code]
        elif status == "ended":
            kind, retryable, items_ran = "other", False, False
        else:
            continue
        conn.execute(sa.update(batches).where(batches.c.id == batch_id).values(failure={
            "kind": kind, "message": error or code, "retryable": retryable,
            "items_ran": items_ran, "code": code}))


def downgrade() -> None:
    op.drop_column("provider_batches", "failure")
