"""What the adapter remembers about its own submissions, for adoption without provider tags.

Anthropic batches carry no metadata, so a batch cannot be found by our tag at the provider.
The journal is the substitute: ``begin`` before the create call (request count, an
order-independent digest of the custom_ids, our clock), ``created`` the moment the provider
answers with an id (before anything else can fail), ``ambiguous`` when the create call failed
in a way that does not prove the batch was *not* created (timeout, connection, 5xx).

``MemoryJournal`` lives as long as the adapter, i.e. the worker process (the registry keeps one
adapter per process). It covers every failure after the create answer inside that process, and
ambiguous creates retried there. It cannot cover a process that died: see
docs/providers/anthropic.md for that residual risk and the durable journal it calls for.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Final, Protocol

__all__ = ["JournalEntry", "MemoryJournal", "SubmitJournal"]

_MAX_ENTRIES: Final = 10_000


@dataclass(frozen=True)
class JournalEntry:
    """One submission attempt of one tag."""

    tag: str
    count: int
    keys_digest: str
    started_at: float
    finished_at: float | None = None
    batch_id: str | None = None
    ambiguous: bool = False


class SubmitJournal(Protocol):
    """Where submission attempts are recorded (in memory by default; pluggable)."""

    def begin(self, entry: JournalEntry) -> None: ...

    def created(self, tag: str, batch_id: str) -> None: ...

    def ambiguous(self, tag: str, finished_at: float) -> None: ...

    def forget(self, tag: str) -> None: ...

    def get(self, tag: str) -> JournalEntry | None: ...


class MemoryJournal:
    """A bounded, thread-safe journal held in memory (oldest entries dropped first)."""

    def __init__(self, max_entries: int = _MAX_ENTRIES) -> None:
        self._entries: OrderedDict[str, JournalEntry] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_entries

    def begin(self, entry: JournalEntry) -> None:
        with self._lock:
            previous = self._entries.get(entry.tag)
            if previous is not None and previous.batch_id is not None:
                return  # never forget a batch we know was created
            self._entries[entry.tag] = entry
            self._entries.move_to_end(entry.tag)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def _update(self, tag: str, **changes: object) -> None:
        with self._lock:
            entry = self._entries.get(tag)
            if entry is not None:
                self._entries[tag] = replace(entry, **changes)  # type: ignore[arg-type]

    def created(self, tag: str, batch_id: str) -> None:
        self._update(tag, batch_id=batch_id, ambiguous=False)

    def ambiguous(self, tag: str, finished_at: float) -> None:
        self._update(tag, ambiguous=True, finished_at=finished_at)

    def forget(self, tag: str) -> None:
        with self._lock:
            entry = self._entries.get(tag)
            if entry is not None and entry.batch_id is None and not entry.ambiguous:
                del self._entries[tag]

    def get(self, tag: str) -> JournalEntry | None:
        with self._lock:
            return self._entries.get(tag)
