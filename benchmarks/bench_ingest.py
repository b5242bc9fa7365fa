"""Creating a job next to the floor for the same lines, the ``submit`` process's memory by job
size, and planning 10,000 one-item batches (issue 13).

*Ingest* is ``create_job`` in this process: read, check (schema, limits, encode, estimate),
write every item in bulk, commit. The *floor* is the least any store of the same file must do:
parse each line with ``orjson``, keep its id and body, write ``(seq, custom_id, request)`` in
bulk into a fresh table whose ids are unique (SQLite ``executemany`` in one transaction,
PostgreSQL ``COPY``). The two alternate ``--rounds`` times on fresh databases (the machine is
shared: the best and the median are printed, and the medians' ratio).

*write alone* is the product's item writer (``db.item_ingest.write_items``: one streamed
``COPY`` on PostgreSQL, chunks of ``INSERT_CHUNK`` on SQLite, one transaction) given rows
built beforehand from the same file: ingest with no reading and no checks, into the real
``items`` table (its columns, indexes and key to ``jobs``). Its ratio to the floor is the most
any ingest into that table could reach; the rest of ingest's time is the per-line work
(parse, schema, limits, encoding, estimate, price).

*submit RSS* is the peak resident memory of a real ``llmbatch submit FILE`` process (psutil,
sampled every 20 ms), per size: flat in the job's size is the goal.

*plan* is ``plan_job`` for a job of 10,000 items with ``max_requests: 1`` (10,000 batches).

    .venv/bin/python benchmarks/bench_ingest.py                           # 50,000 items
    BENCH_SIZES=50000,200000,500000 .venv/bin/python benchmarks/bench_ingest.py
    .venv/bin/python benchmarks/bench_ingest.py --sizes 20000 --backends sqlite --rounds 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psutil
import yaml
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).parent))
from bench_openai_path import write_prompts

from llmbatch.bootstrap import Runtime, build_runtime
from llmbatch.config import AppConfig
from llmbatch.db.item_ingest import write_items
from llmbatch.db.migrate import upgrade
from llmbatch.observability.logging import configure_logging
from llmbatch.service_layer.jobs import INSERT_CHUNK, create_job
from llmbatch.service_layer.submission import plan_job

MODEL = "gpt-4o-mini"
PG_ADMIN = os.environ.get("LLMBATCH_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
PLAN_ITEMS = 10_000


@dataclass
class Backend:
    name: str
    url: str  # SQLAlchemy URL of a database that exists (migrated by ``runtime``)


@contextmanager
def database(name: str, workdir: Path) -> Iterator[Backend | None]:
    """A fresh database: an SQLite file, or a PostgreSQL database dropped afterwards."""
    if name == "sqlite":
        yield Backend(name, f"sqlite:///{workdir / f'bench-{uuid.uuid4().hex[:8]}.db'}")
        return
    db = f"llmbatch_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{db}"'))
    except Exception as exc:  # a benchmark says why it skips and goes on
        print(f"postgres: skipped ({type(exc).__name__}: {str(exc).splitlines()[0]})")
        admin.dispose()
        yield None
        return
    try:
        yield Backend(name, PG_ADMIN.rsplit("/", 1)[0].replace(
            "postgresql://", "postgresql+psycopg://") + f"/{db}")
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        admin.dispose()


def config_dict(backend: Backend, workdir: Path, max_requests: int | None = None) -> dict[str, Any]:
    openai: dict[str, Any] = {"api_key": "sk-bench", "base_url": "http://127.0.0.1:9/v1",
                              "models": [{"name": MODEL}]}
    if max_requests:
        openai["limits"] = {"max_requests": max_requests}
    return {"database": {"url": backend.url},
            "broker": {"url": f"sqla+sqlite:///{workdir / 'broker.db'}"},
            "providers": {"openai": openai}}


def runtime(backend: Backend, workdir: Path, max_requests: int | None = None) -> Runtime:
    rt = build_runtime(AppConfig.model_validate(config_dict(backend, workdir, max_requests)))
    upgrade(rt.engine)
    return rt


# ---- ingest and its floor --------------------------------------------------------------------

def floor_rows(path: Path) -> Iterator[tuple[Any, ...]]:
    with path.open("rb") as file:
        for seq, raw in enumerate(file):
            line = orjson.loads(raw)
            yield (seq, line.get("custom_id") or f"line-{seq + 1}",
                   orjson.dumps({"body": line["body"]}).decode())


def floor(backend: Backend, prompts: Path) -> float:
    table = f"floor_{uuid.uuid4().hex[:8]}"
    json_type = "JSONB" if backend.name == "postgres" else "JSON"
    engine = create_engine(backend.url)
    with engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE {table} (seq INTEGER PRIMARY KEY, custom_id "
                          f"VARCHAR(500) NOT NULL UNIQUE, request {json_type} NOT NULL)"))
    raw = engine.raw_connection()
    try:
        started = time.perf_counter()
        cursor = raw.cursor()
        if backend.name == "postgres":
            with cursor.copy(f"COPY {table} (seq, custom_id, request) FROM STDIN") as copy:
                for row in floor_rows(prompts):
                    copy.write_row(row)
        else:
            cursor.executemany(f"INSERT INTO {table} VALUES (?, ?, ?)", floor_rows(prompts))  # type: ignore[arg-type]  # sqlite3 streams any iterable
        raw.commit()
        return time.perf_counter() - started
    finally:
        raw.close()
        engine.dispose()


def ingest(backend: Backend, workdir: Path, prompts: Path) -> float:
    rt = runtime(backend, workdir)
    try:
        started = time.perf_counter()
        create_job(rt, prompts, provider="openai", model=MODEL)
        return time.perf_counter() - started
    finally:
        rt.engine.dispose()


def write_alone(backend: Backend, workdir: Path, prompts: Path) -> float:
    """Seconds to write the file's items with ``write_items``, rows built beforehand."""
    rt = runtime(backend, workdir)
    try:
        seed = workdir / "seed.jsonl"
        seed.write_text('{"custom_id": "seed", "body": {"messages": '
                        '[{"role": "user", "content": "hi"}]}}\n', encoding="utf-8")
        job_id, _ = create_job(rt, seed, provider="openai", model=MODEL)
        rows = []
        with prompts.open("rb") as file:
            for seq, raw in enumerate(file, start=1):
                line = orjson.loads(raw)
                rows.append((seq, line["custom_id"], line["custom_id"],
                             orjson.dumps({"body": line["body"]}).decode(), len(raw), 40, 1000))
        started = time.perf_counter()
        with rt.engine.begin() as conn:
            if not write_items(conn, job_id, rows, chunk=INSERT_CHUNK):
                raise SystemExit("write alone: a duplicate custom_id in the bench file")
        return time.perf_counter() - started
    finally:
        rt.engine.dispose()


