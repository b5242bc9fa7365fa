"""Budgets that hold across any number of workers and API processes.

- At submit (``check_new_job``): the job's upper bound (the sum of its requests' bounds,
  ``estimates.item_bound`` priced at the batch rate) must fit its ``--max-cost``, else the job
  is refused with the figures; against the tenant's monthly budget it is refused, or accepted
  to wait, as ``cost.budgets.on_exceed`` says. Nothing is reserved yet.
- Before a batch goes to its provider (``reserve``, in the submission transaction, after the
  provider-limit gate): its upper bound is reserved on the job's and the tenant's ledgers,
  locked row by row (``SELECT ... FOR UPDATE``), so two workers can never both spend the last
  dollar. A batch that does not fit waits (``waiting_for_budget``) or fails with the figures.
- When the batch's results are stored (``settle``) the reservation becomes the actual cost
  (the exact sum of its items' costs); a batch that never went gives it back (``release``).
  An abandoned batch keeps its reservation: it may still run, and bill, at the provider.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import structlog

from llmbatch.bootstrap import Runtime
from llmbatch.domain.batch import ProviderBatch
from llmbatch.domain.budgets import BudgetShortfall, job_scope, shortfall, tenant_scope
from llmbatch.errors import InputError
from llmbatch.pricing import to_pusd
from llmbatch.service_layer.unit_of_work import UnitOfWork

__all__ = ["BudgetExceededError", "budgets_apply", "check_new_job", "release", "reserve",
           "settle"]

log = structlog.get_logger("llmbatch.budgets")


class BudgetExceededError(InputError):
    """A job whose upper-bound cost does not fit its budget; nothing was stored."""


def _limit(value: Decimal | None) -> int | None:
    return None if value is None else to_pusd(value)


def budgets_apply(rt: Runtime, tenant: str, max_cost: Decimal | None) -> bool:
    """Whether a job of ``tenant`` has any budget to hold (so its model must be priced)."""
    return max_cost is not None or rt.config.cost.budgets.limit_for(tenant) is not None


def check_new_job(uow: UnitOfWork, rt: Runtime, *, job_id: str, tenant: str,
                  bound_pusd: int, max_cost: Decimal | None, now: datetime) -> None:
    """Refuse a job that cannot fit (see the module docstring); open its ledger."""
    limits = {job_scope(job_id): _limit(max_cost)}
    tenant_limit = rt.config.cost.budgets.limit_for(tenant)
    scope = tenant_scope(tenant, now)
    ledgers = uow.budgets.lock_ledgers({**limits, scope: _limit(tenant_limit)}, now)
    short = shortfall([ledger for ledger in ledgers if ledger.scope != scope], bound_pusd)
    if short is None and rt.config.cost.budgets.on_exceed == "refuse":
        short = shortfall(ledgers, bound_pusd)
    if short is not None:
        raise BudgetExceededError(f"job refused: {short.message}", field="max_cost"
                                  if short.scope.startswith("job:") else "tenant")


def reserve(uow: UnitOfWork, rt: Runtime, batch: ProviderBatch, tenant: str,
            now: datetime) -> BudgetShortfall | None:
    """Reserve ``batch``'s upper bound, or say why it does not fit (nothing reserved then).
    A batch that holds a reservation already (a re-submission) keeps it."""
    if uow.budgets.reservation(batch.id) is not None:
        return None
    scope = tenant_scope(tenant, now)
    limits = {job_scope(batch.job_id): uow.budgets.stored_limit(job_scope(batch.job_id)),
              scope: _limit(rt.config.cost.budgets.limit_for(tenant))}
    ledgers = uow.budgets.lock_ledgers(limits, now)
    bound = uow.budgets.batch_bound(batch.id)
    short = shortfall(ledgers, bound)
    if short is not None:
        return short
    uow.budgets.add(sorted(limits), bound, now)
    uow.budgets.add_reservation(batch.id, batch.job_id, sorted(limits), bound, now)
    return None


def settle(uow: UnitOfWork, batch_id: str, now: datetime) -> None:
    """The batch's reservation becomes its actual cost."""
    actual = uow.budgets.batch_actual(batch_id)
    change = uow.budgets.close_reservation(batch_id, actual_pusd=actual, now=now)
    if change is not None:
        log.info("llmbatch.budget.settled", batch_id=batch_id, actual_pusd=actual,
                 returned_pusd=-change)
        if change < 0:  # money came back: batches waiting for budget look again now
            uow.budgets.wake_waiting(now)


def release(uow: UnitOfWork, batch_id: str, now: datetime) -> None:
    """A batch that never went gives its reservation back."""
    change = uow.budgets.close_reservation(batch_id, actual_pusd=None, now=now)
    if change:
        uow.budgets.wake_waiting(now)
