"""Storing a chunk of results in a few statements, however many rows it holds.

A result that settles its item is *inserted* into ``item_results`` (PostgreSQL: ``COPY``;
SQLite: one ``executemany``) and the item row is left alone (``db.tables.item_results`` says
why). Results that did not succeed also get a history row (``item_attempts``), and those that
send their item back to pending (to be re-batched) update the item itself, which also clears
its batch; both go through a staged copy of only those rows (``COPY``/``executemany`` into a
temporary table, then one joined statement each): the few, not the many.

The caller stores a result only for a key with none stored yet (a fetch run again after a
crash stores only keys still open: ``ItemQueries.open_attempts``); the results
table's primary key (batch, provider key) refuses a second one, which fails the chunk like a
database failure rather than storing twice. The history and the re-batching update only
match items still ``submitted`` without a stored result. JSON values arrive as text; a value
the database refuses (NUL in JSONB, a lone surrogate) fails the whole chunk, which the caller
then bisects (``service_layer.result_storage``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final, NamedTuple

from sqlalchemy import Connection, TextClause, bindparam, text

from llmbatch.db.tables import UTCDateTime
from llmbatch.domain.states import ItemStatus
from llmbatch.pausable import Pausable

__all__ = ["SETTLED_FIELDS", "UNSTORED", "Applied", "ResultRow", "applying_results"]

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
# The columns a stored result gives its item: a ``ResultRow`` without its key and outcome, and
# the moment it was stored (``item_results`` holds them; ``db.item_view`` lays them over the
# item).
SETTLED_FIELDS: Final = (*_COLUMNS[2:], "completed_at")
# SQL: no result is stored yet for the item with provider key ``{key}`` in batch ``:batch_id``.
UNSTORED: Final = """NOT EXISTS (SELECT 1 FROM item_results AS stored
      WHERE stored.batch_id = :batch_id AND stored.provider_key = {key})"""


class Applied(NamedTuple):
    """What one chunk wrote: results inserted, items sent back to pending."""

    inserted: int
    rebatched: int


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


# What a re-batched item takes from its staged row: back to pending, out of the batch.
_REBATCH: Final = (
    ("batch_id", "NULL"),
    *((name, "NULL" if name == "completed_at" else f"s.{name}") for name in SETTLED_FIELDS),
)
_HISTORY_COLUMNS: Final = "job_id, seq, batch_id, attempt, outcome, error, at"
_HISTORY_VALUES: Final = ("CAST(:history_batch AS VARCHAR(40)), {i}.attempts, s.outcome, "
                          "s.error, :now")

# The columns of ``item_results`` in the order a row is written.
_RESULT_COLUMNS: Final = ("batch_id", "provider_key", *SETTLED_FIELDS)


def _statement(sql: str) -> TextClause:
    statement = text(sql)
    return statement.bindparams(bindparam("now", type_=UTCDateTime)) if ":now" in sql else statement


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
        AND items.status = :submitted AND {UNSTORED.format(key="stage.provider_key")}
      OFFSET 0) AS found) AS s"""

_POSTGRES_HISTORY: Final = _statement(f"""
    INSERT INTO item_attempts ({_HISTORY_COLUMNS})
    SELECT s.job_id, s.seq, {_HISTORY_VALUES.format(i="s")}
    FROM {_MATCHED} WHERE s.outcome <> :succeeded""")

_POSTGRES_REBATCH: Final = _statement(f"""
    UPDATE items SET {', '.join(f'{column} = {value}' for column, value in _REBATCH)}
    FROM {_MATCHED} WHERE items.id = s.item_id AND s.status = :pending""")

# SQLite: CROSS JOIN fixes the join order; the update is a row-value SET with the staged keys
# as an IN list.
_SQLITE_HISTORY: Final = _statement(f"""
    INSERT INTO item_attempts ({_HISTORY_COLUMNS})
    SELECT items.job_id, items.seq, {_HISTORY_VALUES.format(i="items")}
    FROM {STAGE} AS s CROSS JOIN items
    WHERE items.batch_id = :batch_id AND items.provider_key = s.provider_key
      AND items.status = :submitted AND s.outcome <> :succeeded
      AND {UNSTORED.format(key="s.provider_key")}""")

_SQLITE_REBATCH: Final = _statement(f"""
    UPDATE items SET ({', '.join(column for column, _ in _REBATCH)}) = (
      SELECT {', '.join(value for _, value in _REBATCH)}
      FROM {STAGE} AS s WHERE s.provider_key = items.provider_key)
    WHERE items.batch_id = :batch_id AND items.status = :submitted
      AND items.provider_key IN (SELECT provider_key FROM {STAGE} WHERE status = :pending)
      AND {UNSTORED.format(key="items.provider_key")}""")

_STAMP: Final = UTCDateTime()  # the moment as the completed_at column binds it


