"""``llmbatch api``: serve the REST API (``llmbatch.api``) under uvicorn.

Embedded (SQLite, SQLite broker) it serves the local database, whose schema it migrates like
``submit``; scale-out (PostgreSQL and a broker) it is one of as many API processes as you like,
each publishing new work to the broker the workers consume.

Its log lines, uvicorn's included (the access log quotes request paths, which may hold a
caller's ids), go through llmbatch's one logging set-up and so through the redaction step.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from llmbatch.cli.common import ConfigOpt
from llmbatch.observability.logging import LogFormat

if TYPE_CHECKING:
    from fastapi import APIRouter

    from llmbatch.bootstrap import Runtime

__all__ = ["api_command", "build_api", "extra_routers"]


def build_api(config_path: Path | None) -> tuple[object, str, int, Runtime]:
    """The app for ``config_path`` with its configured host and port, and its runtime."""
    from llmbatch.api.app import create_app
    from llmbatch.cli.runtime import ensure_schema, runtime
    from llmbatch.service_layer.wakeups import BackgroundPublisher
    from llmbatch.worker.app import make_celery, ping_broker

    rt = runtime(config_path, publish=True)
    # Wake-up calls go out from a thread of their own: a request never waits for the broker.
    rt.publisher = BackgroundPublisher(rt.publisher)
    ensure_schema(rt)
    celery = make_celery(rt.config)
    app = create_app(rt, broker_ping=lambda: ping_broker(celery),
                     extra_routers=extra_routers(rt))
    return app, rt.config.api.host, rt.config.api.port, rt


def extra_routers(rt: Runtime) -> list[APIRouter]:
    """Routers mounted beside the job and health routes (``/metrics`` and the like): add
    yours here."""
    return []


def api_command(
    host: Annotated[str | None, typer.Option(help="Address to listen on (default: api.host)")
                    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: api.port, 8000)")] = None,
    config: ConfigOpt = None,
    loglevel: str = "warning",
    log_format: Annotated[LogFormat | None, typer.Option(
        help="json or console (default: console in a terminal, else json)")] = None,
) -> None:
    """Serve the REST API (OpenAPI description at /openapi.json, docs at /docs)."""
    import uvicorn

    from llmbatch.observability.logging import configure_logging

    app, default_host, default_port, rt = build_api(config)
    configure_logging(loglevel, log_format, rt.config)
    # log_config=None: uvicorn keeps its hands off logging, its lines reach our handler.
    try:
        uvicorn.run(app, host=host or default_host,  # type: ignore[arg-type]
                    port=default_port if port is None else port, log_level=loglevel.lower(),
                    log_config=None)
    finally:
        rt.close()  # sends the wake-up calls still queued, for a few seconds at most
