"""An item as readers see it: its own row, with its stored result laid over it.

A fetch inserts each result into ``item_results`` and leaves the item's row as it was
(``submitted``, in its batch; see ``db.tables.item_results`` for why). A reader that wants an
item's status, output, usage or cost selects from ``ITEMS_WITH_RESULTS`` and names the columns
of ``settled``: each result column is the stored result's when the item has one for its
current batch, the item row's otherwise (items settled without a line, cancelled, failed
before sending, or settled before migration 0013).

Plain column expressions over one outer join, not a subquery or a database view: both
planners then see ``items`` directly and keep using its indexes for ``job_id`` and
``batch_id``; the join finds each result by its primary key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from sqlalchemy import ColumnElement, and_, case, exists, select, type_coerce

from llmbatch.db.result_stage import SETTLED_FIELDS
from llmbatch.db.result_totals import counts_of
from llmbatch.db.tables import item_results, items
from llmbatch.domain.states import ItemStatus

__all__ = ["ITEMS_WITH_RESULTS", "counts_with_stored_results",
           "has_stored_result", "settled"]

_r = item_results.c
_MATCH: Final = and_(_r.batch_id == items.c.batch_id, _r.provider_key == items.c.provider_key)
ITEMS_WITH_RESULTS: Final = items.outerjoin(item_results, _MATCH)
_STORED: Final = _r.batch_id.is_not(None)


def _overlaid(name: str) -> ColumnElement[Any]:
    column = items.c[name]
    return type_coerce(case((_STORED, _r[name]), else_=column), column.type).label(name)


class _Settled:
    """``items.c`` with the result columns overlaid: ``settled.status``, ``settled.seq``..."""

    def __init__(self) -> None:
        overlaid = {name: _overlaid(name) for name in SETTLED_FIELDS}
        self._columns: dict[str, ColumnElement[Any]] = {
            column.name: overlaid.get(column.name, column) for column in items.c}

    def all(self) -> tuple[ColumnElement[Any], ...]:
        """Every column of ``items``, overlaid: a whole item as a reader sees it."""
        return tuple(self._columns.values())

    def __getattr__(self, name: str) -> ColumnElement[Any]:
        try:
            return self._columns[name]
        except KeyError:
            raise AttributeError(name) from None


settled: Final = _Settled()


def has_stored_result() -> ColumnElement[bool]:
    """``EXISTS`` a stored result for the item of the enclosing ``items`` row (in its current
    batch): a condition for writes that must leave settled items alone."""
    return exists(select(_r.batch_id).where(_MATCH))


def counts_with_stored_results(rows: Iterable[tuple[str, int]],
                               stored: Iterable[Mapping[str, Mapping[str, int]] | None],
                               ) -> dict[str, int]:
    """Items per status from the item rows' own counts (``rows``: status, count) and the
    ``result_totals`` of batches (``db.result_totals``): each stored result is an item row
    still counted as ``submitted`` that has in fact the result's status. Counting this way
    reads the ``(job_id, status)`` index and one row per batch, not a join over every item."""
    counts: dict[str, int] = {}
    for status, n in rows:
        counts[status] = counts.get(status, 0) + int(n)
    submitted = str(ItemStatus.SUBMITTED)
    for totals in stored:
        for status, n in counts_of(totals).items():
            counts[submitted] = counts.get(submitted, 0) - n
            counts[status] = counts.get(status, 0) + n
    return {status: n for status, n in counts.items() if n}
