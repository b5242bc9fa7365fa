"""The lifecycle tasks. Each takes ids, calls one service, and returns.

Nothing here decides anything: retries, backoff and "has this already happened" live in the
services and the database, so a duplicated or replayed message changes nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from celery import Celery

from llmbatch.bootstrap import Runtime, build_runtime
from llmbatch.config import AppConfig
from llmbatch.observability.logging import bound_ids
from llmbatch.service_layer import tasks as names
from llmbatch.service_layer.progress import fetch_batch, finalize_job, poll_batch
from llmbatch.service_layer.provider_data import delete_provider_data
from llmbatch.service_layer.scheduler import tick
from llmbatch.service_layer.submission import plan_job, submit_batch
from llmbatch.service_layer.unit_of_work import Publisher

__all__ = ["register_tasks"]

JOB_TASKS = frozenset({names.PLAN, names.FINALIZE})


def register_tasks(app: Celery, config: AppConfig,
                   publisher: Callable[[Celery], Publisher]) -> None:
    """Bind the service functions to task names on ``app``; ``publisher(app)`` is how the
    tasks' runtime publishes follow-up tasks (given by ``worker.app``, which this module must
    not import: it imports this one)."""
    state: dict[str, Any] = {}

    def runtime() -> Runtime:
        # One runtime per process: engines and SDK clients must not cross a fork.
        if state.get("pid") != os.getpid():
            state["runtime"] = build_runtime(config, publisher(app))
            state["pid"] = os.getpid()
        rt: Runtime = state["runtime"]
        return rt

    def bind(name: str, service: Callable[[Runtime, str], Any]) -> None:
        id_name = "job_id" if name in JOB_TASKS else "batch_id"

        # A tick that finds many batches due names several in one message
        # (``scheduler.wake_up_messages``); each is handled as if it had come alone.
        @app.task(name=name, bind=True, ignore_result=True)  # type: ignore[untyped-decorator]
        def _task(self: Any, *entity_ids: str) -> str:
            done = []
            for entity_id in entity_ids:
                with bound_ids(task=name, task_id=self.request.id, **{id_name: entity_id}):
                    done.append(str(service(runtime(), entity_id)))
            return ", ".join(done)

    bind(names.PLAN, plan_job)
    bind(names.SUBMIT, submit_batch)
    bind(names.POLL, poll_batch)
    bind(names.FETCH, fetch_batch)
    bind(names.FINALIZE, finalize_job)
    bind(names.CLEANUP, delete_provider_data)

    @app.task(name=names.WEBHOOKS, ignore_result=True)  # type: ignore[untyped-decorator]
    def _webhooks() -> int:
        from llmbatch.webhooks.delivery import deliver_due

        with bound_ids(task=names.WEBHOOKS):
            return deliver_due(runtime())

    @app.task(name=names.TICK, ignore_result=True)  # type: ignore[untyped-decorator]
    def _tick() -> dict[str, int]:
        return dict(tick(runtime()))
