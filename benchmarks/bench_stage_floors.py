"""Build + upload and finalize, each next to its floor for the same rows (issue 13 item 5).

*build + upload*: llmbatch's real submit step (``submit_batch``: claim, gates, stream the
batch's rows out of the database, encode each line with the OpenAI adapter, upload the file,
create the batch) against an emulator process; the floor streams the same rows out of the
same database with one ordered query, writes each as a batch input line (``orjson``), uploads
the file to the same emulator with plain ``httpx`` and creates the batch: the provider calls
any build must make, and nothing else.

*finalize*: llmbatch's ``finalize_job`` on the job once its batch is fetched; the floor is the
least a close must do: one aggregate over the job's items (count and token sums per status)
and one row written, in one transaction.

Per round: a fresh job of ``--items`` prompts planned into one batch; floor and llmbatch
alternate which goes first. Usage::

    .venv/bin/python benchmarks/bench_stage_floors.py                 # both databases
    .venv/bin/python benchmarks/bench_stage_floors.py --items 20000 --backends sqlite --json f.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import orjson
from bench_openai_path import Backend, embedded_backend, postgres_backend
from compare_litellm import API_KEY, MODEL, Emulator, write_prompts
from sqlalchemy import Engine, text

from llmbatch.bootstrap import Runtime, build_runtime
from llmbatch.config import AppConfig
from llmbatch.db.migrate import upgrade
from llmbatch.domain.states import BatchStatus, JobStatus
from llmbatch.observability.logging import configure_logging
from llmbatch.service_layer.jobs import create_job
from llmbatch.service_layer.progress import fetch_batch, finalize_job, poll_batch
from llmbatch.service_layer.submission import plan_job, submit_batch

TIMING = {"validate_s": 0.0, "run_base_s": 0.0, "run_per_item_s": 0.0, "finalize_s": 0.0}


def runtime(backend: Backend, emulator: Emulator) -> Runtime:
    config = AppConfig.model_validate({
        "database": {"url": backend.database_url}, "broker": {"url": backend.broker_url},
        "polling": {"strategy": "fixed", "interval_s": 0.1},
        "providers": {"openai": {"api_key": API_KEY, "base_url": emulator.openai_url,
                                 "timeout_s": 600, "models": [{"name": MODEL}]}}})
    rt = build_runtime(config)
    upgrade(rt.engine)
    return rt


# ---- build + upload --------------------------------------------------------------------------

def floor_lines(engine: Engine, batch_id: str) -> Iterator[bytes]:
    """The batch's rows in input order, each as an OpenAI batch input line."""
    raw = engine.raw_connection()
    try:
        if engine.dialect.name == "postgresql":  # a server-side cursor, as the build uses
            assert raw.driver_connection is not None
            cursor = raw.driver_connection.cursor(name=f"floor_{uuid.uuid4().hex[:8]}")
            mark = "%s"
        else:
            cursor, mark = raw.cursor(), "?"
        cursor.execute(f"SELECT custom_id, request FROM items WHERE batch_id = {mark} "
                       "ORDER BY seq", (batch_id,))
        while rows := cursor.fetchmany(2000):
            for custom_id, request in rows:
                stored = request if isinstance(request, dict) else orjson.loads(request)
                yield orjson.dumps({"custom_id": custom_id, "method": "POST",
                                    "url": "/v1/chat/completions",
                                    "body": {**stored["body"], "model": MODEL}}) + b"\n"
    finally:
        raw.close()


def floor_build_upload(engine: Engine, batch_id: str, emulator: Emulator,
                       workdir: Path) -> float:
    path = workdir / f"floor-{uuid.uuid4().hex[:6]}.jsonl"
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=emulator.openai_url, headers=headers, timeout=600) as client:
        client.get("/batches", params={"limit": 1}).raise_for_status()  # connected, untimed
        started = time.perf_counter()
        with path.open("wb") as out:
            for line in floor_lines(engine, batch_id):
                out.write(line)
        with path.open("rb") as file:
            uploaded = client.post("/files", data={"purpose": "batch"},
                                   files={"file": (path.name, file, "application/jsonl")})
        uploaded.raise_for_status()
        created = client.post("/batches", json={
            "input_file_id": uploaded.json()["id"], "endpoint": "/v1/chat/completions",
            "completion_window": "24h"})
        created.raise_for_status()
        return time.perf_counter() - started


def llmbatch_build_upload(rt: Runtime, batch_id: str) -> float:
    started = time.perf_counter()
    status = submit_batch(rt, batch_id)
    elapsed = time.perf_counter() - started
    if status is not BatchStatus.IN_PROGRESS:
        raise SystemExit(f"submit ended {status}, not in progress")
    return elapsed


# ---- finalize --------------------------------------------------------------------------------

