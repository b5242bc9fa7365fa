"""Fixtures shared by the unit tests."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator

import pytest
import structlog

from llmbatch.observability.logging import configure_logging


@pytest.fixture
def captured_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """llmbatch's own logging set-up at DEBUG, JSON, writing into the returned buffer."""
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    # An in-process uvicorn earlier in the session (the emulator's server) configured its
    # loggers its own way (own handlers, no propagation); `llmbatch api` passes
    # log_config=None, so in its process they propagate to llmbatch's handler as here.
    uvicorn_loggers = [logging.getLogger(n) for n in ("uvicorn", "uvicorn.access",
                                                      "uvicorn.error")]
    uvicorn_saved = [(lg.handlers[:], lg.propagate, lg.disabled, lg.level)
                     for lg in uvicorn_loggers]
    for lg in uvicorn_loggers:
        lg.handlers, lg.propagate, lg.disabled = [], True, False
        lg.setLevel(logging.NOTSET)
    configure_logging("DEBUG", "json")
    yield stream
    root.handlers, _ = saved
    root.setLevel(saved[1])
    for lg, (handlers, propagate, disabled, level) in zip(uvicorn_loggers, uvicorn_saved,
                                                          strict=True):
        lg.handlers, lg.propagate, lg.disabled = handlers, propagate, disabled
        lg.setLevel(level)
    structlog.reset_defaults()
