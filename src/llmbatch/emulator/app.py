"""The emulator's ASGI app: one server, one path prefix per provider, shared machinery.

``create_app(settings)`` builds the shared runtime (clock, blob store, ids, faults, stats),
mounts the control endpoint at ``/_emulator`` and every provider in ``PROVIDERS`` at its
prefix. A provider module contributes an ``install(app, runtime)`` function and raises
``EmulatorHTTPError`` with bodies in its own error format; this module turns those into
responses, adds an ``x-request-id`` to every provider response (SDKs surface it on errors)
and tracks requests in flight per provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmbatch.emulator import anthropic as anthropic_emulator
from llmbatch.emulator import gemini as gemini_emulator
from llmbatch.emulator import openai as openai_emulator
from llmbatch.emulator.clock import Clock
from llmbatch.emulator.control import build_control_router
from llmbatch.emulator.runtime import EmulatorHTTPError, EmulatorRuntime
from llmbatch.emulator.settings import EmulatorSettings

__all__ = ["PROVIDERS", "create_app"]

log = structlog.get_logger("llmbatch.emulator")

ProviderInstaller = Callable[[FastAPI, EmulatorRuntime], object]

#: provider name -> (path prefix, installer). Each provider package has the same layout
#: (docs/emulator.md, "Layout").
PROVIDERS: dict[str, tuple[str, ProviderInstaller]] = {
    "openai": ("/openai/", openai_emulator.install),
    "anthropic": ("/anthropic/", anthropic_emulator.install),
    "gemini": ("/gemini/", gemini_emulator.install),
}


class ProviderTrafficMiddleware:
    """Counts provider requests in flight (until the body is sent) and tags responses.

    Pure ASGI rather than ``BaseHTTPMiddleware`` so streamed downloads pass through untouched
    and "in flight" lasts until the last byte is sent.
    """

    def __init__(self, app: ASGIApp, runtime: EmulatorRuntime, prefixes: dict[str, str]) -> None:
        self.app = app
        self.runtime = runtime
        self.prefixes = prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        provider = next((name for name, prefix in self.prefixes.items()
                         if path.startswith(prefix)), None)
        if provider is None:
            await self.app(scope, receive, send)
            return
        request_id = f"req_{uuid.uuid4().hex}"

        async def tagged_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append("x-request-id", request_id)
            await send(message)

        stats = self.runtime.stats
        stats.enter(provider)
        try:
            await self.app(scope, receive, tagged_send)
        finally:
            stats.leave(provider)


async def _emulator_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, EmulatorHTTPError)
    return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)


async def _send_webhooks(rt: EmulatorRuntime) -> None:
    """Batch-end webhooks go out within ``webhooks.interval_s`` of the end (when a target is
    set; ``emulator/webhooks.py``)."""
    while True:
        await asyncio.sleep(rt.settings.webhooks.interval_s)
        if rt.webhooks.active():
            try:
                await run_in_threadpool(rt.webhooks.flush)
            except Exception:  # a bug in one flush must not stop every later one
                log.exception("emulator.webhooks.flush_failed")


def create_app(
    settings: EmulatorSettings | None = None,
    *,
    clock: Clock | None = None,
    runtime: EmulatorRuntime | None = None,
) -> FastAPI:
    """The emulator app. Give ``clock`` (e.g. ``FakeClock``) to control time yourself.

    The app owns its runtime: shutting it down (ASGI lifespan) removes the blob directory.
    ``app.state.emulator`` is the runtime, for in-process access.
    """
    rt = runtime or EmulatorRuntime.build(settings or EmulatorSettings(), clock)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        sender = asyncio.create_task(_send_webhooks(rt))
        try:
            yield
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
            rt.close()

    app = FastAPI(title="llmbatch provider emulator", openapi_url=None, docs_url=None,
                  redoc_url=None, lifespan=lifespan)
    app.state.emulator = rt
    app.add_exception_handler(EmulatorHTTPError, _emulator_error)
    app.include_router(build_control_router(rt), prefix="/_emulator")
    for _, install in PROVIDERS.values():
        install(app, rt)
    app.add_middleware(ProviderTrafficMiddleware, runtime=rt,
                       prefixes={name: prefix for name, (prefix, _) in PROVIDERS.items()})
    return app
