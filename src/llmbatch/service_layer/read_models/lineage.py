"""Read model of a lineage's merged results: one record per input line of the job a user
submitted, taken from the latest attempt at it among that job and all its retries (so a line
that failed first and succeeded in a retry reads as succeeded, once)."""

from __future__ import annotations

from collections.abc import Iterator

from llmbatch.bootstrap import Runtime
from llmbatch.db.lineage_queries import latest_results, lineage_job_ids
from llmbatch.db.read_queries import RESULT_COLUMNS, reading
from llmbatch.domain.states import ItemStatus
from llmbatch.service_layer.read_models.items import RESULT_CHUNK, usage_of, usd_of
from llmbatch.service_layer.read_models.jobs import require_job
from llmbatch.service_layer.read_models.values import ResultRecord

__all__ = ["lineage_results"]


def lineage_results(rt: Runtime, job_id: str, *, tenant: str | None = None,
                    chunk: int = RESULT_CHUNK) -> Iterator[ResultRecord]:
    """Merged records of ``job_id``'s whole lineage (any job of it may be named), in input
    order, each naming the job whose attempt it is. ``NotFoundError`` before streaming."""
    with reading(rt.engine) as q:
        job = require_job(q, job_id, tenant)._mapping
        lineage = lineage_job_ids(q.conn, job_id)
    return _stream(rt, lineage, job["provider"], job["model"], chunk)


def _stream(rt: Runtime, lineage: list[str], provider: str, model: str,
            chunk: int) -> Iterator[ResultRecord]:
    after_seq: int | None = None
    while True:
        with reading(rt.engine) as q:
            rows = latest_results(q.conn, lineage, RESULT_COLUMNS, after_seq=after_seq,
                                  limit=chunk)
        if not rows:
            return
        for r in rows:
            yield ResultRecord(
                custom_id=r.custom_id, status=ItemStatus(r.status), output_text=r.output_text,
                finish_reason=r.finish_reason, response=r.response,
                usage=usage_of(r), cost_usd=usd_of(r.cost_pusd), error=r.error,
                provider=provider, model=model,
                attempts=r.attempts, job_id=r.job_id)
        after_seq = rows[-1].seq
