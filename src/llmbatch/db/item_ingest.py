"""Writing a new job's items at the speed of the database, on the caller's connection and
inside its transaction, as the intake accepts them (``ItemWriter``): PostgreSQL through one
``COPY`` streamed for the whole file, so that the server stores rows while this process checks
the next lines (two processes, two cores; a ``COPY`` per chunk left one of them idle), SQLite
through ``executemany`` of plain tuples, a chunk at a time (in-process: nothing to overlap).

Duplicate ``custom_id``s are the database's to find (``uq_items_job_id_custom_id``): the
writer holds nothing per item, so creating a job of 500,000 items needs no more memory than
one of 5,000. A write that hits that constraint answers False instead of raising; the caller
refuses the job (its transaction is rolled back, so nothing is stored) and names the lines
with a second, spilled pass (``service_layer.duplicate_ids``). Every other error is raised.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from contextlib import ExitStack, suppress
from types import TracebackType
from typing import Any, Final

from sqlalchemy import Connection, func, select

from llmbatch.db.tables import items
from llmbatch.domain.states import ItemStatus

__all__ = ["ITEM_COLUMNS", "NEW_ITEM_TAIL", "ItemRow", "ItemWriter", "duplicate_provider_keys",
           "write_items"]

# The columns a new item is written with, in the order of an ``ItemRow``. The usage counters
# have no server default (their defaults live in ``tables``), so they are written too.
ITEM_COLUMNS: Final = ("job_id", "seq", "custom_id", "provider_key", "request", "wire_bytes",
                       "estimated_tokens", "cost_bound_pusd", "status", "attempts",
                       "input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens")
# An ``ItemRow`` is seq, custom_id, provider_key, request (JSON text), wire_bytes,
# estimated_tokens, cost_bound_pusd: the writer puts its job before and the constant tail
# ``NEW_ITEM_TAIL`` after.
ItemRow = tuple[Any, ...]
NEW_ITEM_TAIL: Final = (str(ItemStatus.PENDING), 0, 0, 0, 0, 0)
_UNIQUE_ID: Final = "uq_items_job_id_custom_id"
_COLUMN_LIST: Final = ", ".join(ITEM_COLUMNS)


class ItemWriter:
    """Stores one job's new items as they come (``add``); ``finish`` stores what is pending
    and says whether every row was stored. False: a ``custom_id`` already in the job; the
    transaction is then unusable on PostgreSQL and must be rolled back, which the caller does
    by refusing. ``ok`` turns False as soon as a write met one (on PostgreSQL that is known
    only at ``finish``), so that the caller stops sending rows. Use it as a context manager:
    leaving it without ``finish`` (an error, or a file refused anyway) abandons a ``COPY``
    still open, its rows not stored; the caller then rolls the transaction back.

    The writer is given the job (inserted before, in the same transaction) and names it in
    every row it writes: that is what stands for a foreign key from ``items`` to ``jobs``,
    which the database would check once per row (migration 0015)."""

    def __init__(self, conn: Connection, job_id: str, *, chunk: int) -> None:
        self._job = (job_id,)
        self._dbapi: Any = conn.connection.driver_connection
        self._postgres = conn.dialect.name == "postgresql"
        self._chunk = chunk
        self._rows: list[ItemRow] = []
        self._open_copy: ExitStack | None = None
        self._copy: Any = None
        self.ok = True

    def __enter__(self) -> ItemWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._open_copy is not None:
            if kind is None:  # no error, but no ``finish`` either: nothing is to be stored
                kind, error = RuntimeError, RuntimeError("items abandoned")
            with suppress(Exception):  # the error that brought us here is the one raised
                self._open_copy.__exit__(kind, error, trace)

    def add(self, row: ItemRow) -> None:
        """Store ``row`` (an ``ItemRow``: the job and the constant tail are added here)."""
        if self._postgres:
            if self._open_copy is None:
                self._open_copy = ExitStack()
                cursor = self._open_copy.enter_context(self._dbapi.cursor())
                self._copy = self._open_copy.enter_context(
                    cursor.copy(f"COPY items ({_COLUMN_LIST}) FROM STDIN"))
            self._copy.write_row(self._job + row + NEW_ITEM_TAIL)
            return
        self._rows.append(self._job + row)
        if len(self._rows) >= self._chunk:
            self._flush()

    def finish(self) -> bool:
        if self._postgres:
            self.ok = self._end_copy()
        else:
            self._flush()
        return self.ok

    def _end_copy(self) -> bool:
        import psycopg

        open_copy, self._open_copy = self._open_copy, None
        if open_copy is None:
            return True
        try:
            open_copy.close()
        except psycopg.errors.UniqueViolation as exc:
            if exc.diag.constraint_name == _UNIQUE_ID:
                return False
            raise
        return True

    def _flush(self) -> None:
        rows, self._rows = self._rows, []
        if rows and self.ok:
            self.ok = _executemany(self._dbapi, rows)


def write_items(conn: Connection, job_id: str, rows: Iterable[ItemRow], *,
                chunk: int = 5000) -> bool:
    """``rows`` of job ``job_id`` through one ``ItemWriter``; False when a ``custom_id`` is
    already in the job (see there)."""
    with ItemWriter(conn, job_id, chunk=chunk) as writer:
        for row in rows:
            writer.add(row)
        return writer.finish()


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
