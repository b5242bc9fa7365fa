"""The scheduler tick with thousands of batches due (issue 13): how long one tick takes to
find them, mark them dispatched and publish the wake-up messages, on the embedded backend
(SQLite + kombu's SQLAlchemy broker on SQLite) and on PostgreSQL + Redis.

Each run stores one job with N provider batches in progress and due for a poll, then times
one ``tick`` through a real Celery publisher. It runs twice per size: grouped (the default,
at most ``worker.dispatch_messages`` messages per task kind, each naming several batches)
and one message per batch (what the tick did before), side by side. Nothing consumes the
messages; they are counted on the broker afterwards. Usage::

    .venv/bin/python benchmarks/bench_dispatch.py
    .venv/bin/python benchmarks/bench_dispatch.py --sizes 1000 --backends embedded
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench_openai_path import Backend, embedded_backend, postgres_backend
from sqlalchemy import insert, text

from llmbatch.bootstrap import build_runtime
from llmbatch.config import AppConfig
from llmbatch.db import tables
from llmbatch.db.migrate import upgrade
from llmbatch.domain.states import BatchStatus, JobStatus
from llmbatch.observability.logging import configure_logging
from llmbatch.service_layer.scheduler import tick
from llmbatch.worker.app import CeleryPublisher, make_celery


def store_due_batches(config: AppConfig, count: int) -> None:
    rt = build_runtime(config)
    upgrade(rt.engine)
    now = datetime.now(UTC)
    job_id = f"job_{uuid.uuid4().hex[:20]}"
    with rt.engine.begin() as conn:
        conn.execute(insert(tables.jobs).values(
            id=job_id, provider="openai", model="gpt-4o-mini", endpoint="chat",
            status=str(JobStatus.RUNNING), item_count=count, created_at=now, updated_at=now,
            tenant="default", metadata={}))
        conn.execute(insert(tables.provider_batches), [{
            "id": f"pb_{uuid.uuid4().hex[:22]}", "job_id": job_id, "provider": "openai",
            "model": "gpt-4o-mini", "status": str(BatchStatus.IN_PROGRESS), "item_count": 1,
            "byte_count": 100, "provider_batch_id": f"batch_{n}", "result_refs": {},
            "request_counts": {}, "next_poll_at": now - timedelta(seconds=1),
            "submitted_at": now, "created_at": now, "updated_at": now} for n in range(count)])
    rt.engine.dispose()


def messages_on_broker(backend: Backend) -> int:
    if backend.broker_url.startswith("redis://"):
        import redis

        return int(redis.Redis.from_url(backend.broker_url).llen("llmbatch"))
    from sqlalchemy import create_engine

    engine = create_engine(backend.broker_url.removeprefix("sqla+"))
    with engine.connect() as conn:
        if not engine.dialect.has_table(conn, "kombu_message"):  # nothing published yet
            return 0
        return int(conn.execute(text("SELECT count(*) FROM kombu_message")).scalar_one())


def run(backend: Backend, count: int, per_kind: int) -> tuple[float, int, int]:
    config = AppConfig.model_validate({
        "database": {"url": backend.database_url}, "broker": {"url": backend.broker_url},
        "worker": {"dispatch_messages": per_kind},
        "providers": {"openai": {"api_key": "sk-bench", "base_url": "http://127.0.0.1:9/v1",
                                 "models": [{"name": "gpt-4o-mini"}]}}})
    store_due_batches(config, count)
    before = messages_on_broker(backend)
    publisher = CeleryPublisher(make_celery(config))
    publisher.publish_many([])  # connect to the broker (and create its tables) untimed
    rt = build_runtime(config, publisher)
    rt.engine.connect().close()
    started = time.perf_counter()
    report = tick(rt)
    elapsed = time.perf_counter() - started
    rt.engine.dispose()
    return elapsed, report["dispatched"], messages_on_broker(backend) - before


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--backends", default="embedded,postgres")
    parser.add_argument("--baseline-max", type=int, default=10_000,
                        help="measure one message per batch only up to this many (on the "
                             "embedded broker 10,000 take minutes)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    figures: list[dict[str, object]] = []
    configure_logging("WARNING")  # the figures alone on stdout, warnings on stderr
    goals = {"embedded": 2.0, "postgres": 1.0}
    print("one tick with N batches due: seconds (batches dispatched / messages published)")
    print(f"{'backend':<10}{'N':>8}{'grouped':>26}{'one per batch':>28}{'goal':>8}")
    for name in args.backends.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            with tempfile.TemporaryDirectory(prefix="llmbatch-dispatch-") as tmp:
                context = (embedded_backend(Path(tmp), 1) if name == "embedded"
                           else postgres_backend("postgres", 1))
                with context as backend:
                    if backend is None:
                        break
                    grouped = run(backend, size, 200)
                    single = run(backend, size, size) if size <= args.baseline_max else None
            cells = [f"{s:.2f} s ({d:,} / {m:,})" if r is not None else "not run"
                     for r in (grouped, single) for s, d, m in [r or (0.0, 0, 0)]]
            print(f"{name:<10}{size:>8,}{cells[0]:>26}{cells[1]:>28}"
                  f"{'< ' + str(goals[name]) + ' s':>8}")
            figures.append({"backend": name, "due": size, "grouped": grouped, "single": single,
                            "goal_s": goals[name]})
    if args.json:
        args.json.write_text(json.dumps({"dispatch": figures}, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
