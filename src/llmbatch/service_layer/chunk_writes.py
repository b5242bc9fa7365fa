"""A fetch's chunks written so that reading the next chunk overlaps the database taking in
the last one.

Each chunk is one transaction, written by a pausable step (``llmbatch.pausable``): on
PostgreSQL it pauses with the chunk's rows sent down the ``COPY``, before waiting for the
server to have stored them. ``ChunkWrites`` leaves it paused while the caller reads the next
chunk and finishes it (the ``COPY`` ends, the transaction commits) before that chunk starts:
the server's work on one chunk runs on its own core during the parsing of the next, as it
does for a single ``COPY`` fed row by row, while every chunk keeps its own transaction. At
most one chunk is paused at a time, so nothing is held beyond one chunk.

A chunk the database refuses (``is_refused_value``), when starting or finishing, is rolled
back and written again in halves (``result_storage.store_refused``), run straight through.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from llmbatch.db.item_queries import is_refused_value
from llmbatch.domain.storable import StorableResult
from llmbatch.pausable import Pausable, run_through
from llmbatch.service_layer.result_storage import store_refused

__all__ = ["ChunkWrites"]

Chunk = Sequence[StorableResult]


class ChunkWrites:
    """Chunks written in turn by ``steps`` (one transaction each, pausable), the last one
    possibly left paused until the next ``write`` or ``finish``."""

    def __init__(self, steps: Callable[[Chunk], Pausable[int]]) -> None:
        self._steps = steps
        self._paused: tuple[Chunk, Pausable[int]] | None = None

    def write(self, chunk: Chunk) -> None:
        """Finish the chunk written before, then start ``chunk`` (which the caller must
        not change until it is finished)."""
        self.finish()
        steps = self._steps(chunk)
        if not self._advance(chunk, steps):
            self._paused = (chunk, steps)

    def finish(self) -> None:
        """Finish the paused chunk, if any: after this, every chunk given is stored."""
        if self._paused is None:
            return
        chunk, steps = self._paused
        self._paused = None
        if not self._advance(chunk, steps):
            steps.close()  # rolled back: a step pauses once at most
            raise RuntimeError("a chunk's write paused a second time")

    def _advance(self, chunk: Chunk, steps: Pausable[int]) -> bool:
        """Run ``steps`` to its pause (False) or its end (True)."""
        try:
            next(steps)
        except StopIteration:
            return True
        except Exception as exc:
            if not is_refused_value(exc):
                raise
            store_refused(chunk, exc, self._write_through)
            return True
        return False

    def _write_through(self, chunk: Chunk) -> int:
        return run_through(self._steps(chunk))
