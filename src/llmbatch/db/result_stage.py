"""Applying a chunk of results in three statements, however many rows it holds.

A chunk of results is staged in a temporary table (PostgreSQL: ``COPY``; SQLite:
``executemany`` of plain tuples, no per-row statement compilation) and applied with one
``UPDATE items … FROM stage`` joined on the provider key, after one ``INSERT … SELECT`` that
writes the history rows of the results that did not succeed. One ``UPDATE`` per result, the
way it was done before, spent half of every fetch compiling parameters and round-tripping to
the database.

Both statements match only items of the batch still ``submitted``, so a chunk applied twice
(a fetch re-run after a crash) changes nothing the second time. JSON values arrive as text;
a value the database refuses (NUL in JSONB, a lone surrogate) fails the whole chunk, which
the caller then bisects (``service_layer.result_storage``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final, NamedTuple

from sqlalchemy import Connection, TextClause, bindparam, text

from llmbatch.db.tables import UTCDateTime
from llmbatch.domain.states import ItemStatus

__all__ = ["ResultRow", "apply_results"]

STAGE: Final = "llmbatch_result_stage"


class ResultRow(NamedTuple):
    """One result as an item takes it. ``outcome``: the result's own status (what the
    history records); ``status``: the item's next one (``pending`` sends it back to be
    re-batched, which also clears its batch and completion time). ``response`` and ``error``
    are JSON text (``json_text.dumps``): the row is written as it is, with no conversion per
    value."""

    provider_key: str
    outcome: str
    status: str
    response: str | None
    output_text: str | None
    finish_reason: str | None
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    cache_write_tokens: int
    cache_write_1h_tokens: int
    error: str | None
    cost_pusd: int | None  # picodollars (llmbatch.pricing): the batch price
    sync_cost_pusd: int | None  # what the same tokens cost synchronously


_COLUMNS: Final = ResultRow._fields


def _stage_ddl(dialect: str) -> str:
    json_type = "JSONB" if dialect == "postgresql" else "TEXT"
    number = "BIGINT" if dialect == "postgresql" else "INTEGER"
    suffix = " ON COMMIT DELETE ROWS" if dialect == "postgresql" else ""
    return (f"CREATE TEMPORARY TABLE IF NOT EXISTS {STAGE} ("
            "provider_key VARCHAR(500) PRIMARY KEY, outcome VARCHAR(20) NOT NULL, "
            f"status VARCHAR(20) NOT NULL, response {json_type}, output_text TEXT, "
            "finish_reason VARCHAR(50), input_tokens INTEGER NOT NULL, "
            "output_tokens INTEGER NOT NULL, cached_tokens INTEGER NOT NULL, "
            "reasoning_tokens INTEGER NOT NULL, cache_write_tokens INTEGER NOT NULL, "
            f"cache_write_1h_tokens INTEGER NOT NULL, error {json_type}, "
            f"cost_pusd {number}, sync_cost_pusd {number})"
            f"{suffix}")


# What each item column takes from its staged row; ``_SETTLING`` when no row of the chunk
# goes back to pending (the usual chunk): the batch stays, so its index entry is left alone.
_ASSIGNMENTS: Final = (
    ("status", "s.status"),
    ("batch_id", "CASE WHEN s.status = :pending THEN NULL ELSE items.batch_id END"),
    *((name, f"s.{name}") for name in (
        "response", "output_text", "finish_reason", "input_tokens", "output_tokens",
        "cached_tokens", "reasoning_tokens", "cache_write_tokens", "cache_write_1h_tokens",
        "error", "cost_pusd", "sync_cost_pusd")),
    ("completed_at", "CASE WHEN s.status = :pending THEN NULL ELSE :now END"),
)
_SETTLING: Final = tuple((column, ":now" if column == "completed_at" else value)
                         for column, value in _ASSIGNMENTS if column != "batch_id")
_HISTORY_COLUMNS: Final = "job_id, seq, batch_id, attempt, outcome, error, at"
_HISTORY_VALUES: Final = ("CAST(:history_batch AS VARCHAR(40)), {i}.attempts, s.outcome, "
                          "s.error, :now")


def _statement(sql: str) -> TextClause:
    return text(sql).bindparams(bindparam("now", type_=UTCDateTime))


# Every join starts from the stage: each staged key finds its item through the (batch_id,
# provider_key) index. Started from the items, a join reads the whole batch once per chunk,
# which both planners choose on their own: SQLite for any UPDATE ... FROM, PostgreSQL on the
# statistics of a table whose batch was inserted moments ago.

# PostgreSQL: the item of each key is found in a LATERAL subquery that ``OFFSET 0`` keeps
# from being flattened into a join the planner could turn around; updates go by primary key.
_MATCHED: Final = f"""(
    SELECT stage.*, found.id AS item_id, found.job_id, found.seq, found.attempts
    FROM {STAGE} AS stage CROSS JOIN LATERAL (
      SELECT items.id, items.job_id, items.seq, items.attempts FROM items
      WHERE items.batch_id = :batch_id AND items.provider_key = stage.provider_key
        AND items.status = :submitted OFFSET 0) AS found) AS s"""

_POSTGRES_HISTORY: Final = _statement(f"""
    INSERT INTO item_attempts ({_HISTORY_COLUMNS})
    SELECT s.job_id, s.seq, {_HISTORY_VALUES.format(i="s")}
    FROM {_MATCHED} WHERE s.outcome <> :succeeded""")


def _postgres_apply(assignments: tuple[tuple[str, str], ...]) -> TextClause:
    return _statement(f"""
    UPDATE items SET {', '.join(f'{column} = {value}' for column, value in assignments)}
    FROM {_MATCHED} WHERE items.id = s.item_id""")


# SQLite: CROSS JOIN fixes the join order; the update is a row-value SET with the staged keys
# as an IN list.
_SQLITE_HISTORY: Final = _statement(f"""
    INSERT INTO item_attempts ({_HISTORY_COLUMNS})
    SELECT items.job_id, items.seq, {_HISTORY_VALUES.format(i="items")}
    FROM {STAGE} AS s CROSS JOIN items
    WHERE items.batch_id = :batch_id AND items.provider_key = s.provider_key
      AND items.status = :submitted AND s.outcome <> :succeeded""")


def _sqlite_apply(assignments: tuple[tuple[str, str], ...]) -> TextClause:
    return _statement(f"""
    UPDATE items SET ({', '.join(column for column, _ in assignments)}) = (
      SELECT {', '.join(value for _, value in assignments)}
      FROM {STAGE} AS s WHERE s.provider_key = items.provider_key)
    WHERE items.batch_id = :batch_id AND items.status = :submitted
      AND items.provider_key IN (SELECT provider_key FROM {STAGE})""")


# (dialect is PostgreSQL, some row goes back to pending) -> the statement.
_APPLY: Final = {(postgres, pending): (_postgres_apply if postgres else _sqlite_apply)(
    _ASSIGNMENTS if pending else _SETTLING) for postgres in (True, False)
    for pending in (True, False)}


def apply_results(conn: Connection, batch_id: str, rows: Sequence[ResultRow],
                  now: datetime) -> int:
    """Apply ``rows`` (at most one per provider key) to the batch's submitted items and
    record the history of those that did not succeed; returns the items changed."""
    if not rows:
        return 0
    dialect = conn.dialect.name
    conn.exec_driver_sql(_stage_ddl(dialect))
    if dialect == "postgresql":
        # No WAL flush at each chunk's commit: the batch's last transaction (``fetched``)
        # commits synchronously, which flushes every chunk before it; a crash that loses a
        # chunk leaves its items submitted and the batch ended, so the fetch runs again and
        # writes them (see the module docstring). One flush per batch, as the floor's COPY.
        conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
        with conn.connection.driver_connection.cursor() as cursor, cursor.copy(  # type: ignore[union-attr]
                f"COPY {STAGE} ({', '.join(_COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    else:
        conn.exec_driver_sql(f"DELETE FROM {STAGE}")
        conn.exec_driver_sql(
            f"INSERT INTO {STAGE} ({', '.join(_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in _COLUMNS)})", rows)
    where = {"batch_id": batch_id, "submitted": str(ItemStatus.SUBMITTED), "now": now}
    postgres = dialect == "postgresql"
    if any(row.outcome != ItemStatus.SUCCEEDED for row in rows):
        conn.execute(_POSTGRES_HISTORY if postgres else _SQLITE_HISTORY,
                     {**where, "history_batch": batch_id,
                      "succeeded": str(ItemStatus.SUCCEEDED)})
    pending = str(ItemStatus.PENDING)
    statement = _APPLY[postgres, any(row.status == pending for row in rows)]
    applied = conn.execute(statement, {**where, "pending": pending}).rowcount
    if not postgres:
        conn.exec_driver_sql(f"DELETE FROM {STAGE}")
    return int(applied)
