"""Storing one batch's results, next to the floor for the same lines (issue 13).

The *store* is llmbatch's real fetch step (``service_layer.progress.fetch_batch``: read each
line with the OpenAI adapter's parser, make it storable, settle it, write it, record history
and events) reading a local copy of a 50,000-line OpenAI result file instead of downloading
it, so the figure is the cost of storing, not of the network or the emulator.

The *floor* is the least any store must do with the same lines: parse each line with the same
JSON parser, pull out the fields a result row holds (key, response body, output text, finish
reason, four token counts) and write them in bulk into a fresh table with no index but its
key (SQLite: ``executemany`` in one transaction; PostgreSQL: ``COPY``).

Both run in this process, alternating ``--rounds`` times on fresh data; the best and median
of each, their ratio and every round are printed. Usage::

    .venv/bin/python benchmarks/bench_fetch_store.py                     # both databases
    .venv/bin/python benchmarks/bench_fetch_store.py --items 20000 --backends sqlite
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
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
from sqlalchemy import create_engine, func, select, text, update

from llmbatch.bootstrap import Runtime, build_runtime
from llmbatch.config import AppConfig
from llmbatch.db import tables
from llmbatch.db.item_view import ITEMS_WITH_RESULTS, settled
from llmbatch.db.migrate import upgrade
from llmbatch.domain.models import BatchProgress, ItemResult
from llmbatch.domain.states import BatchStatus, ItemStatus
from llmbatch.json_text import strict_loads
from llmbatch.observability.logging import configure_logging
from llmbatch.providers.jsonl import parse_result_stream
from llmbatch.providers.openai.wire import parse_result_line
from llmbatch.service_layer.jobs import create_job
from llmbatch.service_layer.progress import fetch_batch
from llmbatch.service_layer.submission import plan_job
from llmbatch.worker.heap import freeze_heap

MODEL = "gpt-4o-mini"
PG_ADMIN = os.environ.get("LLMBATCH_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
WORDS = ["batch", "results", "stored", "in", "bulk", "at", "the", "floor", "of", "what", "the",
         "database", "can", "take", "while", "the", "worker", "keeps", "every", "promise"]


def result_line(custom_id: str, n: int) -> bytes:
    """One OpenAI batch output line, shaped like the API's (and the emulator's)."""
    content = " ".join(WORDS[(n + i) % len(WORDS)] for i in range(40))
    body = {
        "id": f"chatcmpl-{n:012d}", "object": "chat.completion", "created": 1764000000,
        "model": MODEL, "system_fingerprint": "fp_0123456789",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content,
                                             "refusal": None, "annotations": []},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 20 + n % 7, "completion_tokens": 40,
                  "total_tokens": 60 + n % 7,
                  "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                  "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                                "accepted_prediction_tokens": 0,
                                                "rejected_prediction_tokens": 0}},
        "service_tier": "default",
    }
    return json.dumps({"id": f"batch_req_{n:012d}", "custom_id": custom_id,
                       "response": {"status_code": 200, "request_id": f"req_{n:012d}",
                                    "body": body}, "error": None},
                      separators=(",", ":")).encode()


@dataclass
class Backend:
    name: str
    url: str


@contextmanager
def sqlite_backend(workdir: Path) -> Iterator[Backend]:
    yield Backend("sqlite", f"sqlite:///{workdir / f'store-{uuid.uuid4().hex[:8]}.db'}")


@contextmanager
def postgres_backend() -> Iterator[Backend | None]:
    name = f"llmbatch_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # a benchmark says why it skips and goes on
        print(f"postgres: skipped ({type(exc).__name__}: {str(exc).splitlines()[0]})")
        yield None
        return
    try:
        yield Backend("postgres", PG_ADMIN.rsplit("/", 1)[0].replace(
            "postgresql://", "postgresql+psycopg://") + f"/{name}")
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def read_local_file(adapter: Any, path: Path) -> Any:
    """The OpenAI adapter itself, its results read from a local file instead of downloaded
    (only ``iter_results`` is replaced, on this instance)."""

    def iter_results(provider_batch_id: str, progress: BatchProgress) -> Iterator[ItemResult]:
        with path.open("rb") as file:
            yield from parse_result_stream(iter(lambda: file.read(1 << 16), b""),
                                           parse_result_line, provider="openai")

    adapter.iter_results = iter_results
    return adapter


def prepare(backend: Backend, workdir: Path, items: int) -> tuple[Runtime, str, Path]:
    """A job of ``items`` prompts planned into one batch, marked sent and ended, and its
    result file: everything the fetch step needs."""
    config = AppConfig.model_validate({
        "database": {"url": backend.url},
        "providers": {"openai": {"api_key": "sk-bench", "base_url": "http://127.0.0.1:9/v1",
                                 "retention": {"delete_when_stored": False},
                                 "models": [{"name": MODEL}]}},
    })
    rt = build_runtime(config)
    upgrade(rt.engine)
    prompts = workdir / "prompts.jsonl"
    with prompts.open("w") as out:
        for n in range(items):
            out.write(json.dumps({"custom_id": f"q-{n}", "body": {"messages": [
                {"role": "user", "content": f"question {n}"}]}}) + "\n")
    job_id, _ = create_job(rt, prompts, provider="openai", model=MODEL)
    (batch_id,) = plan_job(rt, job_id)
    with rt.engine.begin() as conn:
        conn.execute(update(tables.provider_batches).where(
            tables.provider_batches.c.id == batch_id).values(
            status=str(BatchStatus.ENDED), provider_batch_id="batch_bench",
            provider_status="completed", result_refs={"output_file_id": "file_bench"}))
        conn.execute(update(tables.items).where(tables.items.c.batch_id == batch_id).values(
            status=str(ItemStatus.SUBMITTED), attempts=1))
        keys = [row[0] for row in conn.execute(
            text("SELECT provider_key FROM items WHERE batch_id = :b ORDER BY seq"),
            {"b": batch_id})]
    results = workdir / "results.jsonl"
    with results.open("wb") as out:
        for n, key in enumerate(keys):
            out.write(result_line(key, n) + b"\n")
    rt.registry.register("openai", read_local_file(rt.registry.get("openai"), results))
    return rt, batch_id, results


def store(rt: Runtime, batch_id: str) -> float:
    started = time.perf_counter()
    status = fetch_batch(rt, batch_id)
    elapsed = time.perf_counter() - started
    if status is not BatchStatus.FETCHED:
        raise SystemExit(f"fetch ended {status}, not fetched")
    with rt.engine.connect() as conn:  # every item reads back as succeeded, with its response
        stored = conn.execute(select(func.count()).select_from(ITEMS_WITH_RESULTS).where(
            tables.items.c.batch_id == batch_id, settled.status == str(ItemStatus.SUCCEEDED),
            settled.response.is_not(None))).scalar_one()
        expected = conn.execute(select(func.count()).where(
            tables.items.c.batch_id == batch_id)).scalar_one()
    return elapsed if stored == expected else float("nan")


def floor_rows(results: Path) -> Iterator[tuple[Any, ...]]:
    """Each line parsed and reduced to the fields of a result row (with the response body
    kept as JSON text, as a database column needs it)."""
    with results.open("rb") as file:
        for raw in file:
            line = strict_loads(raw)  # the parser the fetch reads lines with (msgspec)
            body = line["response"]["body"]
            usage = body["usage"]
            choice = body["choices"][0]
            yield (line["custom_id"], orjson.dumps(body).decode(),
                   choice["message"]["content"], choice["finish_reason"],
                   usage["prompt_tokens"], usage["completion_tokens"],
                   usage["prompt_tokens_details"]["cached_tokens"],
                   usage["completion_tokens_details"]["reasoning_tokens"])


FLOOR_COLUMNS = ("provider_key, response, output_text, finish_reason, input_tokens, "
                 "output_tokens, cached_tokens, reasoning_tokens")


def floor(backend: Backend, results: Path) -> float:
    table = f"floor_{uuid.uuid4().hex[:8]}"
    engine = create_engine(backend.url)
    json_type = "JSONB" if backend.name == "postgres" else "JSON"
    with engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE {table} (provider_key VARCHAR(500) PRIMARY KEY, "
                          f"response {json_type}, output_text TEXT, finish_reason VARCHAR(50), "
                          "input_tokens INTEGER, output_tokens INTEGER, cached_tokens INTEGER, "
                          "reasoning_tokens INTEGER)"))
    raw = engine.raw_connection()
    try:
        started = time.perf_counter()
        cursor = raw.cursor()
        if backend.name == "postgres":
            with cursor.copy(f"COPY {table} ({FLOOR_COLUMNS}) FROM STDIN") as copy:
                for row in floor_rows(results):
                    copy.write_row(row)
        else:
            cursor.executemany(f"INSERT INTO {table} ({FLOOR_COLUMNS}) VALUES "
                               "(?, ?, ?, ?, ?, ?, ?, ?)",
                               floor_rows(results))  # type: ignore[arg-type]  # any iterable
        raw.commit()
        elapsed = time.perf_counter() - started
    finally:
        raw.close()
        engine.dispose()
    return elapsed


def run(backend: Backend, items: int, rounds: int) -> tuple[list[float], list[float]]:
    floors, stores = [], []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="llmbatch-store-") as tmp:
            rt, batch_id, results = prepare(backend, Path(tmp), items)
            # Both run on a heap frozen as a worker's is once it is set up (worker/heap.py):
            # the collector does not walk this process's imports and the job just prepared.
            freeze_heap()
            try:
                floors.append(floor(backend, results))
                stores.append(store(rt, batch_id))
            finally:
                gc.unfreeze()
            rt.engine.dispose()
    return floors, stores


def _rates(items: int, seconds: list[float]) -> str:
    return (f"{items / min(seconds):,.0f} / {items / statistics.median(seconds):,.0f} "
            f"({statistics.median(seconds):.2f}s)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    figures: list[dict[str, object]] = []
    configure_logging("WARNING")  # the figures alone on stdout, warnings on stderr
    print(f"storing {args.items:,} OpenAI chat results, {args.rounds} rounds, items/s: "
          f"best / median (median seconds)")
    print(f"{'backend':<10}{'floor':>26}{'llmbatch fetch':>26}{'ratio of medians':>18}")
    for name in args.backends.split(","):
        with tempfile.TemporaryDirectory(prefix="llmbatch-store-") as tmp:
            context = sqlite_backend(Path(tmp)) if name == "sqlite" else postgres_backend()
            with context as backend:
                if backend is None:
                    continue
                floors, stores = run(backend, args.items, args.rounds)
        f, s = statistics.median(floors), statistics.median(stores)
        print(f"{name:<10}{_rates(args.items, floors):>26}{_rates(args.items, stores):>26}"
              f"{f / s:>18.0%}")
        print(f"{'':<10}each round, floor / fetch: " + ", ".join(
            f"{args.items / a:,.0f} / {args.items / b:,.0f}" for a, b in zip(floors, stores,
                                                                           strict=True)))
        figures.append({"backend": name, "items": args.items, "floor_s": floors,
                        "llmbatch_s": stores})
    if args.json:
        args.json.write_text(json.dumps({"fetch": figures}, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
