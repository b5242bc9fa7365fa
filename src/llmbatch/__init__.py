"""llmbatch: bulk LLM work through the providers' native batch APIs.

Durable jobs in a database, Celery orchestration, one request format for every provider.

    from llmbatch import Client
    results = Client().run(["Say hello", "Say goodbye"], provider="openai", model="gpt-4o-mini")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmbatch.version import __version__

__all__ = ["AsyncClient", "Client", "__version__"]

if TYPE_CHECKING:
    from llmbatch.client import AsyncClient, Client


def __getattr__(name: str) -> Any:
    # Imported on first use: the CLI, the workers and the emulator import ``llmbatch`` too,
    # and need none of the client's imports (pydantic models, httpx, the read models).
    if name in ("Client", "AsyncClient"):
        from llmbatch import client

        return getattr(client, name)
    raise AttributeError(f"module 'llmbatch' has no attribute {name!r}")
