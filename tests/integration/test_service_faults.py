"""The services llmbatch runs on fail mid-run, and every job still ends, nothing lost, nothing
billed twice.

Each test runs its own small cluster (two ``llmbatch worker --pool prefork`` and one
``llmbatch beat``, OpenAI on an emulator of its own, so its counters are the test's alone):

* **broker killed and restarted**: a private ``redis-server`` (no persistence) is SIGKILLed
  while batches are at the provider and started again empty, so every queued and unacked
  message is lost. The beat's tick finds the work again from the database.
* **database restarted**: a private PostgreSQL cluster is stopped in immediate mode (every
  connection cut, tasks fail mid-way) and started again.
* **beat killed**: the scheduler is SIGKILLed, left down for a while and started again.

Afterwards every job has succeeded, every input line has one result from one attempt, and
the emulator shows every llmbatch batch created once and every request sent in exactly one
created batch (the input files of all batches at the emulator, read back per custom_id).
The machine's own PostgreSQL and Redis are never touched: what is broken is started here.
"""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from llmbatch.bootstrap import Runtime
from llmbatch.domain.states import ItemStatus, JobStatus
from llmbatch.emulator.server import EmulatorServer
from llmbatch.service_layer.jobs import create_job

from .chaos_support import batch_rows, event_rows, item_rows
from .private_services import private_postgres, private_redis
from .support import (
    API_KEY,
    MODEL,
    REDIS_DBS,
    Cluster,
    PostgresServer,
    Processes,
    emulator_stats,
    fast_emulator_settings,
    prefork_workers,
    reserved_redis_db,
    running_cluster,
    signal_group,
    wait_while_progressing,
    write_prompts,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

JOBS, ITEMS, MAX_REQUESTS = 4, 30, 10  # twelve provider batches
LEASE_S = 5.0
DOWN_S = 3.0  # how long the broken service stays down
STALL_S = 45.0  # nothing moved this long: stuck (leases, backoffs and ticks are all shorter)
CAP_S = 150.0  # a generous bound for a run that keeps moving (expected: well under a minute)
TAG = "llmbatch_batch_id="


def write_config(path: Path, *, database_url: str, broker_url: str, emulator_url: str) -> Path:
    """OpenAI on the emulator, batches of ``MAX_REQUESTS``, a short lease, quick ticks."""
    config = {
        "database": {"url": database_url},
        "broker": {"url": broker_url, "polling_interval_s": 0.1},
        "worker": {"tick_interval_s": 0.3, "lease_s": LEASE_S},
        "polling": {"strategy": "fixed", "interval_s": 0.3},
        "retry": {"base_delay_s": 0.2, "max_delay_s": 1.0},
        # The inputs stay at the emulator: billed_per_item reads them after the run.
        "providers": {"openai": {"base_url": f"{emulator_url}/openai/v1", "api_key": API_KEY,
                                 "timeout_s": 10, "limits": {"max_requests": MAX_REQUESTS},
                                 "retention": {"delete_when_stored": False},
                                 "models": [{"name": MODEL}]}},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def fault_emulator() -> Iterator[EmulatorServer]:
    """An emulator of the test's own whose batches take ~2 s, so a fault lands mid-run."""
    settings = fast_emulator_settings().model_copy()
    with EmulatorServer(settings.model_copy(update={"timing": settings.timing.model_copy(
            update={"run_base_s": 1.5})})) as server:
        yield server


@contextmanager
def cluster_on(tmp_path: Path, *, database_url: str, broker_url: str,
               emulator: EmulatorServer, redis: Any = None) -> Iterator[Cluster]:
    config_path = write_config(tmp_path / "llm_config.yaml", database_url=database_url,
                               broker_url=broker_url, emulator_url=emulator.url)
    with running_cluster(tmp_path, config_path, redis, emulator.url,
                         prefork_workers(config_path, 2)) as cluster:
        yield cluster


def create_jobs(rt: Runtime, tmp_path: Path) -> dict[str, str]:
    """job id -> custom_id prefix."""
    jobs = {}
    for n in range(JOBS):
        prefix = f"fault{n}"
        path = write_prompts(tmp_path / f"{prefix}.jsonl", ITEMS, prefix=prefix)
        job_id, created = create_job(rt, path, provider="openai", model=MODEL, name=prefix)
        assert created
        jobs[job_id] = prefix
    return jobs


def wait_mid_run(rt: Runtime, job_ids: list[str], cap_s: float = 60.0) -> None:
    """Until some batch is at the provider while some job is still far from done."""
    deadline = time.monotonic() + cap_s
    while time.monotonic() < deadline:
        rows = batch_rows(rt, job_ids)
        if any(b.provider_batch_id for b in rows) and any(
                b.status in ("planned", "submitting", "in_progress") for b in rows):
            return
        time.sleep(0.05)
    pytest.fail("the run never reached mid-way (no batch at the provider)", pytrace=False)


def billed_per_item(emulator_url: str) -> Counter[str]:
    """How many batches created at the emulator hold each custom_id (read from their input
    files over the OpenAI API): 1 for every request billed once."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    base = f"{emulator_url}/openai/v1"
    counts = Counter[str]()
    after: str | None = None
    with httpx.Client(headers=headers, timeout=30) as client:
        while True:
            params: dict[str, Any] = {"limit": 100, **({"after": after} if after else {})}
            page = client.get(f"{base}/batches", params=params).raise_for_status().json()
            for batch in page["data"]:
                content = client.get(f"{base}/files/{batch['input_file_id']}/content")
                for line in content.raise_for_status().text.splitlines():
                    if line.strip():
                        counts[json.loads(line)["custom_id"]] += 1
            if not page.get("has_more"):
                return counts
            after = page["data"][-1]["id"]


@dataclass
class Fault:
    """What the test broke: ``kills`` (processes SIGKILLed or stopped immediately) and
    ``restarts``."""

    name: str
    kills: int = 0
    restarts: int = 0


def run_and_check(cluster: Cluster, tmp_path: Path, fault: Fault,
                  break_it: Callable[[], None], capsys: pytest.CaptureFixture[str],
                  alive: Callable[[], None] | None = None) -> None:
    """Create the jobs, break something mid-run (``break_it``), wait for the end while
    anything moves, print the figures, then check: all succeeded, 0 lost, 0 billed twice."""
    rt = cluster.rt
    started = time.monotonic()
    jobs_in = create_jobs(rt, tmp_path)
    job_ids = list(jobs_in)
    wait_mid_run(rt, job_ids)
    break_it()
    rt.close()  # our own connections may be to a server that is gone
    jobs, stopped = wait_while_progressing(rt, job_ids, stall_s=STALL_S, cap_s=CAP_S,
                                           alive=alive or cluster.processes.check_alive)
    elapsed = time.monotonic() - started
    stats = emulator_stats(cluster.emulator_url)
    billed = billed_per_item(cluster.emulator_url)

    rows = item_rows(rt, job_ids)
    batches = batch_rows(rt, job_ids)
    evs = event_rows(rt, job_ids)
    expected = {f"{prefix}-{i:05d}" for prefix in jobs_in.values() for i in range(ITEMS)}
    lost = sum(1 for r in rows if r.status != "succeeded" or r.response is None)
    lost += len(expected - {r.custom_id for r in rows})
    per_tag = Counter({k.removeprefix(TAG): n
                       for k, n in stats["creates_by_tag"].get("openai", {}).items()
                       if k.startswith(TAG)})
    recorded = {b.id for b in batches if b.provider_batch_id}
    duplicate_batches = sum(n - 1 for n in per_tag.values() if n > 1)
    duplicate_items = sum(n - 1 for n in billed.values() if n > 1)
    figures = {
        "fault": fault.name, "jobs": len(jobs_in), "items": len(expected),
        "kills": fault.kills, "restarts": fault.restarts,
        "job_statuses": dict(Counter(str(j.status) for j in jobs.values())),
        "batches": len(batches), "created_at_provider": int(stats["batches_created"].get(
            "openai", 0)),
        "lost": lost, "duplicates": duplicate_batches + duplicate_items,
        "adopted": sum(1 for e in evs if e.type == "batch.adopted"),
        "submit_interrupted": sum(1 for e in evs if e.type == "batch.submit_interrupted"),
        "max_item_attempts": max((r.attempts for r in rows), default=0),
        "seconds": round(elapsed, 1),
    }
    with capsys.disabled():
        print(f"\nservice-fault figures: {json.dumps(figures)}")

    assert stopped is None, f"jobs not all terminal: {stopped}: {figures}"
    assert all(j.status is JobStatus.SUCCEEDED and j.counts == {ItemStatus.SUCCEEDED: ITEMS}
               for j in jobs.values()), jobs
    assert lost == 0, figures
    assert all(r.attempts == 1 for r in rows), "an item was sent more than once"
    assert duplicate_batches == 0 and set(per_tag) == recorded, (per_tag, recorded)
    assert set(billed) == expected and duplicate_items == 0, figures


# ---- the faults ------------------------------------------------------------------------------

def test_broker_killed_and_restarted_empty_mid_run(
        tmp_path: Path, postgres: PostgresServer, fault_emulator: EmulatorServer,
        capsys: pytest.CaptureFixture[str]) -> None:
    name, pg_url = postgres.create_database("brokerfault")
    fault = Fault("broker killed (SIGKILL) and restarted empty")
    try:
        with private_redis(tmp_path) as redis, cluster_on(
                tmp_path, database_url=pg_url, broker_url=redis.url,
                emulator=fault_emulator) as cluster:
            def break_it() -> None:
                redis.restart(DOWN_S)  # every queued and unacked message is gone
                fault.kills += 1
                fault.restarts += 1
            run_and_check(cluster, tmp_path, fault, break_it, capsys)
    finally:
        postgres.drop_database(name)


def test_database_restarted_mid_run(tmp_path: Path, fault_emulator: EmulatorServer,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    fault = Fault("database stopped (immediate) and started again")
    with private_postgres() as pg, reserved_redis_db(
            reversed(REDIS_DBS), none_free="no free Redis database for this cluster") as redis, \
            cluster_on(tmp_path, database_url=pg.url, broker_url=redis.url,
                       emulator=fault_emulator, redis=redis) as cluster:
        def break_it() -> None:
            pg.restart(DOWN_S)  # every connection cut; tasks fail mid-way
            fault.kills += 1
            fault.restarts += 1
        run_and_check(cluster, tmp_path, fault, break_it, capsys)


def test_beat_killed_and_restarted(tmp_path: Path, postgres: PostgresServer,
                                   fault_emulator: EmulatorServer,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    name, pg_url = postgres.create_database("beatfault")
    fault = Fault("beat killed (SIGKILL) and restarted")
    try:
        with reserved_redis_db(reversed(REDIS_DBS),
                               none_free="no free Redis database for this cluster") as redis, \
                cluster_on(tmp_path, database_url=pg_url, broker_url=redis.url,
                           emulator=fault_emulator, redis=redis) as cluster:
            processes: Processes = cluster.processes

            def break_it() -> None:
                beat = next(p for p in processes.procs if p.name == "beat")
                signal_group(beat.popen.pid, signal.SIGKILL)
                beat.popen.wait(timeout=10)
                processes.procs.remove(beat)
                fault.kills += 1
                time.sleep(DOWN_S)  # the workers carry on with what was queued
                processes.start("beat", "beat", "--config", str(cluster.config_path))
                fault.restarts += 1
            run_and_check(cluster, tmp_path, fault, break_it, capsys)
    finally:
        postgres.drop_database(name)


def test_closing_a_redis_channel_whose_connection_is_gone_is_a_connection_error(
        tmp_path: Path) -> None:
    """The state a broker restart leaves some channels in (their connection's settings
    already cleared) made kombu's close raise AttributeError, which Celery takes for an
    unrecoverable error: the worker exited. Our channel raises the transport's connection
    error instead, which the consumer's close ignores before it reconnects."""
    from kombu import Connection
    from kombu.common import ignore_errors

    from llmbatch.worker.redis_broker import RedisTransport

    with private_redis(tmp_path) as redis, Connection(redis.url,
                                                      transport=RedisTransport) as conn:
        channel = conn.channel()
        channel.qos._delivered["tag-1"] = None  # a message delivered, not yet acked
        channel.connection.client = None  # what kombu leaves behind on a dead connection
        channel._pool = None
        ignore_errors(conn, channel.close)  # raised AttributeError with kombu's own channel
        assert channel.closed
