"""Writing a new job's items at the speed of the database: PostgreSQL ``COPY``, SQLite
``executemany`` of plain tuples, on the caller's connection and inside its transaction.

Duplicate ``custom_id``s are the database's to find (``uq_items_job_id_custom_id``): the
writer holds nothing per item, so creating a job of 500,000 items needs no more memory than
one of 5,000. A write that hits that constraint answers False instead of raising; the caller
refuses the job (its transaction is rolled back, so nothing is stored) and names the lines
with a second, spilled pass (``service_layer.duplicate_ids``). Every other error is raised.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, Final

from sqlalchemy import Connection, func, select

from llmbatch.db.tables import items
from llmbatch.domain.states import ItemStatus

__all__ = ["ITEM_COLUMNS", "NEW_ITEM_TAIL", "ItemRow", "duplicate_provider_keys", "write_items"]

# The columns a new item is written with, in the order of an ``ItemRow``. The usage counters
# have no server default (their defaults live in ``tables``), so they are written too.
ITEM_COLUMNS: Final = ("job_id", "seq", "custom_id", "provider_key", "request", "wire_bytes",
                       "estimated_tokens", "cost_bound_pusd", "status", "attempts",
                       "input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens")
# job_id, seq, custom_id, provider_key, request (JSON text), wire_bytes, estimated_tokens,
# cost_bound_pusd, then the constant tail ``NEW_ITEM_TAIL``.
ItemRow = tuple[Any, ...]
NEW_ITEM_TAIL: Final = (str(ItemStatus.PENDING), 0, 0, 0, 0, 0)
_UNIQUE_ID: Final = "uq_items_job_id_custom_id"
_COLUMN_LIST: Final = ", ".join(ITEM_COLUMNS)


def write_items(conn: Connection, rows: Sequence[ItemRow]) -> bool:
    """Insert ``rows`` (each an ``ItemRow`` of the first eight columns; the constant tail is
    added here). False when a ``custom_id`` is already in the job: the transaction is then
    unusable on PostgreSQL and must be rolled back, which the caller does by refusing."""
    if not rows:
        return True
    dbapi: Any = conn.connection.driver_connection
    if conn.dialect.name == "postgresql":
        return _copy(dbapi, rows)
    return _executemany(dbapi, rows)


def _copy(dbapi: Any, rows: Sequence[ItemRow]) -> bool:
    import psycopg

    try:
        with dbapi.cursor() as cursor, cursor.copy(
                f"COPY items ({_COLUMN_LIST}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row + NEW_ITEM_TAIL)
    except psycopg.errors.UniqueViolation as exc:
        if exc.diag.constraint_name == _UNIQUE_ID:
            return False
        raise
    return True


# The constant tail as SQL literals: SQLite binds eight values a row, not fourteen.
_SQLITE_INSERT: Final = (
    f"INSERT INTO items ({_COLUMN_LIST}) VALUES ("
    + ", ".join(["?"] * (len(ITEM_COLUMNS) - len(NEW_ITEM_TAIL))
                + [f"'{v}'" if isinstance(v, str) else str(v) for v in NEW_ITEM_TAIL]) + ")")


def _executemany(dbapi: sqlite3.Connection, rows: Sequence[ItemRow]) -> bool:
    cursor = dbapi.cursor()
    try:
        cursor.executemany(_SQLITE_INSERT, rows)
    except sqlite3.IntegrityError as exc:
        if "items.job_id, items.custom_id" in str(exc):
            return False
        raise
    finally:
        cursor.close()
    return True


def duplicate_provider_keys(conn: Connection, job_id: str) -> bool:
    """Whether two of the job's items share a provider key (possible only when an adapter
    maps ids, see ``EncodedLine.provider_key``): one grouped query, run once per job."""
    query = (select(items.c.provider_key).where(items.c.job_id == job_id)
             .group_by(items.c.provider_key).having(func.count() > 1).limit(1))
    return conn.execute(query).first() is not None
