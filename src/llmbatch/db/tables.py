"""SQLAlchemy 2 Core tables. The schema is owned by Alembic (``db/migrations``); these
definitions are what the repository queries and what autogenerate compares against.

Core, not ORM: items are read and written in bulk (executemany), never one object at a time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

__all__ = ["api_keys", "budget_ledgers", "budget_reservations", "events", "item_attempts",
           "item_results", "items",
           "jobs", "metadata", "provider_batches", "provider_rate_buckets", "provider_slots",
           "provider_webhook_receipts",
           "submit_journal", "webhook_deliveries", "webhook_outbox"]


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use UTC-aware datetimes")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        moment: datetime = value
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")

metadata = MetaData(naming_convention={
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

jobs = Table(
    "jobs", metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant", String(100), nullable=False, default="default"),
    Column("name", String(200)),
    Column("provider", String(50), nullable=False),
    Column("model", String(200), nullable=False),
    Column("endpoint", String(20), nullable=False),
    Column("status", String(30), nullable=False),
    Column("item_count", Integer, nullable=False),
    Column("idempotency_key", String(200)),
    Column("content_hash", String(64)),
    Column("parent_job_id", String(40), ForeignKey("jobs.id")),
    Column("config_snapshot", JSONType, nullable=False, default=dict),
    Column("metadata", JSONType, nullable=False, default=dict),
    Column("error", Text),
    Column("webhook_url", Text),  # where terminal events go (llmbatch.webhooks)
    Column("created_at", UTCDateTime, nullable=False),
    Column("submitted_at", UTCDateTime),
    Column("completed_at", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("tenant", "idempotency_key", name="uq_jobs_tenant_idempotency_key"),
    Index("ix_jobs_status_created", "status", "created_at"),
    Index("ix_jobs_tenant_created", "tenant", "created_at"),
)

provider_batches = Table(
    "provider_batches", metadata,
    Column("id", String(40), primary_key=True),
    Column("job_id", String(40), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("provider", String(50), nullable=False),
    Column("model", String(200), nullable=False),
    Column("status", String(30), nullable=False),
    Column("attempt", Integer, nullable=False, default=1),
    Column("item_count", Integer, nullable=False),
    Column("byte_count", BigInteger, nullable=False),
    # Sum of the items' estimates: what this batch holds of the model's enqueued-token quota.
    Column("estimated_tokens", BigInteger, nullable=False, default=0, server_default="0"),
    Column("provider_batch_id", String(200)),
    Column("provider_status", String(50)),
    Column("input_file_id", String(200)),
    Column("result_refs", JSONType, nullable=False, default=dict),
    Column("request_counts", JSONType, nullable=False, default=dict),
    Column("lease_owner", String(200)),
    Column("lease_until", UTCDateTime),
    Column("next_poll_at", UTCDateTime),  # also "not before" for a delayed (re)submission
    Column("dispatched_at", UTCDateTime),  # when the tick last enqueued work for it
    Column("poll_count", Integer, nullable=False, default=0),
    Column("submit_attempts", Integer, nullable=False, default=0),
    Column("call_failures", Integer, nullable=False, default=0),  # in a row, for backoff
    Column("cancel_reason", String(100)),  # set when llmbatch itself decides to cancel it
    Column("error", Text),
    Column("error_code", String(100)),
    # domain.models.BatchFailure.as_dict() of a batch the provider failed as a whole.
    Column("failure", JSONType),
    Column("created_at", UTCDateTime, nullable=False),
    Column("submitted_at", UTCDateTime),
    Column("ended_at", UTCDateTime),
    Column("fetched_at", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
    # What became of the batch's data at the provider after its results were stored
    # (service_layer.provider_data): pending, deleted, kept, failed; NULL before 0009.
    Column("cleanup_state", String(20)),
    Column("cleanup_attempts", Integer, nullable=False, default=0, server_default="0"),
    # Per status, the items, tokens and costs of this batch's rows in ``item_results``, kept
    # by the fetch chunk by chunk (db.result_totals; migration 0013).
    Column("result_totals", JSONType),
    Index("ix_provider_batches_job_id", "job_id"),
    Index("ix_provider_batches_status_next_poll_at", "status", "next_poll_at"),
    # A provider's webhook names the batch by its id (db.early_polls).
    Index("ix_provider_batches_provider_batch_id", "provider_batch_id", "provider"),
)

items = Table(
    "items", metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
           autoincrement=True),
    # No foreign key (migration 0015): checked for every row a job creation writes, it told
    # nothing new (the job is inserted first, in the same transaction); a trigger on ``jobs``
    # deletes a deleted job's items, as the cascade did.
    Column("job_id", String(40), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("custom_id", String(500), nullable=False),
    Column("provider_key", String(500), nullable=False),
    Column("request", JSONType, nullable=False),
    Column("wire_bytes", Integer, nullable=False),
    Column("estimated_tokens", Integer, nullable=False, default=0, server_default="0"),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("batch_id", String(40), ForeignKey("provider_batches.id")),
    Column("response", JSONType),
    Column("output_text", Text),
    Column("finish_reason", String(50)),
    Column("input_tokens", Integer, nullable=False, default=0),
    Column("output_tokens", Integer, nullable=False, default=0),
    Column("cached_tokens", Integer, nullable=False, default=0),
    Column("reasoning_tokens", Integer, nullable=False, default=0),
    Column("cache_write_tokens", Integer, nullable=False, default=0, server_default="0"),
    Column("cache_write_1h_tokens", Integer, nullable=False, default=0, server_default="0"),
    # Costs in whole picodollars (llmbatch.pricing): the batch price billed, what the same
    # tokens cost synchronously, and the upper bound reserved against budgets at create time.
    Column("cost_pusd", BigInteger),
    Column("sync_cost_pusd", BigInteger),
    Column("cost_bound_pusd", BigInteger),
    Column("error", JSONType),
    Column("completed_at", UTCDateTime),
    UniqueConstraint("job_id", "seq", name="uq_items_job_id_seq"),
    UniqueConstraint("job_id", "custom_id", name="uq_items_job_id_custom_id"),
    Index("ix_items_job_id_status", "job_id", "status"),
    # Partial: an item has no batch until planning, and every read by batch says which one,
    # so job creation writes no entry here (migration 0012).
    Index("ix_items_batch_id_provider_key", "batch_id", "provider_key",
          sqlite_where=text("batch_id IS NOT NULL"),
          postgresql_where=text("batch_id IS NOT NULL")),
)

# A stored result of an item, written once by the fetch and never updated (migration 0013):
# inserting a narrow row is a fraction of the cost of rewriting the wide item row (its request
# and, on PostgreSQL, an entry in each of its indexes). The item keeps status ``submitted``
# and its batch; readers see the result through ``db.item_view``, which joins on the batch
# and provider key. Results that send an item back to pending update the item instead.
# ``batch_id`` has no foreign key (migration 0014: PostgreSQL checked it for every row): the
# fetch checks the batch once per chunk (``result_totals.write_totals``), and a trigger on
# ``provider_batches`` deletes a deleted batch's results.
item_results = Table(
    "item_results", metadata,
    Column("batch_id", String(40), nullable=False),
    Column("provider_key", String(500), nullable=False),
    Column("status", String(20), nullable=False),
    Column("response", JSONType),
    Column("output_text", Text),
    Column("finish_reason", String(50)),
    Column("input_tokens", Integer, nullable=False),
    Column("output_tokens", Integer, nullable=False),
    Column("cached_tokens", Integer, nullable=False),
    Column("reasoning_tokens", Integer, nullable=False),
    Column("cache_write_tokens", Integer, nullable=False),
    Column("cache_write_1h_tokens", Integer, nullable=False),
    Column("error", JSONType),
    Column("cost_pusd", BigInteger),
    Column("sync_cost_pusd", BigInteger),
    Column("completed_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("batch_id", "provider_key", name="pk_item_results"),
)

events = Table(
    "events", metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
           autoincrement=True),
    Column("job_id", String(40), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("batch_id", String(40)),
    Column("type", String(100), nullable=False),
    Column("from_status", String(30)),
    Column("to_status", String(30)),
    Column("at", UTCDateTime, nullable=False),
    Column("data", JSONType, nullable=False, default=dict),
    Index("ix_events_job_id_id", "job_id", "id"),
)

# One row per provider batch an item rode in that did not end in success for it: the item's
# history across re-batches (the successful attempt is the item row itself).
item_attempts = Table(
    "item_attempts", metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
           autoincrement=True),
    Column("job_id", String(40), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("batch_id", String(40), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("outcome", String(20), nullable=False),
    Column("error", JSONType),
    Column("at", UTCDateTime, nullable=False),
    Index("ix_item_attempts_job_id_seq", "job_id", "seq"),
)

# The durable submission journal (llmbatch.domain.journal): one row per tag (our batch id)
# for providers whose batches carry no tag. Times are Unix seconds, as the adapter keeps them.
submit_journal = Table(
    "submit_journal", metadata,
    Column("tag", String(40), primary_key=True),
    Column("count", Integer, nullable=False),
    Column("keys_digest", String(128), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float),
    Column("batch_id", String(200)),
    Column("ambiguous", Boolean, nullable=False, default=False),
    Column("excluded", JSONType, nullable=False, default=list),
)

# Concurrency leases on a provider's API: row ``slot`` of ``provider`` is held by ``owner`` until
# ``lease_until``. Taken with one conditional UPDATE (free or expired), so a worker that dies
# holding one loses it when the lease runs out. Rows are created on first use.
provider_slots = Table(
    "provider_slots", metadata,
    Column("provider", String(50), primary_key=True),
    Column("slot", Integer, primary_key=True, autoincrement=False),
    Column("owner", String(200)),
    Column("lease_until", UTCDateTime),
)

# One token bucket per provider for calls per minute. Times are Unix seconds (a float) so the
# refill is plain arithmetic inside one conditional UPDATE on SQLite and PostgreSQL alike.
provider_rate_buckets = Table(
    "provider_rate_buckets", metadata,
    Column("provider", String(50), primary_key=True),
    Column("tokens", Float, nullable=False),
    Column("refilled_at", Float, nullable=False),
)

# API keys (``service_layer.api_keys``): only the SHA-256 of the secret is kept; ``prefix`` is
# the public part of the key that finds its row. ``admin`` keys read every tenant.
api_keys = Table(
    "api_keys", metadata,
    Column("id", String(40), primary_key=True),
    Column("prefix", String(40), nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("tenant", String(100), nullable=False),
    Column("name", String(200)),
    Column("admin", Boolean, nullable=False, default=False, server_default=false()),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
    UniqueConstraint("prefix", name="uq_api_keys_prefix"),
)

# The webhook outbox (llmbatch.webhooks): one row per event to deliver, written in the same
# transaction as the state change it announces; ``id`` is the Standard Webhooks message id,
# the same on every attempt, so a receiver deduplicates on it. Claimed by a lease like batches.
webhook_outbox = Table(
    "webhook_outbox", metadata,
    Column("id", String(40), primary_key=True),
    Column("job_id", String(40), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("url", Text, nullable=False),
    Column("type", String(100), nullable=False),
    Column("payload", JSONType, nullable=False),
    Column("status", String(20), nullable=False),  # pending, delivered, failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("lease_until", UTCDateTime),
    Column("last_error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("delivered_at", UTCDateTime),
    Index("ix_webhook_outbox_status_next_attempt_at", "status", "next_attempt_at"),
    Index("ix_webhook_outbox_job_id", "job_id"),
)

# Every delivery attempt: when, what the receiver answered (or why nothing was sent).
webhook_deliveries = Table(
    "webhook_deliveries", metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
           autoincrement=True),
    Column("event_id", String(40), ForeignKey("webhook_outbox.id", ondelete="CASCADE"),
           nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("status_code", Integer),
    Column("error", Text),
    Column("duration_ms", Integer, nullable=False),
    Index("ix_webhook_deliveries_event_id", "event_id"),
)

# Budgets (service_layer.budgets): one row per scope (``tenant:<name>:<YYYY-MM>`` or
# ``job:<id>``) holding its limit and what is committed (held reservations plus settled
# costs); a batch reserving locks the rows of its scopes (SELECT ... FOR UPDATE).
budget_ledgers = Table(
    "budget_ledgers", metadata,
    Column("scope", String(200), primary_key=True),
    Column("limit_pusd", BigInteger),
    Column("committed_pusd", BigInteger, nullable=False, default=0, server_default="0"),
    Column("updated_at", UTCDateTime, nullable=False),
)

# One reservation per provider batch: its upper-bound cost while it runs (``held``), then its
# actual cost (``settled``), or nothing if it never went (``released``).
budget_reservations = Table(
    "budget_reservations", metadata,
    Column("batch_id", String(40), primary_key=True),
    Column("job_id", String(40), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("scopes", JSONType, nullable=False),
    Column("reserved_pusd", BigInteger, nullable=False),
    Column("actual_pusd", BigInteger),
    Column("status", String(20), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("settled_at", UTCDateTime),
    Index("ix_budget_reservations_job_id", "job_id"),
)

# The ``webhook-id`` of each provider webhook delivery acted on: a repeat of it is acknowledged
# without a second wake-up (service_layer.provider_webhooks); rows past the vendors' retry
# window are deleted as new ones arrive.
provider_webhook_receipts = Table(
    "provider_webhook_receipts", metadata,
    Column("provider", String(50), primary_key=True),
    Column("delivery_id", String(200), primary_key=True),
    Column("received_at", UTCDateTime, nullable=False),
    Index("ix_provider_webhook_receipts_received_at", "received_at"),
)
