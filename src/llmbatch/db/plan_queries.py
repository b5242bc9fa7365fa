"""Persisting a plan in a constant number of statements, however many batches it makes.

``domain.planning`` decides the runs of items (by ``seq``) that form each batch; this writes
every batch with one executemany (``Repository.add_batches``) and puts every pending item into
its batch without a round trip per batch:

- PostgreSQL: one ``UPDATE`` that scans the job's pending items once and finds each one's run
  by binary search in the array of run starts (``width_bucket``). No join, so no plan that
  statistics could turn around: the items of a job were usually inserted moments ago, their
  statistics say "one row", and a range join then ran the runs inside a scan of the items
  (quadratic: minutes for 10,000 one-item batches);
- SQLite (in process: no round trips) one prepared ``UPDATE`` per run, executed by the driver
  in a loop, each an index range on ``(job_id, seq)`` (the ``+`` keeps SQLite off the
  ``(job_id, status)`` index, which would read every pending item of the job for each run).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from sqlalchemy import Connection, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import Integer, String

from llmbatch.domain.states import ItemStatus, moving

__all__ = ["Run", "queue_runs"]

# (first_seq, last_seq, batch_id): the pending items with first_seq <= seq <= last_seq go
# into that batch. Runs come in ``seq`` order and do not overlap.
Run = tuple[int, int, str]

# Our own status names, written into the statements (an executemany binds no list).
_SOURCES: Final = ", ".join(f"'{s}'" for s in moving(ItemStatus.QUEUED, ItemStatus.PENDING))

_POSTGRES: Final = text(f"""
UPDATE items SET status = :queued, batch_id = (:batch_ids)[width_bucket(seq, :firsts)]
WHERE job_id = :job_id AND status IN ({_SOURCES}) AND seq >= (:firsts)[1]
  AND seq <= (:lasts)[width_bucket(seq, :firsts)]
""").bindparams(bindparam("firsts", type_=ARRAY(Integer)),
                bindparam("lasts", type_=ARRAY(Integer)),
                bindparam("batch_ids", type_=ARRAY(String)))

_SQLITE: Final = text(f"""
UPDATE items SET status = :queued, batch_id = :batch_id
WHERE job_id = :job_id AND +status IN ({_SOURCES}) AND seq BETWEEN :first_seq AND :last_seq
""")


def queue_runs(conn: Connection, job_id: str, runs: Sequence[Run]) -> int:
    """Put each run's pending items into its planned batch; returns how many were queued."""
    if not runs:
        return 0
    params = {"job_id": job_id, "queued": str(ItemStatus.QUEUED)}
    if conn.dialect.name == "postgresql":
        firsts, lasts, batch_ids = (list(column) for column in zip(*runs, strict=True))
        result = conn.execute(_POSTGRES, {**params, "firsts": firsts, "lasts": lasts,
                                          "batch_ids": batch_ids})
        return result.rowcount
    result = conn.execute(_SQLITE, [{**params, "first_seq": first, "last_seq": last,
                                     "batch_id": batch_id} for first, last, batch_id in runs])
    return result.rowcount
