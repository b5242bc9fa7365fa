"""Which of a batch's items may still take a result, for the fetch storing its results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    50,000 results; 0.02 s read whole). A larger batch (a provider may take a million requests)
    is asked chunk by chunk, so the memory held never grows with the batch.

    What is held stays true for the whole fetch: under the batch's lease the fetch alone
    stores its results; a chunk takes its keys out, and gives them back when it is rolled
    back (to be written again piecewise, or by the next fetch)."""

    def __init__(self, batch_id: str, item_count: int) -> None:
        self.batch_id = batch_id
        self._read_whole = item_count <= KEYS_HELD_UP_TO
        self._held: dict[str, int] | None = None

    def take(self, repo: Repository, keys: Sequence[str]) -> dict[str, int]:
        """The open ones among ``keys``, with their attempts, for one chunk: no later chunk
        finds them open, unless they are given back."""
        if not self._read_whole:
            return repo.open_attempts(self.batch_id, keys)
        if self._held is None:
            self._held = repo.all_open_attempts(self.batch_id)
        pop = self._held.pop
        return {key: attempts for key in keys if (attempts := pop(key, None)) is not None}

    def give_back(self, taken: Mapping[str, int]) -> None:
        """``taken`` by a chunk that was not committed: open again."""
        if self._held is not None:
            self._held.update(taken)
