"""Structured logs: structlog with dotted event names and job, batch and task ids bound in
context (``bound_ids``; the tenant too, where a task reads its job: ``bind_tenant``), as JSON
lines or for a console.

Every line, ours and the standard library's (Celery, SQLAlchemy, httpx), goes through one
handler whose last step before rendering is the redaction step (``observability.redaction``):
a provider error quoting a prompt's email address is logged with ``[email]``. SQL statement
parameters never reach a log line (engines are built with ``hide_parameters``), and no service
logs request or response text.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, unquote_plus

import structlog

from llmbatch.observability.redaction import configure_redaction, redactor

if TYPE_CHECKING:
    from llmbatch.config import AppConfig

__all__ = ["SDK_LOGGERS", "LogFormat", "bind_tenant", "bound_ids", "configure_logging",
           "redact_event"]

# uvicorn's access log: one line per request, its path quoted.
ACCESS_LOGGER = "uvicorn.access"
# Loggers that would print request or response bodies below INFO.
SDK_LOGGERS = ("openai", "anthropic", "google_genai", "google.genai", "httpcore", "httpcore2")


class LogFormat(StrEnum):
    """How log lines look."""

    JSON = "json"
    CONSOLE = "console"


def redact_event(_logger: Any, _method: str,
                 event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: every value of the line through the redactor (the formatted
    exception included: it runs after ``format_exc_info``)."""
    clean = redactor()
    for key, value in event_dict.items():
        if isinstance(value, str):
            event_dict[key] = clean.text(value)
        elif isinstance(value, dict | list | tuple):
            event_dict[key] = clean.value(value)
        elif isinstance(value, BaseException):
            event_dict[key] = clean.text(repr(value))
    return event_dict


def _stdlib_message(_logger: Any, _method: str,
                    event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A standard-library record's message with its arguments merged (``%s`` formatting),
    so the redactor sees the text as it would be printed."""
    record = event_dict.get("_record")
    if record is not None and "event" not in event_dict:
        event_dict["event"] = record.getMessage()
    return event_dict


def _decode_access_target(record: logging.LogRecord) -> bool:
    """Handler filter: uvicorn's access lines with the request target decoded. uvicorn
    percent-encodes it (``jane%40example.org``), which would hide an email address or a
    phone number in a path or query from the redactor."""
    if record.name == ACCESS_LOGGER and isinstance(record.args, tuple):
        record.args = tuple(_decoded_url(a) if isinstance(a, str) else a for a in record.args)
    return True


def _decoded_url(target: str) -> str:
    """A request target as it reads: the path percent-decoded, the query form-decoded."""
    path, mark, query = target.partition("?")
    return unquote(path) + mark + unquote_plus(query)


def configure_logging(level: str = "INFO", fmt: LogFormat | str | None = None,
                      config: AppConfig | None = None) -> None:
    """Configure structlog and the standard library once per process. ``fmt`` None: console
    in a terminal, JSON lines otherwise. ``config`` brings ``privacy.patterns``."""
    if config is not None:
        configure_redaction(config.privacy.patterns)
    chosen = LogFormat(fmt) if fmt else (LogFormat.CONSOLE if sys.stderr.isatty()
                                         else LogFormat.JSON)
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        if chosen is LogFormat.CONSOLE else structlog.processors.JSONRenderer())
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[_stdlib_message, *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, redact_event, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    handler.addFilter(_decode_access_target)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(numeric)
    # Provider SDKs log whole request options (an uploaded file: the prompts) at DEBUG.
    for name in SDK_LOGGERS:
        logging.getLogger(name).setLevel(max(numeric, logging.INFO))


# Set inside ``bound_ids``: only then may a service add ids it learns (``bind_tenant``), since
# only then is someone there to take them off again when the task ends.
_in_bound_block: ContextVar[bool] = ContextVar("llmbatch_in_bound_block", default=False)


@contextmanager
def bound_ids(**ids: str | None) -> Iterator[None]:
    """Bind ids (job_id, batch_id, task, task_id...) to every log line inside the block;
    ids a service binds inside it (``bind_tenant``) end with it too."""
    present = {k: v for k, v in ids.items() if v is not None}
    before = structlog.contextvars.get_contextvars()
    inside = _in_bound_block.set(True)
    try:
        with structlog.contextvars.bound_contextvars(**present):
            yield
    finally:
        _in_bound_block.reset(inside)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(**before)


def bind_tenant(tenant: str, *, job_id: str | None = None) -> None:
    """Add the job's tenant (and, for a task named by its batch, the job's id) to the lines
    of the task under way (its ``bound_ids`` block). Services call it where they read the
    job row anyway; outside a task it does nothing, so no tenant is left on the lines of
    whatever the thread does next."""
    if _in_bound_block.get():
        ids = {"tenant_id": tenant} if job_id is None else {"tenant_id": tenant,
                                                            "job_id": job_id}
        structlog.contextvars.bind_contextvars(**ids)
