"""Queries over a job's *lineage*: the job a user submitted and every retry made from it, or
from its retries. An input line (``seq``) may then have several attempts, one per job that
carried it; the *latest* is the item row inserted last (the highest ``items.id``), because a
retry copies items after they ended in the job it retries.

What these queries answer is what keeps a retry from paying twice: an input line is sent
again only when its latest attempt anywhere in the lineage did not succeed, and is not
still running in another retry.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Select, func, insert, literal, select

from llmbatch.db.item_queries import AnyRow
from llmbatch.db.item_view import ITEMS_WITH_RESULTS, settled
from llmbatch.db.tables import items, jobs
from llmbatch.domain.states import ItemStatus

__all__ = [
    "copy_latest_for_retry",
    "latest_results",
    "latest_status_counts",
    "lineage_job_ids",
    "lineage_root",
]


def lineage_root(conn: Connection, job_id: str) -> str:
    """The job the lineage started from (following ``parent_job_id`` up)."""
    current = job_id
    seen = {current}
    while True:
        parent = conn.execute(select(jobs.c.parent_job_id)
                              .where(jobs.c.id == current)).scalar_one_or_none()
        if parent is None or parent in seen:
            return current
        seen.add(parent)
        current = parent


def lineage_job_ids(conn: Connection, job_id: str) -> list[str]:
    """Every job of ``job_id``'s lineage, the root first, then children as created."""
    root = lineage_root(conn, job_id)
    found = [root]
    frontier = [root]
    while frontier:
        rows = conn.execute(select(jobs.c.id).where(jobs.c.parent_job_id.in_(frontier))
                            .order_by(jobs.c.created_at, jobs.c.id)).scalars().all()
        frontier = [r for r in rows if r not in found]
        found.extend(frontier)
    return found


def _latest(lineage: Sequence[str]) -> Any:
    """Per input line, the lineage's latest item (``rank == 1``)."""
    rank = func.row_number().over(partition_by=items.c.seq, order_by=items.c.id.desc())
    return (select(items.c.id, items.c.seq, settled.status, rank.label("rank"))
            .select_from(ITEMS_WITH_RESULTS)
            .where(items.c.job_id.in_(list(lineage))).subquery())


def _of_job(job_id: str, statuses: Iterable[ItemStatus]) -> Select[Any]:
    return (select(items.c.seq).select_from(ITEMS_WITH_RESULTS)
            .where(items.c.job_id == job_id, settled.status.in_([str(s) for s in statuses])))


def latest_status_counts(conn: Connection, lineage: Sequence[str], job_id: str,
                         statuses: Iterable[ItemStatus]) -> dict[ItemStatus, int]:
    """For the items of ``job_id`` in ``statuses``: how many have their latest attempt in the
    lineage in each status (their own status unless a later retry carried them)."""
    latest = _latest(lineage)
    query = (select(latest.c.status, func.count())
             .where(latest.c.rank == 1, latest.c.seq.in_(_of_job(job_id, statuses)))
             .group_by(latest.c.status))
    return {ItemStatus(s): int(n) for s, n in conn.execute(query).all()}


def copy_latest_for_retry(conn: Connection, lineage: Sequence[str], parent_id: str,
                          child_id: str, statuses: Iterable[ItemStatus]) -> int:
    """Copy into ``child_id``, as fresh pending items, the items of ``parent_id`` in
    ``statuses`` whose latest attempt in the lineage is in ``statuses`` too (one INSERT ...
    SELECT, keeping ``seq`` so that results keep the input order, and each item's cost bound,
    which its batch reserves against the budgets). The child job is inserted before, in the
    same transaction: nothing else ties an item to its job (migration 0015)."""
    wanted = list(statuses)
    latest = _latest(lineage)
    chosen = select(latest.c.id).where(
        latest.c.rank == 1, latest.c.status.in_([str(s) for s in wanted]),
        latest.c.seq.in_(_of_job(parent_id, wanted)))
    src = select(
        literal(child_id), items.c.seq, items.c.custom_id, items.c.provider_key,
        items.c.request, items.c.wire_bytes, items.c.estimated_tokens,
        items.c.cost_bound_pusd, literal(str(ItemStatus.PENDING)), literal(0),
    ).where(items.c.id.in_(chosen))
    res = conn.execute(insert(items).from_select(
        ["job_id", "seq", "custom_id", "provider_key", "request", "wire_bytes",
         "estimated_tokens", "cost_bound_pusd", "status", "attempts"], src))
    return res.rowcount


def latest_results(conn: Connection, lineage: Sequence[str], columns: Sequence[Any], *,
                   after_seq: int | None, limit: int) -> list[AnyRow]:
    """Up to ``limit`` input lines after ``after_seq``, each as its latest attempt's item
    (with ``columns`` and the ``job_id`` that carried it), in input order."""
    latest = _latest(lineage)
    chosen = select(latest.c.id).where(latest.c.rank == 1)
    if after_seq is not None:
        chosen = chosen.where(latest.c.seq > after_seq)
    query = (select(*columns, items.c.job_id).select_from(ITEMS_WITH_RESULTS)
             .where(items.c.id.in_(chosen))
             .order_by(items.c.seq).limit(limit))
    return list(conn.execute(query).all())
