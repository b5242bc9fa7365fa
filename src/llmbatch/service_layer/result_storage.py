"""Storing fetched results so that no single result can block a batch.

Results are made storable before they are written (``domain.storable``: text escaped, values
that cannot be represented failing their item). As a last line of defence, a chunk the
database still refuses is bisected: the halves are written in their own transactions until
the refused results are alone, and each of those fails its item with ``result_unstorable``
(the database's reason) while every other result of the chunk is stored. One bad row among
``n`` costs about ``2 log2 n`` extra transactions, only when it happens.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Final

import structlog

from llmbatch.db.item_queries import is_refused_value
from llmbatch.domain.batch import ProviderBatch
from llmbatch.domain.events import Event, EventType
from llmbatch.domain.models import ItemResult
from llmbatch.domain.storable import (
    StorableResult,
    escape_text,
    unstorable_result,
)

__all__ = ["repair_events", "store_isolating", "store_refused", "unstorable_summary"]

log = structlog.get_logger("llmbatch.results")

_LISTED: Final = 20  # line numbers an event lists (the count says how many there were)
_REASONS: Final = 5  # reasons an event or a batch error spells out


def store_isolating(results: Sequence[StorableResult],
                    write: Callable[[Sequence[StorableResult]], int]) -> int:
    """Write ``results`` with ``write`` (one transaction per call, rolled back when it
    raises); what the database refuses fails its item instead. Items written, in total."""
    try:
        return write(results)
    except Exception as exc:
        if not is_refused_value(exc):
            raise
        return store_refused(results, exc, write)


def store_refused(results: Sequence[StorableResult], exc: Exception,
                  write: Callable[[Sequence[StorableResult]], int]) -> int:
    """``results``, which the database has just refused whole (``exc``), written again in
    halves (``store_isolating``) down to the refused results, each of which fails its item."""
    if len(results) == 1:
        return _fail_refused(results[0].result, exc, write)
    middle = len(results) // 2
    return (store_isolating(results[:middle], write)
            + store_isolating(results[middle:], write))


def _fail_refused(refused: ItemResult, exc: BaseException,
                  write: Callable[[Sequence[StorableResult]], int]) -> int:
    """Write ``refused`` as its item's ``result_unstorable`` failure, with the database's
    reason."""
    reason = escape_text(f"the database refused it: {_first_line(exc)}")
    log.error("llmbatch.batch.result_refused", provider_key=refused.provider_key,
              line=refused.line, error=reason)
    try:
        return write([StorableResult(unstorable_result(refused, reason), problem=reason)])
    except Exception as again:
        if not is_refused_value(again):
            raise
        # Not even the failure could be written (its key, then): the item gets no result
        # and is settled with the items the provider returned no line for.
        log.error("llmbatch.batch.result_dropped", line=refused.line, error=str(again))
        return 0


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def _where(stored: StorableResult) -> str:
    line = stored.result.line
    return f"result line {line}" if line is not None else f"result {stored.result.provider_key}"


def repair_events(batch: ProviderBatch, part: Sequence[StorableResult],
                  now: datetime) -> list[Event]:
    """The events telling an operator which results of ``part`` were changed to be stored:
    ``batch.results_escaped`` (text replaced, items kept) and ``batch.results_unstorable``
    (a success failed, or a failure lost the part that could not be stored)."""
    events = []
    escaped = [s for s in part if s.escaped]
    if escaped:
        events.append(Event(job_id=batch.job_id, batch_id=batch.id,
                            type=EventType.BATCH_RESULTS_ESCAPED, at=now, data={
                                "count": len(escaped),
                                "lines": [s.result.line for s in escaped[:_LISTED]],
                                "replaced_with": "U+FFFD",
                                "why": "NUL or lone surrogates, which the database cannot "
                                       "store as text"}))
    unstorable = [s for s in part if s.problem is not None]
    if unstorable:
        events.append(Event(job_id=batch.job_id, batch_id=batch.id,
                            type=EventType.BATCH_RESULTS_UNSTORABLE, at=now, data={
                                "count": len(unstorable),
                                "lines": [s.result.line for s in unstorable[:_LISTED]],
                                "reasons": [f"{_where(s)}: {s.problem}"
                                            for s in unstorable[:_REASONS]]}))
    return events


def unstorable_summary(problems: Sequence[str]) -> str:
    """The batch's error once its results are in, when some could not be stored as they
    came: how many, and the first few reasons."""
    shown = "; ".join(problems[:_REASONS])
    more = f"; and {len(problems) - _REASONS} more" if len(problems) > _REASONS else ""
    return (f"{len(problems)} result(s) could not be stored as they came (code "
            f"result_unstorable): {shown}{more}")
