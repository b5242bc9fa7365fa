"""Building the Celery app from the configuration (never at import time).

Embedded default: kombu's SQLAlchemy transport on an SQLite file, so no broker server is
needed. Scale-out: Redis or RabbitMQ URLs. Tasks ack late and are re-delivered when a worker
dies; every task is idempotent (it claims a lease and checks state), so that is safe.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from celery import Celery
from sqlalchemy.engine import make_url

from llmbatch.config import AppConfig
from llmbatch.service_layer import tasks as task_names

__all__ = ["CeleryPublisher", "make_celery"]

QUEUE = "llmbatch"
SQLA_PREFIX = "sqla+"
SQLA_TRANSPORT = "llmbatch.worker.sqla_broker:SQLAlchemyTransport"


class CeleryPublisher:
    """Publishes lifecycle task messages through a Celery app."""

    def __init__(self, app: Celery) -> None:
        self._app = app

    def publish(self, task: str, *args: Any, countdown: float | None = None) -> None:
        self._app.send_task(task, args=list(args), countdown=countdown, queue=QUEUE)


def _ensure_sqlite_dir(broker_url: str) -> None:
    if broker_url.startswith("sqla+sqlite"):
        database = make_url(broker_url.removeprefix("sqla+")).database
        if database:
            Path(database).parent.mkdir(parents=True, exist_ok=True)


def make_celery(config: AppConfig) -> Celery:
    """A Celery app wired to ``config``'s broker, with the lifecycle tasks registered."""
    _ensure_sqlite_dir(config.broker.url)
    broker_url, transport = config.broker.url, None
    if broker_url.startswith(SQLA_PREFIX):
        # kombu's own SQLAlchemy transport cannot take polling_interval (see sqla_broker).
        broker_url, transport = broker_url.removeprefix(SQLA_PREFIX), SQLA_TRANSPORT
    app = Celery("llmbatch", broker=broker_url, set_as_current=False)
    app.conf.update(
        broker_transport=transport,
        task_default_queue=QUEUE,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"polling_interval": config.broker.polling_interval_s},
        beat_schedule={
            "llmbatch-tick": {"task": task_names.TICK,
                              "schedule": config.worker.tick_interval_s,
                              "options": {"queue": QUEUE, "expires": 60}},
        },
        timezone="UTC",
    )
    from llmbatch.worker.tasks import register_tasks

    register_tasks(app, config, CeleryPublisher)
    os.environ.setdefault("FORKED_BY_MULTIPROCESSING", "1")
    return app