# ---- the submit process's memory -------------------------------------------------------------

def submit_peak_rss(backend: Backend, workdir: Path, prompts: Path) -> tuple[float, float]:
    """Peak RSS (MiB) of ``llmbatch submit`` storing ``prompts``, and its wall time."""
    runtime(backend, workdir).engine.dispose()  # migrated beforehand: not part of the peak
    config = workdir / f"submit-{uuid.uuid4().hex[:6]}.yaml"
    config.write_text(yaml.safe_dump(config_dict(backend, workdir)), encoding="utf-8")
    started = time.perf_counter()
    proc = psutil.Popen([sys.executable, "-m", "llmbatch", "submit", str(prompts),
                         "--provider", "openai", "--model", MODEL, "-c", str(config)],
                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                        env={**os.environ, "LLMBATCH_HOME": str(workdir / "home")})
    peak = 0
    while proc.poll() is None:
        try:
            peak = max(peak, proc.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"submit exited {proc.returncode}: {proc.stderr.read().decode()}"
                         if proc.stderr else f"submit exited {proc.returncode}")
    return peak / 2**20, elapsed


# ---- planning --------------------------------------------------------------------------------

def plan_seconds(backend: Backend, workdir: Path) -> float:
    prompts = workdir / "plan-prompts.jsonl"
    write_prompts(prompts, PLAN_ITEMS)
    rt = runtime(backend, workdir, max_requests=1)
    try:
        job_id, _ = create_job(rt, prompts, provider="openai", model=MODEL)
        started = time.perf_counter()
        batches = plan_job(rt, job_id)
        elapsed = time.perf_counter() - started
        if len(batches) != PLAN_ITEMS:
            raise SystemExit(f"planned {len(batches)} batches, not {PLAN_ITEMS}")
        return elapsed
    finally:
        rt.engine.dispose()