# A ``ResultRow``'s fields as SQLite's numbered parameters, in the order of the settled columns
# (all but the outcome, ``?2``).
_SQLITE_FIELDS: Final = ", ".join(f"?{ResultRow._fields.index(name) + 1}"
                                  for name in SETTLED_FIELDS[:-1])


def _sqlite_insert(batch_id: str, moment: str) -> str:
    """SQLite's insert of a chunk's ``ResultRow``s as they are: the batch and the moment, the
    same for every row, are SQL literals."""
    return (f"INSERT INTO item_results ({', '.join(_RESULT_COLUMNS)}) VALUES "
            f"({_literal(batch_id)}, ?1, {_SQLITE_FIELDS}, {_literal(moment)})")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def applying_results(conn: Connection, batch_id: str, rows: Sequence[ResultRow],
                     now: datetime) -> Pausable[Applied]:
    """Store ``rows`` (at most one per provider key, each naming a submitted item of the
    batch: the caller checks) for the batch's items: insert the results that settle an item,
    re-batch the items whose result sends them back to pending, and record the history of
    those that did not succeed.

    A generator that may pause once (PostgreSQL: with the rows sent down the ``COPY``, before
    asking for its end) and returns what it wrote. The server takes the rows in on its own
    core meanwhile, so a caller that reads its next rows during the pause waits for neither;
    where there is nothing to overlap (SQLite runs in this process) it does not pause."""
    if not rows:
        return Applied(0, 0)
    postgres = conn.dialect.name == "postgresql"
    pending = str(ItemStatus.PENDING)
    where = {"batch_id": batch_id, "submitted": str(ItemStatus.SUBMITTED), "now": now,
             "pending": pending}
    if postgres:
        # No WAL flush at each chunk's commit: the batch's last transaction (``fetched``)
        # commits synchronously, which flushes every chunk before it; a crash that loses a
        # chunk leaves its results unstored and the batch ended, so the fetch runs again and
        # writes them (see the module docstring). One flush per batch, as the floor's COPY.
        conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
    exceptions = [row for row in rows
                  if row.outcome != ItemStatus.SUCCEEDED or row.status == pending]
    rebatched = 0
    if exceptions:
        _stage(conn, exceptions)
        conn.execute(_POSTGRES_HISTORY if postgres else _SQLITE_HISTORY,
                     {**where, "history_batch": batch_id,
                      "succeeded": str(ItemStatus.SUCCEEDED)})
        if any(row.status == pending for row in exceptions):
            rebatched = conn.execute(_POSTGRES_REBATCH if postgres else _SQLITE_REBATCH,
                                     where).rowcount
    settling = [row for row in rows if row.status != pending]
    stamp = _STAMP.bind_processor(conn.dialect)
    moment = now if stamp is None else stamp(now)
    if isinstance(moment, datetime):
        # As text, once, not per row: what sqlite3's adapter writes, and a timestamptz literal
        # COPY reads (formatting a datetime per row is a quarter of the COPY's own work).
        moment = moment.isoformat(" ")
    if not settling:  # every result sends its item back (an empty executemany runs once)
        inserted = 0
    elif postgres:
        values = [(batch_id, row[0], *row[2:], moment) for row in settling]
        inserted = yield from _postgres_insert(conn, values)
    else:
        # The rows as they are: the statement skips each row's outcome (``?2``) and names the
        # batch and the moment once, as text (no tuple built per row to bind them).
        inserted = conn.exec_driver_sql(_sqlite_insert(batch_id, str(moment)),
                                        settling).rowcount
        if exceptions:
            conn.exec_driver_sql(f"DELETE FROM {STAGE}")
    return Applied(int(inserted), int(rebatched))


def _stage(conn: Connection, rows: Sequence[ResultRow]) -> None:
    conn.exec_driver_sql(_stage_ddl(conn.dialect.name))
    if conn.dialect.name == "postgresql":  # emptied at each commit (ON COMMIT DELETE ROWS)
        with conn.connection.driver_connection.cursor() as cursor, cursor.copy(  # type: ignore[union-attr]
                f"COPY {STAGE} ({', '.join(_COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    else:
        conn.exec_driver_sql(f"DELETE FROM {STAGE}")
        conn.exec_driver_sql(
            f"INSERT INTO {STAGE} ({', '.join(_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in _COLUMNS)})", rows)


def _postgres_insert(conn: Connection,
                     values: Sequence[tuple[object, ...]]) -> Pausable[int]:
    """``COPY`` the rows, pausing before the end of the ``COPY`` (which waits for the server
    to have taken in every row)."""
    with conn.connection.driver_connection.cursor() as cursor, cursor.copy(  # type: ignore[union-attr]
            f"COPY item_results ({', '.join(_RESULT_COLUMNS)}) FROM STDIN") as copy:
        for value in values:
            copy.write_row(value)
        yield
    return len(values)
