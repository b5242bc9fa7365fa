"""Write schemes for a batch's results, database part only, next to the floor's (issue 13).

``bench_fetch_store.py`` times the whole fetch; this script asks which *write* could ever let
it reach half the floor. Every scheme writes the same 50,000 result rows (built once, before
timing, from the same result file) into a real schema with one batch of submitted items, in
chunks of 1,000 committed one by one as the fetch does (PostgreSQL: ``synchronous_commit``
off per chunk), on a fresh database for each scheme and round:

- ``floor``: the floor's write alone (a fresh narrow table, one ``COPY`` / ``executemany``);
- ``current``: today's write (``db.result_stage.apply_results``: stage, one joined ``UPDATE``
  of the wide item rows);
- ``results+settle``: results inserted into their own table keyed by (batch, key) (created
  here as ``item_results``; branch ``fetch-item-results`` built it for real: migration, fetch,
  readers, and measured no gain),
  plus one set-based ``UPDATE`` per chunk setting each item's ``status`` / ``completed_at``;
- ``results+settle-hot``: the same on PostgreSQL with ``ix_items_job_id_status`` dropped and
  ``items`` at fillfactor 70, so that the status update can be HOT (no index entry);
- ``results+batch``: the inserts, then one ``UPDATE`` settling the whole batch at the end
  (every result succeeded);
- ``results+joined-batch``: the inserts, then one ``UPDATE`` joining the batch's items to
  their results at the end (each item's own status, counts and costs);
- ``results-only``: the inserts and nothing else, the write of a design where an item's
  status is a per-batch fact with exceptions (no item row touched at all).

It also times, in CPU seconds, the Python part of each side: the floor's parse of the lines
against the fetch's per-line work (the OpenAI adapter's parse, making the result storable,
settling it, building its row). Usage::

    .venv/bin/python benchmarks/bench_fetch_schemes.py --rounds 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from bench_fetch_store import (
    FLOOR_COLUMNS,
    Backend,
    floor_rows,
    postgres_backend,
    prepare,
    sqlite_backend,
)
from sqlalchemy import Connection, create_engine, text

from llmbatch.bootstrap import Runtime
from llmbatch.db.result_stage import ResultRow, apply_results
from llmbatch.domain.outcomes import settle_result
from llmbatch.domain.storable import storable_result
from llmbatch.observability.logging import configure_logging
from llmbatch.observability.redaction import Redactor
from llmbatch.providers.jsonl import parse_result_stream
from llmbatch.providers.openai.wire import parse_result_line
from llmbatch.service_layer.progress import _as_text, _result_row

CHUNK = 1_000
SCHEMES = ("floor", "current", "results+settle", "results+settle-hot", "results+batch",
           "results+joined-batch", "results-only")
COLUMNS = ResultRow._fields


def result_rows(results: Path) -> list[ResultRow]:
    return [ResultRow(key, "succeeded", "succeeded", body, text_, finish, i, o, c, r, 0, 0,
                      None, 1_234_000, 2_468_000)
            for key, body, text_, finish, i, o, c, r in floor_rows(results)]


def _results_table(conn: Connection, postgres: bool) -> None:
    json_type = "JSONB" if postgres else "TEXT"
    conn.exec_driver_sql(
        "CREATE TABLE IF NOT EXISTS item_results (batch_id VARCHAR(40) NOT NULL, "
        "provider_key VARCHAR(500) NOT NULL, outcome VARCHAR(20) NOT NULL, "
        f"status VARCHAR(20) NOT NULL, response {json_type}, output_text TEXT, "
        "finish_reason VARCHAR(50), input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT "
        "NULL, cached_tokens INTEGER NOT NULL, reasoning_tokens INTEGER NOT NULL, "
        "cache_write_tokens INTEGER NOT NULL, cache_write_1h_tokens INTEGER NOT NULL, "
        f"error {json_type}, cost_pusd BIGINT, sync_cost_pusd BIGINT, "
        "PRIMARY KEY (batch_id, provider_key))")


def _insert(conn: Connection, batch_id: str, chunk: Sequence[ResultRow], postgres: bool) -> None:
    names = f"batch_id, {', '.join(COLUMNS)}"
    if postgres:
        conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
        driver = conn.connection.driver_connection
        with driver.cursor() as cursor, cursor.copy(  # type: ignore[union-attr]
                f"COPY item_results ({names}) FROM STDIN") as copy:
            for row in chunk:
                copy.write_row((batch_id, *row))
    else:
        conn.exec_driver_sql(f"INSERT INTO item_results ({names}) VALUES "
                             f"({', '.join('?' for _ in range(len(COLUMNS) + 1))})",
                             [(batch_id, *row) for row in chunk])


_SETTLE_PG = text("""
    UPDATE items SET status = r.status, completed_at = :now FROM (
      SELECT r.status, found.id FROM item_results AS r CROSS JOIN LATERAL (
        SELECT items.id FROM items WHERE items.batch_id = :b
          AND items.provider_key = r.provider_key AND items.status = 'submitted' OFFSET 0)
        AS found
      WHERE r.batch_id = :b AND r.provider_key = ANY(:keys)) AS r
    WHERE items.id = r.id""")
_SETTLE_SQLITE = text("""
    UPDATE items SET completed_at = :now, status = (SELECT r.status FROM item_results AS r
      WHERE r.batch_id = :b AND r.provider_key = items.provider_key)
    WHERE items.batch_id = :b AND items.status = 'submitted'
      AND items.provider_key IN (SELECT value FROM json_each(:keys))""")


_SET = ("finish_reason", "input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens",
        "cache_write_tokens", "cache_write_1h_tokens", "error", "cost_pusd", "sync_cost_pusd")
_JOINED_PG = text(f"""
    UPDATE items SET status = r.status, completed_at = :now,
      {', '.join(f'{c} = r.{c}' for c in _SET)}
    FROM item_results AS r
    WHERE r.batch_id = :b AND items.batch_id = :b AND items.provider_key = r.provider_key
      AND items.status = 'submitted'""")
_JOINED_SQLITE = text(f"""
    UPDATE items SET (status, completed_at, {', '.join(_SET)}) = (
      SELECT r.status, :now, {', '.join(f'r.{c}' for c in _SET)} FROM item_results AS r
      WHERE r.batch_id = :b AND r.provider_key = items.provider_key)
    WHERE items.batch_id = :b AND items.status = 'submitted'""")


def write(scheme: str, rt: Runtime, batch_id: str, rows: Sequence[ResultRow]) -> None:
    postgres = rt.engine.dialect.name == "postgresql"
    now = datetime.now(UTC)
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start:start + CHUNK]
        with rt.engine.begin() as conn:
            if scheme == "current":
                if postgres:
                    conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
                apply_results(conn, batch_id, chunk, now)
                continue
            _insert(conn, batch_id, chunk, postgres)
            if scheme.startswith("results+settle"):
                keys = [row.provider_key for row in chunk]
                conn.execute(_SETTLE_PG if postgres else _SETTLE_SQLITE,
                             {"b": batch_id, "now": now,
                              "keys": keys if postgres else _json_list(keys)})
    if scheme == "results+joined-batch":
        with rt.engine.begin() as conn:
            conn.execute(_JOINED_PG if postgres else _JOINED_SQLITE, {"b": batch_id, "now": now})
    if scheme == "results+batch":
        with rt.engine.begin() as conn:
            conn.execute(text("UPDATE items SET status = 'succeeded', completed_at = :now "
                              "WHERE batch_id = :b AND status = 'submitted'"),
                         {"b": batch_id, "now": now})


def _json_list(keys: Sequence[str]) -> str:
    return orjson.dumps(list(keys)).decode()


def floor_write(backend: Backend, rows: Sequence[ResultRow]) -> None:
    table = f"floor_{uuid.uuid4().hex[:8]}"
    engine = create_engine(backend.url)
    postgres = backend.name == "postgres"
    with engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE {table} (provider_key VARCHAR(500) PRIMARY KEY, "
                          f"response {'JSONB' if postgres else 'JSON'}, output_text TEXT, "
                          "finish_reason VARCHAR(50), input_tokens INTEGER, output_tokens "
                          "INTEGER, cached_tokens INTEGER, reasoning_tokens INTEGER)"))
    narrow = [(r.provider_key, r.response, r.output_text, r.finish_reason, r.input_tokens,
               r.output_tokens, r.cached_tokens, r.reasoning_tokens) for r in rows]
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if postgres:
            with cursor.copy(f"COPY {table} ({FLOOR_COLUMNS}) FROM STDIN") as copy:
                for row in narrow:
                    copy.write_row(row)
        else:
            cursor.executemany(f"INSERT INTO {table} ({FLOOR_COLUMNS}) VALUES "
                               "(?, ?, ?, ?, ?, ?, ?, ?)", narrow)
        raw.commit()
    finally:
        raw.close()
        engine.dispose()


def _hot_ready(rt: Runtime) -> None:
    """``items`` with no index on ``status`` and room in each page: HOT status updates."""
    with rt.engine.connect() as conn:
        conn.exec_driver_sql("DROP INDEX ix_items_job_id_status")
        conn.exec_driver_sql("ALTER TABLE items SET (fillfactor = 70)")
        conn.commit()
        conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.exec_driver_sql("VACUUM FULL items")
        conn.exec_driver_sql("ANALYZE items")


def one_round(backend: Backend, scheme: str, items: int) -> tuple[float, float] | None:
    postgres = backend.name == "postgres"
    if scheme.endswith("-hot") and not postgres:
        return None
    with tempfile.TemporaryDirectory(prefix="llmbatch-schemes-") as tmp:
        rt, batch_id, results = prepare(backend, Path(tmp), items)
        rows = result_rows(results)
        if scheme != "floor" and scheme != "current":
            with rt.engine.begin() as conn:
                _results_table(conn, postgres)
        if scheme.endswith("-hot"):
            _hot_ready(rt)
        wall, cpu = time.perf_counter(), time.process_time()
        if scheme == "floor":
            floor_write(backend, rows)
        else:
            write(scheme, rt, batch_id, rows)
        elapsed = (time.perf_counter() - wall, time.process_time() - cpu)
        rt.engine.dispose()
    return elapsed


def python_parts(items: int) -> tuple[float, float]:
    """CPU seconds of the floor's parse and of the fetch's per-line work, same lines."""
    from bench_fetch_store import result_line
    with tempfile.TemporaryDirectory(prefix="llmbatch-schemes-") as tmp:
        path = Path(tmp) / "results.jsonl"
        with path.open("wb") as out:
            for n in range(items):
                out.write(result_line(f"k{n}", n) + b"\n")
        started = time.process_time()
        for _ in floor_rows(path):
            pass
        floor_cpu = time.process_time() - started
        redactor = Redactor([])
        started = time.process_time()
        with path.open("rb") as file:
            for result in parse_result_stream(iter(lambda: file.read(1 << 16), b""),
                                              parse_result_line, provider="openai"):
                stored = _as_text(storable_result(result))
                status = settle_result(stored.result, attempts=1, max_attempts=3,
                                       cancelling=False)
                _result_row(stored.result, status, None, redactor)
        return floor_cpu, time.process_time() - started


def fresh(name: str, workdir: Path) -> Any:
    """A new database for one round (the HOT scheme changes ``items``' indexes)."""
    return sqlite_backend(workdir) if name == "sqlite" else postgres_backend()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--schemes", default=",".join(SCHEMES))
    args = parser.parse_args(argv)
    configure_logging("WARNING")
    floor_cpu, fetch_cpu = python_parts(args.items)
    print(f"python per line, CPU s for {args.items:,}: floor parse {floor_cpu:.2f}, "
          f"fetch's parse + storable + settle + row {fetch_cpu:.2f}", flush=True)
    schemes = args.schemes.split(",")
    for name in args.backends.split(","):
        timings: dict[str, list[tuple[float, float]]] = {s: [] for s in schemes}
        for _ in range(args.rounds):  # schemes alternate within each round
            for scheme in schemes:
                with (tempfile.TemporaryDirectory(prefix="llmbatch-schemes-") as tmp,
                      fresh(name, Path(tmp)) as backend):
                    if backend is None:
                        break
                    timed = one_round(backend, scheme, args.items)
                if timed is not None:
                    timings[scheme].append(timed)
        floor = statistics.median(w for w, _ in timings.get("floor") or [(float("nan"), 0)])
        print(f"{name}: database part, wall s (median of {args.rounds}), CPU s, "
              "x the floor's write, each round's wall s")
        for scheme, runs in timings.items():
            if runs:
                wall = statistics.median(w for w, _ in runs)
                cpu = statistics.median(c for _, c in runs)
                print(f"  {scheme:<20}{wall:7.2f}{cpu:7.2f}{wall / floor:7.2f}x   "
                      + ", ".join(f"{w:.2f}" for w, _ in runs), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
