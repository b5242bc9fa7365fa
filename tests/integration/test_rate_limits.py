"""Provider rate limits across processes: PostgreSQL, Redis, FOUR ``llmbatch worker``
processes (prefork, two children each) and a beat, against an OpenAI emulator that holds every
call back for a moment, so that calls overlap unless the limiter keeps them apart.

The emulator counts requests in flight itself (``max_in_flight_by_provider``) and every call
per operation, so the test checks what reached the provider, not what llmbatch believes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmbatch.domain.limits import bucket_shape
from llmbatch.domain.states import ItemStatus, JobStatus
from llmbatch.emulator.server import EmulatorServer
from llmbatch.service_layer.jobs import create_job

from .support import (
    MODEL,
    REDIS_DBS,
    Cluster,
    PostgresServer,
    RedisDb,
    emulator_stats,
    fast_emulator_settings,
    prefork_workers,
    reserved_redis_db,
    running_cluster,
    write_config,
    write_prompts,
)

pytestmark = pytest.mark.integration

MAX_CONCURRENT_CALLS = 2
CALLS_PER_MINUTE = 120
CALL_DELAY_S = 0.3
WORKERS = 4
JOBS, ITEMS, PER_BATCH = 4, 20, 10


@pytest.fixture(scope="module")
def limits_redis() -> Iterator[RedisDb]:
    """A Redis database of our own (the session's may serve another cluster's workers, which
    must not take our messages), reserved like the session fixture does."""
    with reserved_redis_db(reversed(REDIS_DBS),
                           none_free="no free Redis database for the rate-limit cluster") as db:
        yield db


@pytest.fixture(scope="module")
def slow_emulator() -> Iterator[EmulatorServer]:
    """An OpenAI emulator of our own whose every call takes ``CALL_DELAY_S``."""
    with EmulatorServer(fast_emulator_settings()) as server:
        server.set_faults([{"kind": "delay", "provider": "openai", "operation": "*",
                            "delay_s": CALL_DELAY_S}])
        yield server


@pytest.fixture(scope="module")
def limited_cluster(tmp_path_factory: pytest.TempPathFactory, postgres: PostgresServer,
                    limits_redis: RedisDb, slow_emulator: EmulatorServer) -> Iterator[Cluster]:
    """Four prefork workers and a beat, OpenAI capped at ``MAX_CONCURRENT_CALLS`` concurrent
    calls and ``CALLS_PER_MINUTE``."""
    workdir = tmp_path_factory.mktemp("limits-cluster")
    name, pg_url = postgres.create_database("limits")
    try:
        config_path = write_config(workdir / "llm_config.yaml", database_url=pg_url,
                                   broker_url=limits_redis.url, emulator_url=slow_emulator.url,
                                   max_requests=PER_BATCH)
        data: dict[str, Any] = yaml.safe_load(config_path.read_text(encoding="utf-8"))
        data["providers"]["openai"]["rate_limits"] = {
            "max_concurrent_calls": MAX_CONCURRENT_CALLS, "calls_per_minute": CALLS_PER_MINUTE,
            "max_wait_s": 2.0}
        config_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        with running_cluster(workdir, config_path, limits_redis, slow_emulator.url,
                             prefork_workers(config_path, WORKERS)) as cluster:
            yield cluster
    finally:
        postgres.drop_database(name)


class CallSampler:
    """Reads the emulator's OpenAI call count every few tenths of a second."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            calls = emulator_stats(self.url)["calls"].get("openai", {})
            self.samples.append((time.monotonic(), sum(calls.values())))
            self._stop.wait(0.2)

    def __enter__(self) -> CallSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def test_four_workers_keep_to_the_openai_call_limits_while_jobs_complete(
        limited_cluster: Cluster, tmp_path: Path) -> None:
    cluster = limited_cluster
    paths = [write_prompts(tmp_path / f"rl{n}.jsonl", ITEMS, prefix=f"rl{n}")
             for n in range(JOBS)]
    started = time.monotonic()
    with CallSampler(cluster.emulator_url) as sampler:
        job_ids = [create_job(cluster.rt, path, provider="openai", model=MODEL)[0]
                   for path in paths]
        jobs = cluster.wait(job_ids, timeout=180)
    elapsed = time.monotonic() - started

    stats = emulator_stats(cluster.emulator_url)
    for job in jobs.values():
        assert job.status is JobStatus.SUCCEEDED, job
        assert job.counts == {ItemStatus.SUCCEEDED: ITEMS}
    assert stats["batches_created"]["openai"] == JOBS * ITEMS // PER_BATCH

    # Concurrency: never more than the cap at the provider, across every worker process.
    peak = stats["max_in_flight_by_provider"]["openai"]
    assert 1 <= peak <= MAX_CONCURRENT_CALLS

    # Rate: any window of w seconds sees at most capacity + rate * w calls (which is the cap
    # for w = 60 s); one extra second covers a second request of an operation that reaches the
    # emulator after the operation took its tokens.
    shape = bucket_shape(CALLS_PER_MINUTE)
    total = sum(stats["calls"]["openai"].values())
    worst = 0.0
    for i, (t0, c0) in enumerate(sampler.samples):
        for t1, c1 in sampler.samples[i + 1:]:
            allowed = shape.capacity + shape.rate_per_s * (t1 - t0 + 1.0)
            worst = max(worst, (c1 - c0) / allowed)
    assert worst <= 1.0, f"a window exceeded the bucket's bound by {worst:.2f}x"
    assert total > shape.capacity  # the bucket had to refill: the rate limit was binding
    print(f"\n{JOBS} jobs x {ITEMS} items in {elapsed:.1f}s; openai calls: {total} "
          f"({stats['calls']['openai']}); peak in flight {peak}/{MAX_CONCURRENT_CALLS}; "
          f"busiest window at {worst:.0%} of the bucket's bound; "
          f"mean rate {60 * total / elapsed:.0f}/min (cap {CALLS_PER_MINUTE})")
