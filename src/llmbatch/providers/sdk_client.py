"""``LazyClient``: an adapter's SDK client, built on first use and closed by whoever built it.

Every adapter holds one the same way: built from config only when the first call needs it
(so a missing key fails that call, not the start of a worker that never talks to the
provider), once per adapter although a thread pool shares it, and closed only if the adapter
built it (an injected client belongs to the test or application that passed it in).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["LazyClient"]

ClientT = TypeVar("ClientT")


class LazyClient(Generic[ClientT]):
    """A client built by ``build`` on first ``get``; ``close`` releases a built one."""

    def __init__(self, build: Callable[[], ClientT], close: Callable[[ClientT], None], *,
                 injected: ClientT | None = None) -> None:
        self._build = build
        self._close = close
        self._injected = injected
        self._client = injected
        self._lock = threading.Lock()

    def get(self) -> ClientT:
        """The client, built now if this is the first use (or the first since ``close``)."""
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._build()
                client = self._client
        return client

    def close(self) -> None:
        """Close the client if it was built here; the next ``get`` builds a new one."""
        with self._lock:
            client, self._client = self._client, self._injected
        if client is not None and client is not self._injected:
            self._close(client)
