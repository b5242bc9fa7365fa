"""Queries behind the provider limits: call slots, the calls-per-minute bucket, and what is in
flight at a provider. Kept apart from ``repository`` because they guard API calls rather than
move jobs along.

Every acquisition is one conditional UPDATE (``WHERE`` free / ``WHERE`` enough tokens), so
two processes on one SQLite file or many machines on PostgreSQL can never both win the same
slot or token.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Table, and_, case, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from llmbatch.db.tables import items, provider_batches, provider_rate_buckets, provider_slots
from llmbatch.domain.models import FailureKind
from llmbatch.domain.states import BatchStatus, ItemStatus, moving
from llmbatch.errors import ConfigError

__all__ = ["AT_PROVIDER", "LimitsRepository"]

# Batches that hold a place in the provider's queue (and our in-flight caps).
AT_PROVIDER = (BatchStatus.SUBMITTING, BatchStatus.IN_PROGRESS, BatchStatus.CANCELLING)


class LimitsRepository:
    """Limit bookkeeping on one connection, inside the caller's (short) transaction."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def _insert_ignoring_duplicates(self, table: Table, rows: list[dict[str, Any]]) -> None:
        """Rows that another process inserted first are left alone (both dialects)."""
        dialect = self.conn.dialect.name
        if dialect == "postgresql":
            self.conn.execute(postgresql.insert(table).on_conflict_do_nothing(), rows)
        elif dialect == "sqlite":
            self.conn.execute(sqlite.insert(table).on_conflict_do_nothing(), rows)
        else:  # pragma: no cover - only the two supported databases
            raise ConfigError(f"database {dialect!r} is not supported (SQLite or PostgreSQL)")

    # ---- concurrency slots ----------------------------------------------------------------
    def take_slot(self, provider: str, cap: int, owner: str, now: datetime,
                  lease_s: float) -> int | None:
        """Lease one of the provider's ``cap`` slots that is free or expired; ``None`` if all
        are held. Slot rows are created on first use."""
        s = provider_slots.c
        free = or_(s.lease_until.is_(None), s.lease_until < now)
        for _ in range(2):
            candidates = list(self.conn.execute(
                select(s.slot).where(s.provider == provider, s.slot < cap, free)
                .order_by(s.slot)).scalars())
            for slot in candidates:
                res = self.conn.execute(update(provider_slots).where(
                    s.provider == provider, s.slot == slot, free,
                ).values(owner=owner, lease_until=now + timedelta(seconds=lease_s)))
                if res.rowcount == 1:
                    return int(slot)
            existing = self.conn.execute(select(func.count()).where(
                s.provider == provider, s.slot < cap)).scalar_one()
            if existing >= cap:
                return None
            self._insert_ignoring_duplicates(provider_slots, [
                {"provider": provider, "slot": n, "owner": None, "lease_until": None}
                for n in range(cap)])
        return None

    def renew_slot(self, provider: str, slot: int, owner: str, until: datetime) -> bool:
        """Extend a lease this owner still holds (a long download)."""
        s = provider_slots.c
        res = self.conn.execute(update(provider_slots).where(
            s.provider == provider, s.slot == slot, s.owner == owner).values(lease_until=until))
        return res.rowcount == 1

    def release_slot(self, provider: str, slot: int, owner: str) -> None:
        """Give a slot back; a no-op if the lease expired and someone else took it."""
        s = provider_slots.c
        self.conn.execute(update(provider_slots).where(
            s.provider == provider, s.slot == slot, s.owner == owner,
        ).values(owner=None, lease_until=None))

    def slots_held(self, provider: str, now: datetime) -> int:
        s = provider_slots.c
        return int(self.conn.execute(select(func.count()).where(
            s.provider == provider, s.lease_until.is_not(None), s.lease_until >= now,
        )).scalar_one())

    # ---- calls per minute -----------------------------------------------------------------
    def take_calls(self, provider: str, cost: float, capacity: float, rate_per_s: float,
                   now_s: float) -> float:
        """Take ``cost`` tokens from the provider's bucket. Returns 0.0 if taken, else the
        seconds until enough will have refilled."""
        r = provider_rate_buckets.c
        elapsed = case((r.refilled_at < now_s, now_s - r.refilled_at), else_=0.0)
        refilled = r.tokens + elapsed * rate_per_s
        level = case((refilled > capacity, capacity), else_=refilled)
        for _ in range(2):
            res = self.conn.execute(update(provider_rate_buckets).where(
                r.provider == provider, level >= cost,
            ).values(tokens=level - cost,
                     refilled_at=case((r.refilled_at < now_s, now_s), else_=r.refilled_at)))
            if res.rowcount == 1:
                return 0.0
            row = self.conn.execute(select(r.tokens, r.refilled_at)
                                    .where(r.provider == provider)).first()
            if row is not None:
                current = min(capacity, float(row.tokens)
                              + max(now_s - float(row.refilled_at), 0.0) * rate_per_s)
                return max((cost - current) / rate_per_s, 0.001)
            self._insert_ignoring_duplicates(provider_rate_buckets, [
                {"provider": provider, "tokens": capacity, "refilled_at": now_s}])
        return 0.001

    # ---- what is at the provider ----------------------------------------------------------
    def lock_submissions(self, provider: str) -> None:
        """Serialise submission decisions for one provider until the transaction ends, so
        two workers cannot both see room for one more batch. PostgreSQL: a transaction-level
        advisory lock; SQLite needs none (``BEGIN IMMEDIATE`` already serialises writers)."""
        if self.conn.dialect.name == "postgresql":
            self.conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                              {"key": f"llmbatch.submit.{provider}"})

    def in_flight(self, provider: str, model: str) -> tuple[int, int]:
        """``(estimated tokens of this model's batches, batches of the provider)`` that are
        at the provider: submitting, in progress or cancelling."""
        b = provider_batches.c
        states = [str(s) for s in AT_PROVIDER]
        tokens = self.conn.execute(select(func.coalesce(func.sum(b.estimated_tokens), 0)).where(
            b.provider == provider, b.model == model, b.status.in_(states))).scalar_one()
        count = self.conn.execute(select(func.count()).where(
            b.provider == provider, b.status.in_(states))).scalar_one()
        return int(tokens), int(count)

    def last_quota_failure(self, provider: str, model: str) -> datetime | None:
        """When a batch of this model last ended failed for quota (``FailureKind.QUOTA``)."""
        b = provider_batches.c
        moment: datetime | None = self.conn.execute(select(func.max(b.ended_at)).where(
            b.provider == provider, b.model == model,
            b.failure["kind"].as_string() == str(FailureKind.QUOTA),
        )).scalar_one()
        return moment

    def requeue_unrun_items(self, batch_id: str, error: dict[str, Any]) -> int:
        """Submitted items of a batch the provider refused for quota and never ran: back to
        pending, the attempt they were charged at submission given back."""
        i = items.c
        res = self.conn.execute(update(items).where(
            i.batch_id == batch_id, i.status.in_(moving(ItemStatus.PENDING, ItemStatus.SUBMITTED)),
        ).values(status=str(ItemStatus.PENDING), batch_id=None, error=error,
                 attempts=i.attempts - 1))
        return res.rowcount

    def fail_items_over_tokens(self, job_id: str, max_tokens: int, error: dict[str, Any],
                               now: datetime) -> int:
        """Pending items whose estimate alone exceeds the model's quota (it was lowered after
        the job was created): they can never be sent, so they fail instead of blocking plan."""
        i = items.c
        res = self.conn.execute(update(items).where(
            i.job_id == job_id, i.status.in_(moving(ItemStatus.FAILED, ItemStatus.PENDING)),
            i.estimated_tokens > max_tokens,
        ).values(status=str(ItemStatus.FAILED), error=error, completed_at=now))
        return res.rowcount

    def wake_waiting(self, provider: str, codes: Iterable[str], now: datetime) -> int:
        """Planned batches of ``provider`` waiting for room: due now (an earlier batch ended).

        The rows are locked in id order and locked ones skipped (PostgreSQL; SQLite has one
        writer), as ``budgets.wake_waiting`` does: two batches ending at once otherwise
        updated the same waiting rows in different orders and deadlocked (seen in the budget
        race test's worker logs). A skipped row is being woken or claimed by whoever holds it.
        """
        b = provider_batches.c
        waiting = (select(b.id).where(and_(
            b.provider == provider, b.status == str(BatchStatus.PLANNED),
            b.error_code.in_(list(codes)),
        )).order_by(b.id).with_for_update(skip_locked=True))
        res = self.conn.execute(update(provider_batches).where(
            b.id.in_(waiting.scalar_subquery())).values(next_poll_at=now, dispatched_at=None))
        return res.rowcount
