"""Engine construction. SQLite gets WAL, a busy timeout and foreign keys, because several
processes (CLI, workers, beat) share one file in the embedded mode."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

from llmbatch import json_text
from llmbatch.config import DatabaseConfig

__all__ = ["make_engine", "read_only_connection"]

# Execution option that marks a connection as a reader (see ``read_only_connection``).
_READ_ONLY = "llmbatch_read_only"


def make_engine(config: DatabaseConfig) -> Engine:
    """An engine for ``config.url``; creates the SQLite file's directory when needed.

    ``hide_parameters``: a database error's text carries the statement's parameters (model
    output, prompts) unless told not to, and those errors end up in logs."""
    url = make_url(config.url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, echo=config.echo, hide_parameters=True,
                               connect_args={"timeout": config.busy_timeout_ms / 1000},
                               json_serializer=json_text.dumps,
                               json_deserializer=json_text.loads)
        _configure_sqlite(engine, config.busy_timeout_ms)
        return engine
    return create_engine(url, echo=config.echo, pool_pre_ping=True, hide_parameters=True,
                         json_serializer=json_text.dumps, json_deserializer=json_text.loads)


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy issue BEGIN itself so transactions start where we say.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        # Copy the WAL back into the database every ~40 MB of it rather than SQLite's ~4 MB:
        # a fetch writes ~1.2 MB of results per chunk, and at the default every few chunks
        # paid a checkpoint (its fsyncs, and index pages copied again each time), a fifth of
        # a 50,000-result fetch (benchmarks/README.md, "seventh pass").
        cur.execute("PRAGMA wal_autocheckpoint=10000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get(_READ_ONLY):
            # A reader never writes, so it never upgrades a lock: a deferred BEGIN reads a WAL
            # snapshot without taking the write lock, and writers go on meanwhile.
            conn.exec_driver_sql("BEGIN")
            return
        # IMMEDIATE takes the write lock up front: no deadlock-prone lock upgrades later.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


@contextmanager
def read_only_connection(engine: Engine) -> Iterator[Connection]:
    """A connection inside a read-only transaction, rolled back at the end.

    The queries of one block see one snapshot of the database, and none of them holds up a
    writer: on SQLite the transaction is a deferred ``BEGIN`` (every other transaction takes
    the write lock up front with ``BEGIN IMMEDIATE``), on PostgreSQL it is ``REPEATABLE READ,
    READ ONLY``. What people read (``llmbatch status``, a progress bar polled twice a second,
    the API) goes through here, so reading a large job never slows its workers down.
    """
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        else:
            conn.execution_options(**{_READ_ONLY: True})
        conn.begin()
        try:
            yield conn
        finally:
            conn.rollback()