# ---- report ----------------------------------------------------------------------------------

def stats(values: list[float]) -> tuple[float, float]:
    return min(values), statistics.median(values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=os.environ.get("BENCH_SIZES", "50000"),
                        help="comma-separated job sizes (default: $BENCH_SIZES or 50000)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--no-plan", action="store_true", help="skip the planning figure")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    figures: dict[str, list[dict[str, object]]] = {"ingest": [], "plan": []}
    configure_logging("WARNING")  # the figures alone on stdout, warnings on stderr
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    print(f"ingest next to its floor, {args.rounds} rounds alternating; items/s as best / "
          "median of the rounds (a shared machine: the median is the figure to quote)")
    print(f"{'backend':<9}{'items':>9}{'floor items/s':>22}{'ingest items/s':>22}"
          f"{'ratio':>8}{'write alone':>13}{'submit peak RSS':>18}{'submit s':>10}")
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="llmbatch-ingest-") as tmp:
            workdir = Path(tmp)
            prompts = workdir / "prompts.jsonl"
            write_prompts(prompts, size)
            for name in backends:
                floors: list[float] = []
                ingests: list[float] = []
                writes: list[float] = []
                skipped = False
                for _ in range(args.rounds):
                    with database(name, workdir) as backend:
                        if backend is None:
                            skipped = True
                            break
                        floors.append(floor(backend, prompts))
                        ingests.append(ingest(backend, workdir, prompts))
                    with database(name, workdir) as backend:
                        assert backend is not None
                        writes.append(write_alone(backend, workdir, prompts))
                if skipped:
                    continue
                with database(name, workdir) as backend:
                    assert backend is not None
                    rss, submit_s = submit_peak_rss(backend, workdir, prompts)
                (f_min, f_med), (i_min, i_med) = stats(floors), stats(ingests)
                w_med = statistics.median(writes)
                print(f"{name:<9}{size:>9,}{size / f_min:>11,.0f} / {size / f_med:>8,.0f}"
                      f"{size / i_min:>11,.0f} / {size / i_med:>8,.0f}{f_med / i_med:>8.0%}"
                      f"{f_med / w_med:>13.0%}{rss:>14.0f} MiB{submit_s:>10.1f}", flush=True)
                figures["ingest"].append({"backend": name, "items": size, "floor_s": floors,
                                          "llmbatch_s": ingests, "write_alone_s": writes,
                                          "submit_rss_mib": rss})
    if not args.no_plan:
        print(f"\nplanning {PLAN_ITEMS:,} one-item batches (plan_job), seconds:")
        with tempfile.TemporaryDirectory(prefix="llmbatch-plan-") as tmp:
            for name in backends:
                with database(name, Path(tmp)) as backend:
                    if backend is not None:
                        seconds = plan_seconds(backend, Path(tmp))
                        print(f"{name:<9}{seconds:>9.2f} s", flush=True)
                        figures["plan"].append({"backend": name, "batches": PLAN_ITEMS,
                                                "seconds": seconds})
    if args.json:
        args.json.write_bytes(orjson.dumps(figures, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
