"""What is kept after a job ends: with ``privacy.retain_requests: false`` the request bodies
of a finished job are dropped (set to ``{}``) in the transaction that finishes it; results,
usage and errors stay."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, select, update

from llmbatch.db.tables import items

__all__ = ["DROPPED", "drop_requests", "requests_dropped"]

DROPPED: dict[str, object] = {}


def drop_requests(conn: Connection, job_ids: Iterable[str]) -> None:
    ids = list(job_ids)
    if ids:
        conn.execute(update(items).where(items.c.job_id.in_(ids)).values(request=DROPPED))


def requests_dropped(conn: Connection, job_id: str) -> bool:
    """Whether the job's request bodies were dropped (its items cannot be sent again)."""
    first = conn.execute(select(items.c.request).where(items.c.job_id == job_id)
                         .order_by(items.c.seq).limit(1)).scalar()
    return first == DROPPED
