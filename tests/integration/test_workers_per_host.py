"""Any number of ``llmbatch worker`` processes on one host, with RabbitMQ.

RabbitMQ makes each Celery node's control queue (``<node>.celery.pidbox``) exclusive, so two
workers that share a node name (Celery's default is ``celery@<host>``) cannot both run: the
second used to exit at start with ``ResourceLocked`` (and status 0). Workers now get unique
node names, so both stay up and both take lifecycle tasks; an explicit ``--hostname`` still
names a node as the operator wants.

Everything runs in a private RabbitMQ virtual host and a database of its own, so parallel
runs never share a queue.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from llmbatch.domain.states import ItemStatus, JobStatus
from llmbatch.service_layer.jobs import create_job

from .private_services import rabbitmq_vhost
from .support import (
    MODEL,
    PostgresServer,
    Processes,
    emulator_stats,
    wait_for_jobs,
    write_config,
    write_prompts,
)
from .test_embedded import runtime

if TYPE_CHECKING:
    from llmbatch.emulator.server import EmulatorServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

JOBS, ITEMS, MAX_REQUESTS = 3, 40, 5  # 8 batches a job: enough tasks for two workers
TASK_DONE = re.compile(r"Task (llmbatch\.\w+)\[[^\]]+\] succeeded")


@pytest.fixture
def rabbit_url() -> Iterator[str]:
    with rabbitmq_vhost() as url:
        yield url


@pytest.fixture
def own_db(postgres: PostgresServer) -> Iterator[str]:
    """A database of our own: the session cluster's beat must not pick up these jobs."""
    name, url = postgres.create_database("perhost")
    try:
        yield url
    finally:
        postgres.drop_database(name)


def test_two_workers_on_one_host_with_rabbitmq_both_run_and_both_work(
        rabbit_url: str, own_db: str, emulator: EmulatorServer, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from llmbatch.db.migrate import upgrade
    from llmbatch.worker.app import CeleryPublisher, make_celery

    config_path = write_config(tmp_path / "llm_config.yaml", database_url=own_db,
                               broker_url=rabbit_url, emulator_url=emulator.url,
                               max_requests=MAX_REQUESTS)
    rt = runtime(config_path)
    upgrade(rt.engine)
    app = make_celery(rt.config)
    rt.publisher = CeleryPublisher(app)
    processes = Processes(tmp_path)
    started = time.monotonic()
    try:
        workers = [processes.start(f"worker{n}", "worker", "--config", str(config_path),
                                   "--pool", "threads", "--concurrency", "2",
                                   "--loglevel", "INFO") for n in (1, 2)]
        processes.start("beat", "beat", "--config", str(config_path))
        job_ids = []
        for n in range(JOBS):
            prompts = write_prompts(tmp_path / f"p{n}.jsonl", ITEMS, prefix=f"host{n}")
            job_ids.append(create_job(rt, prompts, provider="openai", model=MODEL)[0])
        jobs = wait_for_jobs(rt, job_ids, timeout=120, alive=processes.check_alive)
        processes.check_alive()  # both workers still up at the end
        logs = [w.log.read_text(encoding="utf-8", errors="replace") for w in workers]
        with rt.uow() as uow:
            batch_ids = {b.id for j in job_ids for b in uow.repo.batches_of_job(j)}
        tags = emulator_stats(emulator.url)["creates_by_tag"].get("openai", {})
        created = Counter({b: tags.get(f"llmbatch_batch_id={b}", 0) for b in batch_ids})
    finally:
        processes.stop_all()
        app.close()
        rt.close()

    tasks_done = [len(TASK_DONE.findall(log)) for log in logs]
    nodes = [sorted(set(re.findall(r"llmbatch-\d+-[0-9a-f]{8}@\S+", log))) for log in logs]
    duplicates = sum(n - 1 for n in created.values() if n > 1)
    lost = sum(ITEMS - j.counts.get(ItemStatus.SUCCEEDED, 0) for j in jobs.values())
    figures = {"workers": 2, "broker": "rabbitmq (private vhost)", "jobs": len(jobs),
               "items": JOBS * ITEMS, "tasks_done_per_worker": tasks_done,
               "batches": len(batch_ids), "lost": lost, "duplicates": duplicates,
               "statuses": sorted(str(j.status) for j in jobs.values()),
               "seconds": round(time.monotonic() - started, 1)}
    with capsys.disabled():
        print(f"\nworkers-per-host figures: {json.dumps(figures)}")
    assert all(j.status is JobStatus.SUCCEEDED and j.counts == {ItemStatus.SUCCEEDED: ITEMS}
               for j in jobs.values()), jobs
    assert lost == 0 and duplicates == 0, figures
    assert set(created.values()) == {1}, created  # every batch created once at the provider
    assert not any("ResourceLocked" in log for log in logs)
    assert all(n > 0 for n in tasks_done), f"a worker took no task: {tasks_done}"
    assert all(len(n) == 1 for n in nodes) and nodes[0] != nodes[1], nodes


def test_an_explicit_hostname_names_the_node_and_a_taken_name_fails_loudly(
        rabbit_url: str, own_db: str, emulator: EmulatorServer, tmp_path: Path) -> None:
    """``-n`` names the node. A second worker given a name already running on RabbitMQ
    cannot start: it must exit non-zero (so a supervisor sees the failure), not 0."""
    config_path = write_config(tmp_path / "llm_config.yaml", database_url=own_db,
                               broker_url=rabbit_url, emulator_url=emulator.url)
    from llmbatch.db.migrate import upgrade

    rt = runtime(config_path)
    upgrade(rt.engine)
    rt.close()
    processes = Processes(tmp_path)
    args = ("worker", "--config", str(config_path), "--loglevel", "INFO", "-n", "ops-named@%h")
    try:
        first = processes.start("named", *args)
        deadline = time.monotonic() + 60
        while "ready" not in first.tail() and time.monotonic() < deadline:
            processes.check_alive()
            time.sleep(0.2)
        log = first.tail(200)
        second = processes.start("same-name", *args)
        code = second.popen.wait(timeout=60)
        second_log = second.tail(200)
    finally:
        processes.stop_all()
    assert re.search(r"ops-named@\S+ ready", log), log
    assert "ResourceLocked" in second_log, second_log
    assert code != 0, f"a worker that could not start exited with {code}"
