"""The first PostgreSQL + Redis shape the README shows: ``llmbatch worker --beat`` and nothing
else, with the worker's default pool (threads).

Its tick is a thread of the worker, not Celery's beat process, so the deployment is one
process; no separate ``llmbatch beat`` runs here. Jobs must still go from created to
succeeded: the thread's ticks reach the Redis broker and the worker takes them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import psutil
import pytest

from llmbatch.db.migrate import upgrade
from llmbatch.domain.states import ItemStatus, JobStatus
from llmbatch.service_layer.jobs import create_job

from .support import (
    MODEL,
    REDIS_DBS,
    PostgresServer,
    Processes,
    reserved_redis_db,
    wait_for_jobs,
    write_config,
    write_prompts,
)
from .test_embedded import runtime

if TYPE_CHECKING:
    from llmbatch.emulator.server import EmulatorServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

JOBS, ITEMS, MAX_REQUESTS = 2, 30, 10  # several batches: several ticks must dispatch them


def test_one_default_worker_with_beat_runs_jobs_as_one_process(
        postgres: PostgresServer, emulator: EmulatorServer, tmp_path: Path) -> None:
    from llmbatch.worker.app import CeleryPublisher, make_celery

    name, pg_url = postgres.create_database("defaultworker")
    processes = Processes(tmp_path)
    try:
        with reserved_redis_db(reversed(REDIS_DBS),
                               none_free="no free Redis database for this test") as redis:
            config_path = write_config(tmp_path / "llm_config.yaml", database_url=pg_url,
                                       broker_url=redis.url, emulator_url=emulator.url,
                                       max_requests=MAX_REQUESTS)
            rt = runtime(config_path)
            upgrade(rt.engine)
            app = make_celery(rt.config)
            rt.publisher = CeleryPublisher(app)
            try:
                worker = processes.start("worker", "worker", "--config", str(config_path),
                                         "--beat")
                job_ids = [create_job(rt, write_prompts(tmp_path / f"p{n}.jsonl", ITEMS,
                                                        prefix=f"default{n}"),
                                      provider="openai", model=MODEL)[0]
                           for n in range(JOBS)]
                jobs = wait_for_jobs(rt, job_ids, timeout=90, alive=processes.check_alive)
                tree = psutil.Process(worker.popen.pid).children(recursive=True)
            finally:
                processes.stop_all()
                app.close()
                rt.engine.dispose()
    finally:
        postgres.drop_database(name)
    assert all(j.status is JobStatus.SUCCEEDED and j.counts == {ItemStatus.SUCCEEDED: ITEMS}
               for j in jobs.values()), jobs
    assert tree == [], f"the worker started child processes: {tree}"
