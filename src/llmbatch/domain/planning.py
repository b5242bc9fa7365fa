"""Splitting a job's pending items into provider batches that respect every limit at once.

Pure: takes ``(seq, wire_bytes)`` pairs in input order and yields contiguous groups. Each
line costs its bytes plus one newline in the provider's file.
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


class ItemTooLarge(ValueError):
    """One item alone exceeds the byte limit; it can never be sent."""

    def __init__(self, seq: int, size: int, limit: int) -> None:
        super().__init__(f"item {seq} is {size} bytes, over the batch limit of {limit}")
        self.seq, self.size, self.limit = seq, size, limit

    def __reduce__(self) -> tuple[type[ItemTooLarge], tuple[int, int, int]]:
        return (type(self), (self.seq, self.size, self.limit))  # args differ from __init__'s


def pack_items(sizes: Iterable[tuple[int, int]], *, max_requests: int,
               max_bytes: int) -> Iterator[BatchPlan]:
    """Greedy first-fit in order: a batch closes when the next item would break a limit."""
    first = last = -1
    count = total = 0
    for seq, size in sizes:
        line = size + 1  # newline
        if line > max_bytes:
            raise ItemTooLarge(seq, line, max_bytes)
        if count and (count + 1 > max_requests or total + line > max_bytes):
            yield BatchPlan(first, last, count, total)
            count = total = 0
        if count == 0:
            first = seq
        last = seq
        count += 1
        total += line
    if count:
        yield BatchPlan(first, last, count, total)
