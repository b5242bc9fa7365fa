"""Every lifecycle task's log lines carry the job's tenant and id, also the tasks a worker
runs by batch id (submit, poll, fetch), which learn the job from the batch row."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import structlog

from llmbatch.observability.logging import bound_ids
from llmbatch.service_layer import tasks
from llmbatch.service_layer.jobs import create_job

from . import harness
from .harness import MODEL, Driver

pytestmark = pytest.mark.service


def as_the_worker_runs_it(name: str, service: Callable[..., Any]) -> Callable[..., Any]:
    """The service inside the ``bound_ids`` block ``worker.tasks`` gives it: the task's name
    and the one id its message carries."""
    id_name = "job_id" if name in (tasks.PLAN, tasks.FINALIZE) else "batch_id"

    def run(rt: Any, *ids: str) -> Any:
        with bound_ids(task=name, **({id_name: ids[0]} if ids else {})):
            return service(rt, *ids)
    return run


def test_tenant_and_job_are_on_the_lines_of_every_lifecycle_task(
        make_driver: Callable[..., Driver], write_jsonl: Callable[..., Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name, service in list(harness.SERVICES.items()):
        monkeypatch.setitem(harness.SERVICES, name, as_the_worker_runs_it(name, service))
    driver = make_driver()
    job_id, _ = create_job(driver.rt, write_jsonl(3), provider="fake", model=MODEL,
                           tenant="acme")
    with structlog.testing.capture_logs(
            processors=[structlog.contextvars.merge_contextvars]) as lines:
        driver.run(job_id)
    by_task = {line.get("task"): line for line in lines}
    # submit, poll and fetch are named by batch; plan and finalize by job.
    for task, event in ((tasks.SUBMIT, "llmbatch.batch.submitted"),
                        (tasks.POLL, "llmbatch.batch.ended"),
                        (tasks.FETCH, "llmbatch.batch.fetched"),
                        (tasks.FINALIZE, "llmbatch.job.completed")):
        assert task in by_task, (task, lines)
        mine = [line for line in lines if line.get("task") == task]
        assert any(line["event"] == event for line in mine), (task, mine)
        for line in mine:
            assert line["tenant_id"] == "acme" and line["job_id"] == job_id, line
    # Nothing is left bound once a task has ended.
    assert "tenant_id" not in structlog.contextvars.get_contextvars()
