"""What a prefork worker's parent does just before it forks its pool children.

The children start as copies of the parent that share its memory pages copy-on-write. CPython
soon writes to those pages anyway: each collection of the cyclic garbage collector walks every
tracked object and updates its header, so a child ends up copying most of the parent's heap
(measured: pool children holding 50-80 MiB of pages of their own at idle). ``gc.freeze()``
moves everything the parent allocated so far (the imports, the app, the configuration) into a
generation the collector never visits; what the children allocate is collected as usual.
The providers' SDKs are imported first, for the same reason: a child would otherwise import
its own copy at its first provider call (~13 MiB for ``openai``).
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

from celery import signals

__all__ = ["freeze_before_fork"]


def freeze_before_fork(preload: Callable[[], None]) -> None:
    """Once the worker is set up and before the pool forks (Celery's ``worker_init`` is sent
    after the app is loaded, before the pool starts): ``preload()`` (the parent imports the
    providers' SDKs, ``ProviderRegistry.preload``, so the children share one copy instead of
    importing one each), then freeze the parent's heap."""

    def freeze(**_: Any) -> None:
        preload()
        gc.collect()  # what is garbage now is freed, not frozen
        gc.freeze()

    signals.worker_init.connect(freeze, weak=False)
