"""The in-memory submission journal (see ``llmbatch.domain.journal``).

``MemoryJournal`` lives as long as the adapter, i.e. the worker process: the default when the
adapter is built on its own (tests, library use). Workers get the durable
``llmbatch.db.journal.DatabaseJournal`` from the composition root instead, which survives the
process that died.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import replace
from typing import Final

from llmbatch.domain.journal import JournalEntry, SubmitJournal

__all__ = ["JournalEntry", "MemoryJournal", "SubmitJournal"]

_MAX_ENTRIES: Final = 10_000


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

    def exclude(self, tag: str, batch_id: str) -> None:
        with self._lock:
            entry = self._entries.get(tag)
            if entry is not None and batch_id not in entry.excluded:
                self._entries[tag] = replace(entry, excluded=(*entry.excluded, batch_id))

    def forget(self, tag: str) -> None:
        with self._lock:
            entry = self._entries.get(tag)
            if entry is not None and entry.batch_id is None and not entry.ambiguous:
                del self._entries[tag]

    def get(self, tag: str) -> JournalEntry | None:
        with self._lock:
            return self._entries.get(tag)
