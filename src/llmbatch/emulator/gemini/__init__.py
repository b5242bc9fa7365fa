"""The Gemini Batch Mode emulator (Files API + batches), mounted at ``/gemini``.

Point the official SDK at it with ``genai.Client(api_key=..., http_options=types.HttpOptions(
base_url="http://HOST:PORT/gemini", api_version="v1beta"))`` (``v1`` works too). ``install``
is what the shared app calls; ``GeminiService`` is the same API as plain methods.
"""

from __future__ import annotations

from fastapi import FastAPI

from llmbatch.emulator.gemini.routes import build_router
from llmbatch.emulator.gemini.service import GeminiService
from llmbatch.emulator.gemini.webhook_events import ended_batches
from llmbatch.emulator.runtime import EmulatorRuntime

__all__ = ["PREFIX", "GeminiService", "install"]

PREFIX = "/gemini"


def install(app: FastAPI, runtime: EmulatorRuntime) -> GeminiService:
    """Mount the Gemini routes on ``app``, sharing ``runtime`` with the other providers."""
    service = GeminiService(runtime)
    runtime.webhooks.register("gemini", lambda now: ended_batches(service.state, now))
    app.include_router(build_router(service, PREFIX), prefix=PREFIX)
    return service
