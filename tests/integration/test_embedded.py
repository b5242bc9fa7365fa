"""The embedded default end to end: SQLite database, SQLite broker, worker child processes
(what ``llmbatch demo`` and ``llmbatch submit --wait`` start), no server besides the emulator."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
import pytest

from llmbatch.bootstrap import Runtime, build_runtime
from llmbatch.config import load_config
from llmbatch.db.migrate import upgrade
from llmbatch.domain.states import ItemStatus, JobStatus
from llmbatch.service_layer.jobs import create_job
from llmbatch.service_layer.read_models import job_results, list_jobs

from .support import (
    MODEL,
    Processes,
    child_env,
    llmbatch_cmd,
    wait_for_jobs,
    write_config,
    write_prompts,
)

if TYPE_CHECKING:
    from llmbatch.emulator.server import EmulatorServer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(120),
    # kombu's SQLAlchemy transport models use lazy="noload", deprecated in SQLAlchemy 2.1;
    # publishing to the SQLite broker from this process configures them.
    pytest.mark.filterwarnings(
        "ignore:The ``noload`` loader strategy is deprecated:sqlalchemy.exc.SADeprecationWarning"),
]


def embedded_config(tmp_path: Path, emulator: EmulatorServer) -> Path:
    return write_config(tmp_path / "llm_config.yaml",
                        database_url=f"sqlite:///{tmp_path / 'llmbatch.db'}",
                        broker_url=f"sqla+sqlite:///{tmp_path / 'broker.db'}",
                        emulator_url=emulator.url, max_requests=10)


def runtime(config_path: Path) -> Runtime:
    return build_runtime(load_config(config_path, env={}))


def test_embedded_worker_with_beat_runs_a_job_to_succeeded(emulator: EmulatorServer,
                                                           tmp_path: Path) -> None:
    from llmbatch.worker.app import CeleryPublisher, make_celery

    config_path = embedded_config(tmp_path, emulator)
    rt = runtime(config_path)
    upgrade(rt.engine)
    app = make_celery(rt.config)
    rt.publisher = CeleryPublisher(app)
    prompts = write_prompts(tmp_path / "prompts.jsonl", 25, prefix="embedded")
    job_id, _ = create_job(rt, prompts, provider="openai", model=MODEL)
    processes = Processes(tmp_path)
    try:
        worker = processes.start("embedded-worker", "worker", "--beat", "--pool", "threads",
                                 "--concurrency", "4", "--config", str(config_path))
        job = wait_for_jobs(rt, [job_id], timeout=60, alive=processes.check_alive)[job_id]
        # The tick that moved the job ran in a thread of the worker: no beat process.
        helpers = psutil.Process(worker.popen.pid).children(recursive=True)
    finally:
        processes.stop_all()
        app.close()

    assert job.status is JobStatus.SUCCEEDED
    assert job.counts == {ItemStatus.SUCCEEDED: 25}
    assert [p.cmdline() for p in helpers] == []
    records = list(job_results(rt, job_id))
    assert [r.custom_id for r in records] == [f"embedded-{i:05d}" for i in range(25)]
    assert all(r.status is ItemStatus.SUCCEEDED and r.output_text for r in records)
    with rt.uow() as uow:
        assert sorted(b.item_count for b in uow.repo.batches_of_job(job_id)) == [5, 10, 10]
    rt.close()


def run_cli(tmp_path: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(llmbatch_cmd(*args), cwd=tmp_path, env=child_env(), text=True,
                          capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL,
                          check=False)


def test_submit_wait_starts_a_worker_and_exits_zero_when_the_job_succeeds(
        emulator: EmulatorServer, tmp_path: Path) -> None:
    config_path = embedded_config(tmp_path, emulator)
    prompts = write_prompts(tmp_path / "prompts.jsonl", 12, prefix="cli")

    done = run_cli(tmp_path, "submit", str(prompts), "--provider", "openai", "--model", MODEL,
                   "--wait", "--config", str(config_path))

    assert done.returncode == 0, done.stdout + done.stderr
    rt = runtime(config_path)
    jobs = list_jobs(rt).entries
    assert [(j.status, j.counts) for j in jobs] == [(JobStatus.SUCCEEDED,
                                                     {ItemStatus.SUCCEEDED: 12})]
    assert jobs[0].id in done.stdout
    results = run_cli(tmp_path, "results", jobs[0].id, "--config", str(config_path))
    assert results.returncode == 0, results.stderr
    lines = [json.loads(line) for line in results.stdout.splitlines()]
    assert [r["custom_id"] for r in lines] == [f"cli-{i:05d}" for i in range(12)]
    rt.close()


def test_submit_of_a_bad_file_exits_two_naming_the_line_and_stores_nothing(
        emulator: EmulatorServer, tmp_path: Path) -> None:
    config_path = embedded_config(tmp_path, emulator)
    prompts = write_prompts(tmp_path / "prompts.jsonl", 5, prefix="bad")
    with prompts.open("a", encoding="utf-8") as out:
        out.write('{"custom_id": "bad-broken", "body": \n')

    done = run_cli(tmp_path, "submit", str(prompts), "--provider", "openai", "--model", MODEL,
                   "--wait", "--config", str(config_path), timeout=30)

    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{prompts}:6" in done.stderr
    rt = runtime(config_path)
    assert list_jobs(rt).entries == ()
    rt.close()
