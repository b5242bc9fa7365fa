"""Composition root: config -> engine -> unit of work -> provider registry -> publisher.

Every entry point (CLI, worker, API) builds one ``Runtime`` and hands it to the services.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Engine

from llmbatch.config import AppConfig
from llmbatch.db.engine import make_engine
from llmbatch.db.journal import DatabaseJournal
from llmbatch.observability.redaction import configure_redaction
from llmbatch.providers.registry import ProviderRegistry
from llmbatch.service_layer.unit_of_work import NullPublisher, Publisher, UnitOfWork

__all__ = ["Runtime", "build_runtime", "utcnow"]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    """Everything a service needs, built once per process."""

    config: AppConfig
    engine: Engine
    registry: ProviderRegistry
    publisher: Publisher = field(default_factory=NullPublisher)
    clock: Callable[[], datetime] = utcnow
    # Names the process in logs and lease tokens; a lease itself belongs to one task
    # execution (``new_lease_owner``), so two threads of a process are two holders.
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.engine, self.publisher,
                          webhook_batch_events=self.config.webhooks.batch_events,
                          retain_requests=self.config.privacy.retain_requests)

    def new_lease_owner(self) -> str:
        """A lease token for one task execution."""
        return f"{self.worker_id}:{uuid.uuid4().hex[:12]}"

    def close(self) -> None:
        """Release the connections this runtime holds: the provider adapters' HTTP pools, the
        publisher's broker connections (if it keeps any) and the engine's pool. Whoever builds
        a short-lived runtime (a command, an embedded client, a test) calls it; a socket left
        to the garbage collector instead warns (``ResourceWarning``) in whatever code runs at
        that moment. The runtime may still be used after: each part reconnects on demand."""
        try:
            self.registry.close()
        finally:
            try:
                close_publisher = getattr(self.publisher, "close", None)
                if callable(close_publisher):
                    close_publisher()
            finally:
                self.engine.dispose()


def build_runtime(config: AppConfig, publisher: Publisher | None = None) -> Runtime:
    """Build the runtime for ``config``; the engine connects lazily."""
    configure_redaction(config.privacy.patterns)
    engine = make_engine(config.database)
    return Runtime(config=config, engine=engine,
                   registry=ProviderRegistry(config, journal=DatabaseJournal(engine)),
                   publisher=publisher or NullPublisher())
