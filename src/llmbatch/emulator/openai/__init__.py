"""The OpenAI Batch API emulator (Files + Batches), mounted at ``/openai/v1``.

Point the official SDK at it with ``OpenAI(base_url="http://HOST:PORT/openai/v1",
api_key=...)``. ``install`` is what the shared app calls; ``OpenAIService`` is the same API as
plain methods, for unit tests.
"""

from __future__ import annotations

from fastapi import FastAPI

from llmbatch.emulator.openai.routes import build_router
from llmbatch.emulator.openai.service import OpenAIService
from llmbatch.emulator.openai.webhook_events import ended_batches
from llmbatch.emulator.runtime import EmulatorRuntime

__all__ = ["PREFIX", "OpenAIService", "install"]

PREFIX = "/openai/v1"


def install(app: FastAPI, runtime: EmulatorRuntime) -> OpenAIService:
    """Mount the OpenAI routes on ``app``, sharing ``runtime`` with the other providers."""
    service = OpenAIService(runtime)
    runtime.webhooks.register("openai", lambda now: ended_batches(service.state, now))
    app.include_router(build_router(service), prefix=PREFIX)
    return service