def floor_finalize(engine: Engine, job_id: str, table: str) -> float:
    started = time.perf_counter()
    with engine.begin() as conn:
        counts = conn.execute(text(
            "SELECT status, count(*), sum(input_tokens), sum(output_tokens), "
            "sum(cached_tokens), sum(reasoning_tokens) FROM items WHERE job_id = :j "
            "GROUP BY status"), {"j": job_id}).all()
        conn.execute(text(f"INSERT INTO {table} (job_id, counts) VALUES (:j, :c)"),
                     {"j": job_id, "c": json.dumps([list(row) for row in counts])})
    return time.perf_counter() - started


def llmbatch_finalize(rt: Runtime, job_id: str) -> float:
    started = time.perf_counter()
    status = finalize_job(rt, job_id)
    elapsed = time.perf_counter() - started
    if status is not JobStatus.SUCCEEDED:
        raise SystemExit(f"finalize ended {status}, not succeeded")
    return elapsed


# ---- a round ---------------------------------------------------------------------------------

def fetched(rt: Runtime, batch_id: str, timeout_s: float = 600) -> None:
    """Poll until the emulator has the results, then store them (untimed)."""
    deadline = time.monotonic() + timeout_s
    while poll_batch(rt, batch_id) is not BatchStatus.ENDED:
        if time.monotonic() > deadline:
            raise SystemExit(f"batch {batch_id} did not end in {timeout_s}s")
        time.sleep(0.1)
    if fetch_batch(rt, batch_id) is not BatchStatus.FETCHED:
        raise SystemExit(f"batch {batch_id} was not fetched")


def one_round(backend: Backend, emulator: Emulator, prompts: Path, workdir: Path,
              floor_first: bool) -> dict[str, tuple[float, float]]:
    """{stage: (floor s, llmbatch s)} on a fresh job."""
    rt = runtime(backend, emulator)
    scratch = f"floor_{uuid.uuid4().hex[:8]}"
    try:
        with rt.engine.begin() as conn:
            conn.execute(text(f"CREATE TABLE {scratch} (job_id VARCHAR(40), counts TEXT)"))
        job_id, _ = create_job(rt, prompts, provider="openai", model=MODEL)
        (batch_id,) = plan_job(rt, job_id)
        pairs: list[tuple[str, Callable[[], float], Callable[[], float]]] = [
            ("build + upload", lambda: floor_build_upload(rt.engine, batch_id, emulator, workdir),
             lambda: llmbatch_build_upload(rt, batch_id)),
            ("finalize", lambda: floor_finalize(rt.engine, job_id, scratch),
             lambda: llmbatch_finalize(rt, job_id)),
        ]
        out: dict[str, tuple[float, float]] = {}
        for stage, floor, ours in pairs:
            if stage == "finalize":
                fetched(rt, batch_id)
            if floor_first:
                f = floor()
                o = ours()
            else:
                o = ours()
                f = floor()
            out[stage] = (f, o)
        return out
    finally:
        rt.engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    configure_logging("WARNING")  # the figures alone on stdout, warnings on stderr
    print(f"build + upload and finalize next to their floors, {args.items:,} items in one "
          f"batch, {args.rounds} rounds alternating; items/s best / median (median s)")
    print(f"{'backend':<9}{'stage':<16}{'floor':>32}{'llmbatch':>32}{'ratio':>8}")
    figures: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="llmbatch-floors-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        emulator = Emulator(workdir, TIMING)
        stack.callback(emulator.stop)
        prompts = workdir / "prompts.jsonl"
        write_prompts(prompts, args.items)
        for name in [b.strip() for b in args.backends.split(",") if b.strip()]:
            rounds: list[dict[str, tuple[float, float]]] = []
            for n in range(args.rounds):
                here = workdir / f"{name}-{n}"
                here.mkdir()
                context: Any = (embedded_backend(here, 1) if name == "sqlite"
                                else postgres_backend("postgres", 1))
                with context as backend:
                    if backend is None:
                        break
                    rounds.append(one_round(backend, emulator, prompts, here, n % 2 == 0))
            for stage in ("build + upload", "finalize"):
                if not rounds:
                    continue
                floors = [r[stage][0] for r in rounds]
                ours = [r[stage][1] for r in rounds]
                f, o = statistics.median(floors), statistics.median(ours)
                print(f"{name:<9}{stage:<16}{rates(args.items, floors):>32}"
                      f"{rates(args.items, ours):>32}{f / o:>8.0%}", flush=True)
                figures.append({"backend": name, "stage": stage, "items": args.items,
                                "floor_s": floors, "llmbatch_s": ours})
    if args.json:
        args.json.write_text(json.dumps({"stages": figures}, indent=2), encoding="utf-8")
    return 0


def rates(items: int, seconds: list[float]) -> str:
    return (f"{items / min(seconds):,.0f} / {items / statistics.median(seconds):,.0f} "
            f"({statistics.median(seconds):.2f}s)")


if __name__ == "__main__":
    sys.exit(main())
