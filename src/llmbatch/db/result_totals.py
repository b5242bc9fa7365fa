"""A batch's stored results summed per status, kept on the batch row as the fetch goes.

``provider_batches.result_totals`` is ``{status: {"items": n, "input_tokens": n, ...,
"cost_pusd": n, "sync_cost_pusd": n}}`` over the batch's rows in ``item_results``. The fetch
adds each chunk's tally to its running totals and writes them in the chunk's own transaction
(it alone writes a batch's results, under its lease), so they always match what is stored.
Counting a job's items, settling a batch's budget reservation and the token metrics read
these few numbers instead of aggregating tens of thousands of joined rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from sqlalchemy import Connection, func, select, update

from llmbatch.db.result_stage import ResultRow
from llmbatch.db.tables import items, provider_batches
from llmbatch.domain.states import ItemStatus

__all__ = ["SUMMED", "Totals", "batch_totals", "counts_of", "merged", "stored_totals", "tally",
           "write_totals"]

# The numeric result columns summed per status; "items" counts the rows.
SUMMED: Final = ("input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens",
                 "cache_write_tokens", "cache_write_1h_tokens", "cost_pusd", "sync_cost_pusd")

Totals = dict[str, dict[str, int]]


def tally(rows: Iterable[ResultRow]) -> Totals:
    """Per-status totals of result rows (summed a column at a time: a chunk is a thousand)."""
    by_status: dict[str, list[ResultRow]] = {}
    for row in rows:
        by_status.setdefault(row.status, []).append(row)
    found: Totals = {}
    for status, group in by_status.items():
        columns = list(zip(*group, strict=True))
        found[status] = {"items": len(group), **{
            name: sum(filter(None, columns[_AT[name]])) for name in SUMMED}}
    return found


_AT: Final = {name: ResultRow._fields.index(name) for name in SUMMED}


def merged(*parts: Mapping[str, Mapping[str, int]] | None) -> Totals:
    """The sum of several totals (None counts as empty)."""
    found: Totals = {}
    for part in parts:
        for status, entry in (part or {}).items():
            into = found.setdefault(status, {})
            for name, value in entry.items():
                into[name] = into.get(name, 0) + int(value)
    return found


def counts_of(totals: Mapping[str, Mapping[str, int]] | None) -> dict[str, int]:
    """``status -> items`` of totals."""
    return {status: int(entry.get("items", 0)) for status, entry in (totals or {}).items()}


def stored_totals(conn: Connection, batch_id: str) -> Totals:
    """The batch's totals as stored (empty before its first result)."""
    totals = conn.execute(select(provider_batches.c.result_totals)
                          .where(provider_batches.c.id == batch_id)).scalar_one_or_none()
    return merged(totals)


def write_totals(conn: Connection, batch_id: str, totals: Totals) -> None:
    """Replace the batch's totals: its fetch keeps them running (it alone writes the batch's
    results, under its lease) and writes them with each chunk, in the chunk's transaction.

    Raises ``LookupError`` when the batch is gone, which fails the chunk: ``item_results`` has
    no foreign key to the batch (migration 0014), so this update, which also locks the batch
    row until the chunk commits, is what keeps a chunk from storing results for a batch
    deleted meanwhile (a delete that waits for that lock then deletes the chunk's results
    with the batch, by trigger)."""
    updated = conn.execute(update(provider_batches).where(provider_batches.c.id == batch_id)
                           .values(result_totals=totals)).rowcount
    if updated != 1:
        raise LookupError(f"provider batch {batch_id} is gone: its results are not stored")


def batch_totals(conn: Connection, batch_id: str) -> dict[str, int]:
    """Items, tokens and costs of everything a batch settled: its stored results' totals
    plus the items it settled in their own row (no line from the provider, or settled before
    results had their table). An item with a stored result keeps status ``submitted`` in its
    row, which is how the second sum leaves it out."""
    i = items.c
    own = conn.execute(select(func.count(), *(func.coalesce(func.sum(i[name]), 0)
                                              for name in SUMMED))
                       .where(i.batch_id == batch_id,
                              i.status != str(ItemStatus.SUBMITTED))).one()
    found = dict(zip(("items", *SUMMED), (int(v) for v in own), strict=True))
    for entry in stored_totals(conn, batch_id).values():
        for name, value in entry.items():
            found[name] = found.get(name, 0) + value
    return found
