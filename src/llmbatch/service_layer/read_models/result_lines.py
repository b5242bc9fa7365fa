"""Read model of a job's results as JSON lines, for downloads (``GET /jobs/{id}/results``).

The same objects ``job_results`` yields as ``ResultRecord.as_dict()``, written straight to
text: each item's stored ``response`` and ``error`` JSON is spliced in as the database holds
it instead of being decoded into Python objects and encoded again, which is most of the cost
of a line. So a download runs several times faster than ``job_results`` + ``json.dumps`` and
says the same (the JSON values are equal; only insignificant spacing or escaping may differ).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from llmbatch.bootstrap import Runtime
from llmbatch.db.item_queries import AnyRow
from llmbatch.db.read_queries import raw_results, reading
from llmbatch.pricing import from_pusd
from llmbatch.service_layer.read_models.items import RESULT_CHUNK
from llmbatch.service_layer.read_models.jobs import require_job
from llmbatch.service_layer.read_models.values import ItemAttempt

__all__ = ["job_result_lines"]

_string = json.encoder.encode_basestring_ascii


def job_result_lines(rt: Runtime, job_id: str, *, tenant: str | None = None,
                     chunk: int = RESULT_CHUNK) -> Iterator[str]:
    """One JSON text per input line (no newline), in input order. The job is looked up now
    (``NotFoundError`` before anything is streamed)."""
    with reading(rt.engine) as q:
        job = require_job(q, job_id, tenant)._mapping
    tail = f', "provider": {_string(job["provider"])}, "model": {_string(job["model"])}'
    return _lines(rt, job_id, tail, chunk)


def _lines(rt: Runtime, job_id: str, tail: str, chunk: int) -> Iterator[str]:
    after_seq: int | None = None
    while True:
        with reading(rt.engine) as q:
            rows = raw_results(q.conn, job_id, after_seq=after_seq, limit=chunk)
            attempts = q.attempts(job_id, rows[0].seq, rows[-1].seq) if rows else []
        if not rows:
            return
        history: dict[int, list[dict[str, object]]] = {}
        for a in attempts:
            history.setdefault(a.seq, []).append(ItemAttempt(
                attempt=a.attempt, batch_id=a.batch_id, outcome=a.outcome, error=a.error,
                at=a.at).as_dict())
        for r in rows:
            yield _line(r, tail, history.get(r.seq))
        after_seq = rows[-1].seq


def _line(row: AnyRow, tail: str, history: list[dict[str, object]] | None) -> str:
    # Unpacked by position (the order of ``raw_results``' columns): a named lookup per field
    # on a Row costs as much as writing the field.
    (_seq, custom_id, status, output_text, finish_reason, response, input_tokens, output_tokens,
     cached_tokens, reasoning_tokens, cache_write_tokens, cache_write_1h_tokens, cost_pusd,
     error, attempts) = row
    return (f'{{"custom_id": {_string(custom_id)}, "status": {_string(status)}, '
            f'"output_text": {"null" if output_text is None else _string(output_text)}, '
            f'"finish_reason": {"null" if finish_reason is None else _string(finish_reason)}, '
            f'"response": {response or "null"}, '
            f'"usage": {{"input_tokens": {input_tokens:d}, "output_tokens": {output_tokens:d}, '
            f'"cached_tokens": {cached_tokens:d}, "reasoning_tokens": {reasoning_tokens:d}, '
            f'"cache_write_tokens": {cache_write_tokens:d}, '
            f'"cache_write_1h_tokens": {cache_write_1h_tokens:d}}}, '
            f'"cost_usd": {"null" if cost_pusd is None else _string(str(from_pusd(cost_pusd)))}, '
            f'"error": {error or "null"}{tail}, "attempts": {attempts:d}, '
            f'"history": {json.dumps(history) if history else "[]"}}}')
