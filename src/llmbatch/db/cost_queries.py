"""Read-side queries of cost accounting: the output history the estimate learns from and the
grouped usage report. Costs are summed in SQL as whole picodollars, so every total is the exact
sum of its items."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, case, func, select

from llmbatch.db.item_view import ITEMS_WITH_RESULTS, settled
from llmbatch.db.tables import items, jobs
from llmbatch.domain.states import ItemStatus

__all__ = ["GROUPS", "TOKEN_KINDS", "output_history", "usage_rows"]

TOKEN_KINDS = ("input_tokens", "cached_tokens", "cache_write_tokens", "cache_write_1h_tokens",
               "output_tokens", "reasoning_tokens")
GROUPS = ("provider", "model", "tenant", "day")


def output_history(conn: Connection, provider: str, model: str, limit: int = 10_000, *,
                   tenant: str | None = None) -> tuple[float | None, int]:
    """Mean output tokens of the latest ``limit`` succeeded items of this provider and model
    (of ``tenant``'s jobs only, when given: the API never tells one tenant of another's
    work), and how many there were."""
    query = (select(settled.output_tokens)
             .select_from(ITEMS_WITH_RESULTS.join(jobs, jobs.c.id == items.c.job_id))
             .where(jobs.c.provider == provider, jobs.c.model == model,
                    settled.status == str(ItemStatus.SUCCEEDED)))
    if tenant is not None:
        query = query.where(jobs.c.tenant == tenant)
    recent = query.order_by(settled.completed_at.desc()).limit(limit).subquery()
    mean, count = conn.execute(select(func.avg(recent.c.output_tokens), func.count())).one()
    return (None if mean is None else float(mean)), int(count)


def _day(conn: Connection) -> Any:
    if conn.dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", settled.completed_at), "YYYY-MM-DD")
    return func.substr(settled.completed_at, 1, 10)


def usage_rows(conn: Connection, by: Sequence[str], *, start: datetime | None,
               end: datetime | None, tenant: str | None = None) -> list[Any]:
    """One row per group of finished items: the ``by`` columns, ``requests``, ``unpriced``
    (items with usage but no price),
    each token kind, ``cost_pusd`` and ``sync_cost_pusd`` (exact integer sums)."""
    columns = {"provider": jobs.c.provider, "model": jobs.c.model, "tenant": jobs.c.tenant,
               "day": _day(conn)}
    keys = [columns[name].label(name) for name in by]
    query = (select(*keys, func.count().label("requests"),
                    func.coalesce(func.sum(case((and_(
                        settled.cost_pusd.is_(None),
                        settled.input_tokens + settled.output_tokens > 0), 1), else_=0)), 0)
                    .label("unpriced"),
                    *(func.coalesce(func.sum(getattr(settled, k)), 0).label(k)
                      for k in TOKEN_KINDS),
                    func.coalesce(func.sum(settled.cost_pusd), 0).label("cost_pusd"),
                    func.coalesce(func.sum(settled.sync_cost_pusd), 0).label("sync_cost_pusd"))
             .select_from(ITEMS_WITH_RESULTS.join(jobs, jobs.c.id == items.c.job_id))
             .where(settled.completed_at.is_not(None)))
    if start is not None:
        query = query.where(settled.completed_at >= start)
    if end is not None:
        query = query.where(settled.completed_at < end)
    if tenant is not None:
        query = query.where(jobs.c.tenant == tenant)
    if keys:
        query = query.group_by(*keys).order_by(*keys)
    return list(conn.execute(query).all())
