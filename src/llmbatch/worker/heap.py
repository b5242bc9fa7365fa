"""What a worker does with its heap once it is set up, before it takes its first task.

Everything allocated so far (the imports, the app, the configuration, the providers' SDKs) is
never garbage, yet CPython's cyclic collector walks all of it at every full collection, and a
fetch allocates enough (a parsed result per line) to set off several: ~50 ms each with the
~120,000 objects of a worker's start-up heap, a few per 50,000 results. ``gc.freeze()`` moves
that heap into a generation the collector never visits; what tasks allocate is collected as
usual.

A prefork worker gains a second time: its children start as copies of the parent that share
its memory pages copy-on-write, and each collection writes to the header of every object it
walks, so a child used to end up copying most of the parent's heap (measured: pool children
holding 50-80 MiB of pages of their own at idle). The providers' SDKs are imported first
(``ProviderRegistry.preload``) for the same reasons: frozen with the rest, and in a prefork
worker shared by the children instead of imported by each at its first provider call (~13 MiB
for ``openai``).
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

from celery import signals

__all__ = ["freeze_heap", "freeze_when_started"]


def freeze_when_started(preload: Callable[[], None]) -> None:
    """Once the worker is set up and before its pool starts (Celery's ``worker_init`` is sent
    after the app is loaded, before a prefork pool forks): ``preload()`` (the providers'
    SDKs), then freeze the heap."""

    def freeze(**_: Any) -> None:
        preload()
        freeze_heap()

    signals.worker_init.connect(freeze, weak=False)


def freeze_heap() -> None:
    """Free what is garbage now, then keep the collector off everything left."""
    gc.collect()
    gc.freeze()
