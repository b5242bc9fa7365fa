"""Work that may pause while another process works for it: a generator that yields where
it has handed something over (rows sent down a ``COPY``) and would next wait for the answer,
and returns its result.

The caller decides what to do during the pause: the fetch reads its next chunk of results
while PostgreSQL takes in the last one (``service_layer.chunk_writes``); a caller with
nothing to do meanwhile runs it straight through (``run_through``). Plain generators rather
than threads or ``asyncio``: the overlap needs one pause per chunk, not a scheduler, and a
thread reading results would hold the interpreter lock the writer needs at each reply.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TypeVar

__all__ = ["Pausable", "run_through"]

T = TypeVar("T")

Pausable = Generator[None, None, T]


def run_through(steps: Pausable[T]) -> T:
    """Run ``steps`` to its end, carrying straight on at each pause; its result."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            result: T = done.value
            return result
