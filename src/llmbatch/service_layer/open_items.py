"""Which of a batch's items may still take a result, for the fetch storing its results."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from llmbatch.db.repository import Repository

__all__ = ["KEYS_HELD_UP_TO", "OpenItems"]

# About 100 bytes a key (the key, its attempts, a dict slot): 10 MB at most, for one fetch.
KEYS_HELD_UP_TO: Final = 100_000


class OpenItems:
    """``provider_key -> attempts`` of the batch's items still submitted with no stored
    result (``ItemQueries.open_attempts``), asked by the fetch chunk by chunk.

    A batch of up to ``KEYS_HELD_UP_TO`` items is read whole, once, in the first chunk's
    transaction: one range of the (batch_id, provider_key) index instead of a lookup per key,
    which on PostgreSQL was a sixth of the server's work of a fetch (0.12 s of ~0.8 s for
    50,000 results; 0.02 s read whole). A larger batch (Gemini takes up to a million requests)
    is asked chunk by chunk, so the memory held never grows with the batch.

    What is held stays true for the whole fetch: under the batch's lease the fetch alone
    stores its results, and it drops a chunk's keys once that chunk is committed (a chunk
    rolled back, and written again piecewise, finds its keys still open)."""

    def __init__(self, batch_id: str, item_count: int) -> None:
        self.batch_id = batch_id
        self._read_whole = item_count <= KEYS_HELD_UP_TO
        self._held: dict[str, int] | None = None

    def of(self, repo: Repository, keys: Sequence[str]) -> dict[str, int]:
        """The open ones among ``keys``, with their attempts."""
        if not self._read_whole:
            return repo.open_attempts(self.batch_id, keys)
        if self._held is None:
            self._held = repo.all_open_attempts(self.batch_id)
        held = self._held
        return {key: held[key] for key in keys if key in held}

    def stored(self, keys: Iterable[str]) -> None:
        """``keys`` took their result in a committed chunk: no longer open."""
        if self._held is not None:
            for key in keys:
                self._held.pop(key, None)
