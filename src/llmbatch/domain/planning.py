"""Splitting a job's pending items into provider batches that respect every limit at once.

Pure: takes ``(seq, wire_bytes)`` or ``(seq, wire_bytes, estimated_tokens)`` tuples in input
order and yields contiguous groups. Each line costs its bytes plus one newline in the
provider's file. With ``max_tokens`` (the model's enqueued-token quota) no batch's token total
exceeds it, so every batch can be accepted on its own once the queue has room for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

__all__ = ["BatchPlan", "ItemTooLarge", "pack_items"]


@dataclass(frozen=True)
class BatchPlan:
    """A run of items (by ``seq``, inclusive bounds, input order) that fits one batch."""

    first_seq: int
    last_seq: int
    item_count: int
    byte_count: int
    token_count: int = 0


class ItemTooLarge(ValueError):
    """One item alone exceeds a per-batch limit (bytes, or enqueued tokens); it can never be
    sent."""

    def __init__(self, seq: int, size: int, limit: int, unit: str = "bytes") -> None:
        super().__init__(f"item {seq} is {size} {unit}, over the batch limit of {limit}")
        self.seq, self.size, self.limit, self.unit = seq, size, limit, unit

    def __reduce__(self) -> tuple[type[ItemTooLarge], tuple[int, int, int, str]]:
        return (type(self), (self.seq, self.size, self.limit, self.unit))


def pack_items(sizes: Iterable[tuple[int, int] | tuple[int, int, int]], *, max_requests: int,
               max_bytes: int, max_tokens: int | None = None) -> Iterator[BatchPlan]:
    """Greedy first-fit in order: a batch closes when the next item would break a limit."""
    first = last = -1
    count = total = tokens = 0
    for entry in sizes:
        seq, size = entry[0], entry[1]
        item_tokens = entry[2] if len(entry) > 2 else 0
        line = size + 1  # newline
        if line > max_bytes:
            raise ItemTooLarge(seq, line, max_bytes)
        if max_tokens is not None and item_tokens > max_tokens:
            raise ItemTooLarge(seq, item_tokens, max_tokens, "estimated tokens")
        if count and (count + 1 > max_requests or total + line > max_bytes
                      or (max_tokens is not None and tokens + item_tokens > max_tokens)):
            yield BatchPlan(first, last, count, total, tokens)
            count = total = tokens = 0
        if count == 0:
            first = seq
        last = seq
        count += 1
        total += line
        tokens += item_tokens
    if count:
        yield BatchPlan(first, last, count, total, tokens)
