"""Building the Celery app from the configuration (never at import time).

Embedded default: kombu's SQLAlchemy transport on an SQLite file, so no broker server is
needed. Scale-out: Redis or RabbitMQ URLs. Tasks ack late and are re-delivered when a worker
dies; every task is idempotent (it claims a lease and checks state), so that is safe.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from celery import Celery
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from llmbatch.config import AppConfig
from llmbatch.errors import InfrastructureError
from llmbatch.service_layer import tasks as task_names
from llmbatch.service_layer.unit_of_work import Message
from llmbatch.worker.sqla_broker import SQLAlchemyChannel

__all__ = ["CeleryPublisher", "make_celery", "ping_broker", "require_embedded_broker", "run_celery"]

QUEUE = "llmbatch"
SQLA_PREFIX = "sqla+"
SQLA_TRANSPORT = "llmbatch.worker.sqla_broker:SQLAlchemyTransport"
REDIS_SCHEMES = ("redis://",)  # rediss:// keeps kombu's own (its TLS set-up keys on the name)
REDIS_TRANSPORT = "llmbatch.worker.redis_broker:RedisTransport"


class CeleryPublisher:
    """Publishes lifecycle task messages through a Celery app."""

    def __init__(self, app: Celery) -> None:
        self._app = app

    def publish(self, task: str, *args: Any, countdown: float | None = None) -> None:
        self._app.send_task(task, args=list(args), countdown=countdown, queue=QUEUE)

    def publish_many(self, messages: Sequence[Message]) -> None:
        """Send ``messages`` through one producer; on the embedded broker they are stored in
        one transaction (``sqla_broker.SQLAlchemyChannel.grouped``)."""
        with self._app.producer_or_acquire() as producer:
            channel = producer.channel
            group = channel.grouped() if isinstance(channel, SQLAlchemyChannel) else nullcontext()
            with group:
                for task, args, countdown in messages:
                    self._app.send_task(task, args=list(args), countdown=countdown,
                                        queue=QUEUE, producer=producer)


def _ensure_sqlite_dir(broker_url: str) -> None:
    if broker_url.startswith("sqla+sqlite"):
        database = make_url(broker_url.removeprefix("sqla+")).database
        if database:
            Path(database).parent.mkdir(parents=True, exist_ok=True)


def require_embedded_broker(app: Celery) -> None:
    """On the embedded broker, that its database can be opened and written, or an
    ``InfrastructureError`` naming it. A server broker that is down at start is waited for
    (Celery retries, saying so): it is not touched here, where a connection would wait for
    it without a word; a broker file that cannot be opened or written will not get better."""
    if app.conf.broker_transport != SQLA_TRANSPORT:
        return
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        assert isinstance(channel, SQLAlchemyChannel)
        try:
            channel.check_writable(QUEUE)
        except DBAPIError as exc:
            reason = " ".join(str(exc.orig or exc).split())[:200]
            raise InfrastructureError(f"the embedded broker at {conn.hostname} cannot be "
                                      f"opened and written: {reason}") from None


def ping_broker(app: Celery) -> None:
    """Raises when the broker cannot take a message now (the API's ``/readyz``): the embedded
    broker's database must open and take its write lock (``require_embedded_broker``; a
    connection alone never touches the file), a server broker must answer within 2 s."""
    require_embedded_broker(app)
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)


def make_celery(config: AppConfig) -> Celery:
    """A Celery app wired to ``config``'s broker, with the lifecycle tasks registered."""
    _ensure_sqlite_dir(config.broker.url)
    broker_url, transport = config.broker.url, None
    if broker_url.startswith(SQLA_PREFIX):
        # kombu's own SQLAlchemy transport cannot take polling_interval (see sqla_broker).
        broker_url, transport = broker_url.removeprefix(SQLA_PREFIX), SQLA_TRANSPORT
    elif broker_url.startswith(REDIS_SCHEMES):
        # kombu's own Redis transport can crash a worker when the broker restarts.
        transport = REDIS_TRANSPORT
    transport_options: dict[str, Any] = {"polling_interval": config.broker.polling_interval_s}
    if transport == REDIS_TRANSPORT:
        # Without them a broker that accepts the connection and never answers holds a publish
        # (and the request or task that made it, with its database connection) forever.
        # Above kombu's 1 s BRPOP, which a consumer's idle read waits for.
        transport_options |= {"socket_timeout": config.broker.socket_timeout_s,
                              "socket_connect_timeout": config.broker.socket_timeout_s}
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
        broker_transport_options=transport_options,
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


def run_celery(app: Celery, argv: list[str]) -> int:
    """Run a ``celery`` sub-command (``worker``, ``beat``) on ``app``; its exit status.

    ``Celery.worker_main`` and ``Celery.start`` drop the status the command ends with, so a
    worker that stops on an unrecoverable error (a broker refusing it, a crash) would exit 0
    and a supervisor with ``Restart=on-failure`` would leave it down.

    The sub-command is run by itself, with the context Celery's ``celery`` group would give
    it, not through that group: importing the group imports every Celery command (``shell``,
    ``multi``, ``events``...) and ``click_repl`` with ``prompt_toolkit``, ~7 MiB that would sit
    in every worker and beat process for nothing.
    """
    from celery.bin.base import CLIContext

    name, *args = argv
    if name == "worker":
        from celery.bin.worker import worker as command
    elif name == "beat":
        from celery.bin.beat import beat as command
    else:
        raise ValueError(f"not a celery command llmbatch runs: {name!r}")
    no_color = os.environ.get("NO_COLOR", "").lower() not in ("", "0", "false", "no", "off")
    code = command.main(args=args, prog_name=f"celery {name}", standalone_mode=False,
                        obj=CLIContext(app=app, no_color=no_color, workdir=None))
    return code if isinstance(code, int) else 0
