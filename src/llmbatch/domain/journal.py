"""The submission journal: what an adapter records about its own create calls, for providers
whose batches carry no tag (``needs_submit_journal``), so that a batch created by a worker
that then died can still be found and adopted instead of being sent, and billed, twice.

``begin`` before the create call (request count, an order-independent digest of the ids, the
time), ``created`` the moment the provider answers with an id, ``ambiguous`` when the call
failed in a way that does not prove nothing was created (timeout, connection, 5xx). An entry
begun but never finished means the process died inside the call: as ambiguous as it gets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["JournalEntry", "SubmitJournal"]


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
    # Provider batches already proven not ours (their ids differ): never checked again, so a
    # lookup interrupted by an error still makes progress.
    excluded: tuple[str, ...] = ()

    @property
    def interrupted(self) -> bool:
        """Begun and never finished: the process died while the create call was out."""
        return self.batch_id is None and self.finished_at is None and not self.ambiguous


class SubmitJournal(Protocol):
    """Where submission attempts are recorded: in memory, or durably in the database."""

    def begin(self, entry: JournalEntry) -> None: ...

    def created(self, tag: str, batch_id: str) -> None: ...

    def ambiguous(self, tag: str, finished_at: float) -> None: ...

    def exclude(self, tag: str, batch_id: str) -> None: ...

    def forget(self, tag: str) -> None: ...

    def get(self, tag: str) -> JournalEntry | None: ...
