"""A tenant budget holds under a race: 20 jobs against one monthly budget, four worker
processes (``--pool solo``) on PostgreSQL and Redis, the OpenAI emulator over HTTP.

Every batch reserves its upper bound under a row lock before it goes, so however the workers
interleave, what is held plus what is settled never exceeds the budget; the budget is set so
that not every job can fit, and each job that did not run says which budget and by how much:
refused (``on_exceed: refuse``) or waiting for the month to turn (``wait``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from llmbatch.bootstrap import build_runtime
from llmbatch.config import load_config
from llmbatch.db import tables
from llmbatch.db.item_view import ITEMS_WITH_RESULTS
from llmbatch.db.item_view import settled as item_columns
from llmbatch.db.migrate import upgrade
from llmbatch.domain.job import Job
from llmbatch.domain.states import BatchStatus, JobStatus, is_terminal
from llmbatch.emulator.server import EmulatorServer
from llmbatch.pricing import to_pusd
from llmbatch.service_layer.budgets import BudgetExceededError
from llmbatch.service_layer.estimates import estimate_file
from llmbatch.service_layer.jobs import create_job
from llmbatch.service_layer.read_models import iter_job_events

from .support import (
    MODEL,
    REDIS_DBS,
    Cluster,
    PostgresServer,
    pool_workers,
    reserved_redis_db,
    running_cluster,
    write_config,
    write_prompts,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

JOBS, ITEMS, WORKERS = 20, 5, 4
FITTING = 8  # the budget holds this many jobs' upper bounds
RECHECK_S = 1.0  # rate_limits.recheck_s: how often a batch waiting for budget looks again
# ``wait``: all is still once nothing changed for this long, several rechecks of every
# waiting batch (and ticks: worker.tick_interval_s is 0.3 s) after the last settlement.
STILL_S = 5 * RECHECK_S
LEASE_S = 5.0


@pytest.fixture(params=["refuse", "wait"])
def on_exceed(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture
def budget_cluster(tmp_path_factory: pytest.TempPathFactory, postgres: PostgresServer,
                   emulator: EmulatorServer, on_exceed: str) -> Iterator[tuple[Cluster, Decimal]]:
    workdir = tmp_path_factory.mktemp(f"budget-race-{on_exceed}")
    sample = write_prompts(workdir / "sample.jsonl", ITEMS, prefix="job00")
    name, pg_url = postgres.create_database("budgetrace")
    try:
        with reserved_redis_db(reversed(REDIS_DBS),
                               none_free="no free Redis database for this cluster") as redis:
            config_path = write_config(workdir / "llm_config.yaml", database_url=pg_url,
                                       broker_url=redis.url, emulator_url=emulator.url)
            probe = build_runtime(load_config(config_path, env={}))  # no process needed
            try:
                upgrade(probe.engine)
                bound = estimate_file(probe, sample, provider="openai", model=MODEL,
                                      learn=False).batch_usd_bound
            finally:
                probe.close()
            assert bound is not None
            limit = (bound * FITTING).quantize(Decimal("1e-9"))
            config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
            config["cost"] = {"budgets": {"tenants": {"default": str(limit)},
                                          "on_exceed": on_exceed}}
            config["providers"]["openai"]["rate_limits"] = {"recheck_s": RECHECK_S}
            # A task that died holding a batch is retried once its lease runs out: 5 s, not
            # 30 s (the heartbeat renews it every third, so a live task keeps it).
            config["worker"]["lease_s"] = LEASE_S
            config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
            with running_cluster(workdir, config_path, redis, emulator.url,
                                 pool_workers(config_path, WORKERS, pool="solo",
                                              concurrency=1)) as cluster:
                yield cluster, limit
    finally:
        postgres.drop_database(name)


def settled_or_waiting(cluster: Cluster, job_ids: list[str], *, cap_s: float) -> dict[str, Job]:
    """Poll until every job has ended or waits for budget with nothing held any more, and
    stays so for ``STILL_S``, past several rechecks of the waiting batches
    (``rate_limits.recheck_s``): a settlement below its bound may let one more batch in at its
    next look."""
    deadline = time.monotonic() + cap_s
    still_since: tuple[float, int] | None = None
    while True:
        cluster.processes.check_alive()
        with cluster.rt.uow() as uow:
            jobs = {job_id: uow.repo.get_job(job_id) for job_id in job_ids}
            waiting = [b for j in jobs.values() if not is_terminal(j.status)
                       for b in uow.repo.batches_of_job(j.id)]
        with cluster.rt.engine.connect() as conn:
            held = conn.execute(select(tables.budget_reservations.c.batch_id).where(
                tables.budget_reservations.c.status == "held")).all()
        still = all(j.status is not JobStatus.PENDING for j in jobs.values()) and all(
            b.error_code == "waiting_for_budget" for b in waiting)
        done = sum(j.status is JobStatus.SUCCEEDED for j in jobs.values())
        if not (still and not held):
            still_since = None
        elif still_since is None or still_since[1] != done:
            still_since = (time.monotonic(), done)
        elif time.monotonic() - still_since[0] > STILL_S:
            return jobs
        if time.monotonic() > deadline:
            pytest.fail(f"not settled or waiting after {cap_s}s", pytrace=False)
        time.sleep(0.25)


def test_twenty_jobs_never_settle_past_one_tenant_budget(
        budget_cluster: tuple[Cluster, Decimal], on_exceed: str, tmp_path: Path) -> None:
    cluster, limit = budget_cluster
    accepted: list[str] = []
    refused: list[str] = []
    for n in range(JOBS):
        path = write_prompts(tmp_path / f"j{n}.jsonl", ITEMS, prefix=f"job{n:02d}")
        try:
            accepted.append(create_job(cluster.rt, path, provider="openai", model=MODEL)[0])
        except BudgetExceededError as exc:  # refused at submit: the figures are in the error
            assert "over the monthly budget of default" in exc.message
            assert f"${format(limit.normalize(), 'f')} limit" in exc.message
            refused.append(exc.message)

    if on_exceed == "refuse":
        jobs = cluster.wait(accepted, timeout=180)
    else:  # the jobs that do not fit wait for the month to turn: until all is still
        jobs = settled_or_waiting(cluster, accepted, cap_s=180)

    with cluster.rt.engine.connect() as conn:
        reservations = conn.execute(select(tables.budget_reservations)).all()
        ledgers = {r.scope: int(r.committed_pusd)
                   for r in conn.execute(select(tables.budget_ledgers)).all()}
        item_costs = conn.execute(select(item_columns.cost_pusd)
                                  .select_from(ITEMS_WITH_RESULTS)).scalars().all()
    settled = sum(int(r.actual_pusd) for r in reservations if r.status == "settled")
    (tenant_committed,) = [v for k, v in ledgers.items() if k.startswith("tenant:default:")]

    assert {r.status for r in reservations} == {"settled"}  # nothing left held
    assert settled == sum(int(c) for c in item_costs if c is not None) == tenant_committed
    assert settled <= to_pusd(limit)
    ran = [j for j in jobs.values() if j.status is JobStatus.SUCCEEDED]
    stopped = [j for j in jobs.values() if j.status is not JobStatus.SUCCEEDED]
    assert len(ran) >= 1 and len(stopped) + len(refused) >= 1  # the budget did bite
    assert len(ran) <= math.floor(to_pusd(limit) / min(
        int(r.actual_pusd) for r in reservations if r.actual_pusd))
    for job in stopped:  # every job the budget stopped says why, with the figures
        with cluster.rt.uow() as uow:
            batches = uow.repo.batches_of_job(job.id)
        if on_exceed == "refuse":
            assert job.status is JobStatus.FAILED, job
            assert {b.error_code for b in batches} == {"over_budget"}
            assert all("over the monthly budget of default" in (b.error or "") and "$" in
                       (b.error or "") for b in batches)
        else:
            assert job.status is JobStatus.RUNNING, job
            assert {(b.status, b.error_code) for b in batches} == {
                (BatchStatus.PLANNED, "waiting_for_budget")}
            (event,) = [e for e in iter_job_events(cluster.rt, job.id)
                        if e.type == "batch.waiting_for_quota"]
            assert event.data["reason"] == "waiting_for_budget"
            assert "over the monthly budget of default" in event.data["message"]
    # Settling fetches wake the waiting batches together: they must never deadlock (a loser's
    # batch would sit out its lease; db.budgets.wake_waiting locks in id order).
    for proc in cluster.processes.procs:
        assert "deadlock detected" not in proc.log.read_text(
            encoding="utf-8", errors="replace").lower(), proc.name
