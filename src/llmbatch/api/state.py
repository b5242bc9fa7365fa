"""What the app's routes share: the runtime and the API settings, kept on ``app.state``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request

from llmbatch.api.rate_limit import TokenBuckets
from llmbatch.api.settings import ApiConfig
from llmbatch.bootstrap import Runtime

__all__ = ["ApiState", "api_state"]


@dataclass
class ApiState:
    runtime: Runtime
    config: ApiConfig
    buckets: TokenBuckets
    broker_ping: Callable[[], None] | None = None
    """Raises when the broker cannot be reached (``/readyz``); None: no broker to check."""


def api_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.llmbatch
    return state
