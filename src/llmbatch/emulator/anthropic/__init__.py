"""The Anthropic Message Batches emulator, mounted at ``/anthropic``.

Point the official SDK at it with ``Anthropic(base_url="http://HOST:PORT/anthropic",
api_key=...)`` (no ``/v1``: the SDK adds it). ``install`` is what the shared app calls;
``AnthropicService`` is the same API as plain methods, for unit tests.
"""

from __future__ import annotations

from fastapi import FastAPI

from llmbatch.emulator.anthropic.routes import build_router
from llmbatch.emulator.anthropic.service import AnthropicService
from llmbatch.emulator.runtime import EmulatorRuntime

__all__ = ["PREFIX", "AnthropicService", "install"]

PREFIX = "/anthropic"


def install(app: FastAPI, runtime: EmulatorRuntime) -> AnthropicService:
    """Mount the Anthropic routes on ``app``, sharing ``runtime`` with the other providers."""
    service = AnthropicService(runtime)
    app.include_router(build_router(service, PREFIX), prefix=PREFIX)
    return service
