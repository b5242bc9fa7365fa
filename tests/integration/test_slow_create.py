"""A provider ``create`` slower than the lease is billed once, whatever the worker pool.

PostgreSQL, a Redis broker, three ``llmbatch worker`` processes and one beat, on all three
providers, against an emulator that holds every ``batches.create`` back ``DELAY_S`` (well over
the ``LEASE_S`` lease) before it creates the batch. Nothing else goes wrong: no process is
killed, no call fails. A large upload on a slow link looks exactly like this to llmbatch.

While a create runs, the task that sent it still owns its batch: the tick must not take the
submission for interrupted, and no other task may send the batch again, neither one in another
process (prefork children, other workers) nor one in another thread of the same process
(``--pool threads``). Afterwards every job has succeeded, every input line has its one result,
and the emulator has created exactly one provider batch per llmbatch batch: OpenAI and Gemini
batches carry our batch id (metadata / displayName); Anthropic batches carry no tag, so the
batches it created are compared with the ones llmbatch recorded.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from llmbatch.domain.states import ItemStatus, JobStatus
from llmbatch.emulator.server import EmulatorServer
from llmbatch.service_layer.jobs import create_job

from .chaos_support import (
    ANTHROPIC_VERSION,
    PROVIDERS,
    anthropic_batches,
    batch_rows,
    event_rows,
    item_rows,
    job_prefix,
    timeline,
    write_job_file,
)
from .support import (
    API_KEY,
    REDIS_DBS,
    Cluster,
    PostgresServer,
    emulator_stats,
    fast_emulator_settings,
    pool_workers,
    reserved_redis_db,
    running_cluster,
    wait_while_progressing,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

LEASE_S = 3.0
DELAY_S = 6.0  # every create, at every provider, is held back this long (twice the lease)
CLIENT_TIMEOUT_S = 4 * DELAY_S  # the client waits the create out: its outcome is never unknown
WORKERS = 3
JOBS_PER_PROVIDER = 2
ITEMS_PER_JOB = 25
MAX_REQUESTS = 10  # so each job is planned as three batches: 10 + 10 + 5
IN_FLIGHT = 3  # batches per provider at the provider (or being sent) at once: two rounds
STALL_S = 4 * DELAY_S  # nothing moved for this long: stuck
START_CAP_S = 120.0  # generous: until the workers have planned a job
CAP_S = 240.0  # a generous bound for a run that keeps moving (expected: well under a minute)
TAG = {"openai": "llmbatch_batch_id=", "gemini": "displayName="}
# Pools and their task concurrency per worker process: threads sharing one process (and so
# one host:pid), or prefork children with a process each. Together they have more task slots
# than the 3 * IN_FLIGHT creates sent at once: the tick and any second submission run on the
# same workers, and with every slot held by a slow create neither would run until one ended.
POOLS = {"threads": 6, "prefork": 4}


def write_config(path: Path, *, database_url: str, broker_url: str, emulator_url: str) -> Path:
    """All three providers on the emulator, batches of at most ``MAX_REQUESTS`` and at most
    ``IN_FLIGHT`` of them at a provider at once, a short lease, ticks and polls every few
    tenths of a second."""
    providers: dict[str, Any] = {}
    for name, (model, prefix, _) in PROVIDERS.items():
        providers[name] = {"base_url": emulator_url + prefix, "api_key": API_KEY,
                           "timeout_s": CLIENT_TIMEOUT_S,
                           "limits": {"max_requests": MAX_REQUESTS},
                           # Anthropic's batches stay listed at the emulator for the check
                           # below (deleting them once stored would make them look unknown).
                           "retention": {"delete_when_stored": False},
                           "rate_limits": {"max_batches_in_flight": IN_FLIGHT,
                                           "recheck_s": 0.5},
                           "models": [{"name": model}]}
    providers["anthropic"]["options"] = {"api_version": ANTHROPIC_VERSION}
    config = {
        "database": {"url": database_url},
        "broker": {"url": broker_url, "polling_interval_s": 0.1},
        "worker": {"tick_interval_s": 0.3, "lease_s": LEASE_S},
        "polling": {"strategy": "fixed", "interval_s": 0.3},
        "retry": {"base_delay_s": 0.2, "max_delay_s": 1.0},
        "providers": providers,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(params=sorted(POOLS))
def pool(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def slow_emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(fast_emulator_settings()) as server:
        yield server


@pytest.fixture
def slow_cluster(tmp_path_factory: pytest.TempPathFactory, postgres: PostgresServer,
                 slow_emulator: EmulatorServer, pool: str) -> Iterator[Cluster]:
    """``WORKERS`` workers of the given pool and a beat, on a database and a Redis database
    of their own (the session cluster's workers run another config)."""
    workdir = tmp_path_factory.mktemp(f"slow-create-{pool}")
    name, pg_url = postgres.create_database("slowcreate")
    try:
        with reserved_redis_db(reversed(REDIS_DBS),
                               none_free="no free Redis database for this cluster") as redis:
            config_path = write_config(workdir / "llm_config.yaml", database_url=pg_url,
                                       broker_url=redis.url, emulator_url=slow_emulator.url)
            with running_cluster(workdir, config_path, redis, slow_emulator.url,
                                 pool_workers(config_path, WORKERS, pool=pool,
                                              concurrency=POOLS[pool])) as cluster:
                yield cluster
    finally:
        postgres.drop_database(name)


def hold_back_creates(emulator_url: str) -> None:
    """Through the control endpoint: every provider's create waits ``DELAY_S``, then runs."""
    response = httpx.post(f"{emulator_url}/_emulator/faults", timeout=10, json={
        "mode": "replace",
        "rules": [{"kind": "delay", "operation": "batches.create", "delay_s": DELAY_S}]})
    response.raise_for_status()


def create_jobs(cluster: Cluster, tmp_path: Path) -> dict[str, tuple[str, str]]:
    """``JOBS_PER_PROVIDER`` jobs per provider, interleaved; job id -> (provider, prefix)."""
    jobs: dict[str, tuple[str, str]] = {}
    for n in range(JOBS_PER_PROVIDER):
        for provider, (model, _, _) in PROVIDERS.items():
            prefix = job_prefix(provider, n)
            path = write_job_file(tmp_path / f"{prefix}.jsonl", prefix, ITEMS_PER_JOB)
            job_id, created = create_job(cluster.rt, path, provider=provider, model=model,
                                         name=prefix)
            assert created
            jobs[job_id] = (provider, prefix)
    return jobs


def settled_stats(emulator_url: str) -> tuple[dict[str, Any], bool]:
    """The emulator's counters once no create is still held back (every create call has made
    its batch), so a late duplicate is counted too; ``False`` if that did not happen within
    a client timeout."""
    deadline = time.monotonic() + CLIENT_TIMEOUT_S + 5
    while True:
        stats = emulator_stats(emulator_url)
        held = {p: ops.get("batches.create", 0) - stats["batches_created"].get(p, 0)
                for p, ops in stats["calls"].items()}
        if not any(held.values()):
            return stats, True
        if time.monotonic() > deadline:
            return stats, False
        time.sleep(0.2)


def test_a_create_slower_than_the_lease_is_billed_once(
        pool: str, slow_cluster: Cluster, slow_emulator: EmulatorServer, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    cluster, rt = slow_cluster, slow_cluster.rt
    hold_back_creates(cluster.emulator_url)
    started = time.monotonic()
    jobs_in = create_jobs(cluster, tmp_path)
    job_ids = list(jobs_in)
    # The stall clock starts once the workers are up (a busy machine takes a while to start
    # three pools): some job has been planned.
    planned_by = time.monotonic() + START_CAP_S
    while not batch_rows(rt, job_ids) and time.monotonic() < planned_by:
        cluster.processes.check_alive()
        time.sleep(0.2)

    jobs, stopped = wait_while_progressing(rt, job_ids, stall_s=STALL_S, cap_s=CAP_S,
                                           alive=cluster.processes.check_alive)
    elapsed = time.monotonic() - started
    stats, settled = settled_stats(cluster.emulator_url)
    slow_emulator.clear_faults()  # the read-back of Anthropic's batches must not wait

    problems: list[str] = []
    bad_jobs: set[str] = set()  # whose timeline the failure shows
    if stopped is not None:
        problems.append(f"jobs not all terminal: {stopped}")
    if not settled:
        problems.append(f"creates still held back at the emulator: {stats['calls']}")

    # -- every job succeeded, every line has its one result ---------------------------------
    for job in jobs.values():
        if job.status is not JobStatus.SUCCEEDED or job.counts != {
                ItemStatus.SUCCEEDED: ITEMS_PER_JOB}:
            problems.append(f"job {job.id} ({jobs_in[job.id][1]}): {job.status} "
                            f"{ {str(k): v for k, v in job.counts.items()} } {job.error or ''}")
            bad_jobs.add(job.id)
    rows = item_rows(rt, job_ids)
    lost = 0
    for job_id, (_, prefix) in jobs_in.items():
        mine = [r for r in rows if r.job_id == job_id]
        if [r.custom_id for r in mine] != [f"{prefix}-{i:05d}" for i in range(ITEMS_PER_JOB)]:
            problems.append(f"job {job_id} ({prefix}): {len(mine)} item rows for "
                            f"{ITEMS_PER_JOB} lines, or not one per line in order")
        for r in mine:
            if (r.status != "succeeded" or r.response is None or r.output_text is None
                    or r.error is not None or r.attempts != 1):
                lost += 1
                problems.append(f"{prefix} item {r.custom_id}: {r.status} after {r.attempts} "
                                f"attempts, batch {r.batch_id}, error {r.error}")
                bad_jobs.add(job_id)

    # -- one provider batch per llmbatch batch -------------------------------------------------
    batches = batch_rows(rt, job_ids)
    evs = event_rows(rt, job_ids)
    of_provider = {p: [b for b in batches if b.provider == p] for p in PROVIDERS}
    for job_id, (_, prefix) in jobs_in.items():
        sizes = sorted(b.item_count for b in batches if b.job_id == job_id)
        if sizes != [5, 10, 10]:
            problems.append(f"job {job_id} ({prefix}) planned as batches of {sizes}")
    sent = Counter(e.batch_id for e in evs if e.type in ("batch.submitted", "batch.adopted"))
    for b in batches:
        if b.status != "fetched" or not b.provider_batch_id or sent[b.id] != 1:
            problems.append(f"batch {b.id} ({b.provider}): {b.status}, provider batch "
                            f"{b.provider_batch_id}, sent {sent[b.id]} times")
            bad_jobs.add(b.job_id)
    created = {p: int(stats["batches_created"].get(p, 0)) for p in PROVIDERS}
    duplicates = Counter[str]()
    for provider, key in TAG.items():
        per_tag = Counter({k.removeprefix(key): n
                           for k, n in stats["creates_by_tag"].get(provider, {}).items()
                           if k.startswith(key)})
        for b in of_provider[provider]:
            if per_tag[b.id] != 1:
                problems.append(f"{provider}: batch {b.id} created {per_tag[b.id]} times "
                                "at the provider")
                bad_jobs.add(b.job_id)
        duplicates[provider] = created[provider] - len(of_provider[provider])
        strangers = set(per_tag) - {b.id for b in of_provider[provider]}
        if strangers or created[provider] != per_tag.total():
            problems.append(f"{provider}: {created[provider]} batches created, "
                            f"{per_tag.total()} under our tag, unknown tags {sorted(strangers)}")
    # Anthropic: no tag. Every batch it holds must be one llmbatch recorded, once; the
    # emulator's tag for the first request of a batch shows which one was sent again.
    job_of_prefix = {prefix: job_id for job_id, (_, prefix) in jobs_in.items()}
    for key, n in stats["creates_by_tag"].get("anthropic", {}).items():
        if key.startswith("first_custom_id=") and n > 1:
            first = key.removeprefix("first_custom_id=")
            problems.append(f"anthropic: the batch starting at {first} created {n} times")
            bad_jobs.add(job_of_prefix[first.rsplit("-", 1)[0]])
    held = [a["id"] for a in anthropic_batches(cluster.emulator_url)]
    recorded = {b.provider_batch_id for b in of_provider["anthropic"]}
    duplicates["anthropic"] = created["anthropic"] - len(of_provider["anthropic"])
    if created["anthropic"] != len(of_provider["anthropic"]) or set(held) != recorded:
        problems.append(f"anthropic: {created['anthropic']} batches created for "
                        f"{len(of_provider['anthropic'])} llmbatch batches; never recorded: "
                        f"{sorted(set(held) - recorded)}")

    # -- figures ---------------------------------------------------------------------------------
    ev_types = Counter(e.type for e in evs)
    figures = {
        "pool": pool, "workers": WORKERS, "concurrency": POOLS[pool],
        "lease_s": LEASE_S, "create_delay_s": DELAY_S,
        "jobs": len(jobs_in), "job_statuses": dict(Counter(str(j.status) for j in jobs.values())),
        "items": len(rows), "item_statuses": dict(Counter(r.status for r in rows)),
        "batches_planned": len(batches),
        "provider_batches_created": created,
        "create_calls": {p: ops.get("batches.create", 0) for p, ops in stats["calls"].items()},
        "duplicates": dict(duplicates), "lost_items": lost,
        "submit_interrupted": ev_types["batch.submit_interrupted"],
        "adopted": ev_types["batch.adopted"], "submit_retries": ev_types["batch.submit_retry"],
        "seconds": round(elapsed, 1),
    }
    report = f"slow-create figures: {json.dumps(figures)}"
    with capsys.disabled():
        print("\n" + report)
    if problems:
        shown = sorted(bad_jobs) or job_ids
        details = "\n".join(timeline(rt, job_id) for job_id in shown[:2])
        pytest.fail("\n".join([report, f"{len(problems)} problems:", *problems[:40], details]),
                    pytrace=False)
