"""Wiring the metrics of one process to an endpoint: ``llmbatch worker --metrics-port`` and
the API's ``/metrics`` (``api_metrics_app``).

The database gauges read through their own engine without a pool (a connection per scrape):
a prefork worker forks its children from the process that serves the metrics, and a pooled
connection inherited across a fork would be shared by two processes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from llmbatch.config import DEFAULT_DATA_DIR, AppConfig
from llmbatch.observability.metrics import (
    DeadlineOf,
    enable_multiprocess,
    metrics,
    metrics_app,
    serve_metrics,
)

__all__ = ["api_metrics_app", "data_dir", "deadlines", "scrape_engine", "start_worker_metrics"]


def data_dir(config: AppConfig) -> Path:
    """Where llmbatch keeps local files: beside the SQLite database, else ``.llmbatch``."""
    url = make_url(config.database.url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return Path(str(url.database)).parent
    return DEFAULT_DATA_DIR


def scrape_engine(config: AppConfig) -> Engine:
    """An engine for scrape-time reads: no pool, statement parameters never in errors."""
    url = make_url(config.database.url)
    if url.get_backend_name() == "sqlite":
        return create_engine(url, poolclass=NullPool, hide_parameters=True,
                             connect_args={"timeout": config.database.busy_timeout_ms / 1000})
    return create_engine(url, poolclass=NullPool, hide_parameters=True)


def deadlines(config: AppConfig) -> DeadlineOf:
    """Provider name -> seconds a batch may run before it counts as stuck (the adapter's
    deadline plus ``stuck_grace_s``); None for a provider this process cannot build."""
    from llmbatch.providers.registry import ProviderRegistry

    registry = ProviderRegistry(config)

    def deadline_of(provider: str) -> float | None:
        try:
            return float(registry.get(provider).deadline_s
                         + config.provider(provider).stuck_grace_s)
        except Exception:  # an unknown or disabled provider: no deadline to show
            return None

    return deadline_of


def start_worker_metrics(config: AppConfig, port: int, host: str = "0.0.0.0") -> Path:
    """Multiprocess mode under ``<data dir>/prometheus/worker-<port>`` (emptied), then
    ``/metrics`` on ``port``. Call before anything is measured (before Celery forks)."""
    directory = data_dir(config).resolve() / "prometheus" / f"worker-{port}"
    enable_multiprocess(directory)
    metrics().initialize({name: [m.name for m in provider.models]
                          for name, provider in config.providers.items() if provider.enabled})
    serve_metrics(port, scrape_engine(config), deadlines(config), host=host)
    return directory


def api_metrics_app(config: AppConfig) -> Callable[..., Any]:
    """The ASGI app the API mounts at ``/metrics``: this process's counters (or every
    process's, when ``PROMETHEUS_MULTIPROC_DIR`` is set) and the database gauges."""
    return metrics_app(scrape_engine(config), deadlines(config))
