"""Budget ledgers and reservations (``service_layer.budgets`` decides; this stores).

Ledger rows are locked with ``SELECT ... FOR UPDATE`` on PostgreSQL, always in sorted scope
order so that two reservations never wait on each other crosswise; SQLite needs no row lock
(``BEGIN IMMEDIATE`` already serialises writers).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from llmbatch.db.result_totals import batch_totals
from llmbatch.db.tables import budget_ledgers, budget_reservations, items, provider_batches
from llmbatch.domain.budgets import Ledger
from llmbatch.domain.limits import WaitReason
from llmbatch.domain.states import BatchStatus

__all__ = ["BudgetRepository"]

HELD, SETTLED, RELEASED = "held", "settled", "released"


class BudgetRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def lock_ledgers(self, limits: dict[str, int | None], now: datetime) -> list[Ledger]:
        """The ledgers of ``limits``' scopes, created if missing and locked for the rest of
        the transaction; a limit given here replaces the stored one (config may change)."""
        insert = pg_insert if self.conn.dialect.name == "postgresql" else sqlite_insert
        found = []
        for scope in sorted(limits):
            self.conn.execute(insert(budget_ledgers).values(
                scope=scope, limit_pusd=limits[scope], committed_pusd=0, updated_at=now,
            ).on_conflict_do_nothing(index_elements=["scope"]))
            row = self.conn.execute(select(budget_ledgers.c.limit_pusd,
                                           budget_ledgers.c.committed_pusd)
                                    .where(budget_ledgers.c.scope == scope)
                                    .with_for_update()).one()
            if row.limit_pusd != limits[scope]:
                self.conn.execute(update(budget_ledgers)
                                  .where(budget_ledgers.c.scope == scope)
                                  .values(limit_pusd=limits[scope]))
            found.append(Ledger(scope, limits[scope], int(row.committed_pusd)))
        return found

    def stored_limit(self, scope: str) -> int | None:
        """The limit stored on a scope's ledger (a job's ``--max-cost``), None if none."""
        value = self.conn.execute(select(budget_ledgers.c.limit_pusd)
                                  .where(budget_ledgers.c.scope == scope)).scalar_one_or_none()
        return None if value is None else int(value)

    def add(self, scopes: Sequence[str], amount_pusd: int, now: datetime) -> None:
        """Commit ``amount_pusd`` (negative: give back) to each scope."""
        if amount_pusd == 0 or not scopes:
            return
        self.conn.execute(update(budget_ledgers).where(budget_ledgers.c.scope.in_(list(scopes)))
                          .values(committed_pusd=budget_ledgers.c.committed_pusd + amount_pusd,
                                  updated_at=now))

    def committed(self, scope: str) -> int:
        value = self.conn.execute(select(budget_ledgers.c.committed_pusd)
                                  .where(budget_ledgers.c.scope == scope)).scalar_one_or_none()
        return int(value or 0)

    def reservation(self, batch_id: str) -> Any:
        return self.conn.execute(select(budget_reservations)
                                 .where(budget_reservations.c.batch_id == batch_id)).first()

    def add_reservation(self, batch_id: str, job_id: str, scopes: Sequence[str],
                        amount_pusd: int, now: datetime) -> None:
        self.conn.execute(budget_reservations.insert().values(
            batch_id=batch_id, job_id=job_id, scopes=list(scopes), reserved_pusd=amount_pusd,
            status=HELD, created_at=now))

    def close_reservation(self, batch_id: str, *, actual_pusd: int | None,
                          now: datetime) -> int | None:
        """Settle (``actual_pusd``) or release (None) a held reservation; returns what the
        ledgers must change by, or None when there was nothing held."""
        row = self.reservation(batch_id)
        if row is None or row.status != HELD:
            return None
        actual = actual_pusd if actual_pusd is not None else 0
        self.conn.execute(update(budget_reservations)
                          .where(budget_reservations.c.batch_id == batch_id)
                          .values(status=SETTLED if actual_pusd is not None else RELEASED,
                                  actual_pusd=actual_pusd, settled_at=now))
        self.add(row.scopes, actual - int(row.reserved_pusd), now)
        return actual - int(row.reserved_pusd)

    def batch_bound(self, batch_id: str) -> int:
        """Sum of the upper bounds of a batch's items (their ``cost_bound_pusd``)."""
        value = self.conn.execute(select(func.coalesce(func.sum(items.c.cost_bound_pusd), 0))
                                  .where(items.c.batch_id == batch_id)).scalar_one()
        return int(value)

    def batch_actual(self, batch_id: str) -> int:
        """Sum of the batch costs of the items the batch settled (their ``cost_pusd``)."""
        return batch_totals(self.conn, batch_id)["cost_pusd"]

    def wake_waiting(self, now: datetime) -> int:
        """Planned batches waiting for budget: due now (a reservation gave money back).

        The rows are locked in id order and locked ones skipped (PostgreSQL; SQLite has one
        writer): two fetches settling at once otherwise updated the same rows in different
        orders and deadlocked, and the loser's batch sat out its lease. A skipped row is being
        woken or claimed by whoever holds it.
        """
        b = provider_batches.c
        waiting = (select(b.id).where(b.status == str(BatchStatus.PLANNED),
                                      b.error_code == str(WaitReason.BUDGET))
                   .order_by(b.id).with_for_update(skip_locked=True))
        return self.conn.execute(update(provider_batches).where(b.id.in_(waiting.scalar_subquery()))
                                 .values(next_poll_at=now, dispatched_at=None)).rowcount
