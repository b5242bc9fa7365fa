"""The submission journal in the database, shared by every worker process and machine.

Each call is its own short transaction (the adapter calls it around the provider's create),
so what it records survives the process that wrote it: that is the point.
"""

from __future__ import annotations

from sqlalchemy import Engine, delete, insert, select, update

from llmbatch.db.tables import submit_journal
from llmbatch.domain.journal import JournalEntry

__all__ = ["DatabaseJournal"]


class DatabaseJournal:
    """``SubmitJournal`` on the ``submit_journal`` table."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def begin(self, entry: JournalEntry) -> None:
        t = submit_journal.c
        with self._engine.begin() as conn:
            known = conn.execute(select(t.batch_id).where(t.tag == entry.tag)).first()
            if known is not None and known.batch_id is not None:
                return  # never forget a batch we know was created
            values = {"count": entry.count, "keys_digest": entry.keys_digest,
                      "started_at": entry.started_at, "finished_at": None, "batch_id": None,
                      "ambiguous": False, "excluded": []}
            if known is None:
                conn.execute(insert(submit_journal).values(tag=entry.tag, **values))
            else:
                conn.execute(update(submit_journal).where(t.tag == entry.tag).values(**values))

    def created(self, tag: str, batch_id: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(update(submit_journal).where(submit_journal.c.tag == tag)
                         .values(batch_id=batch_id, ambiguous=False))

    def ambiguous(self, tag: str, finished_at: float) -> None:
        with self._engine.begin() as conn:
            conn.execute(update(submit_journal).where(submit_journal.c.tag == tag)
                         .values(ambiguous=True, finished_at=finished_at))

    def exclude(self, tag: str, batch_id: str) -> None:
        t = submit_journal.c
        with self._engine.begin() as conn:
            row = conn.execute(select(t.excluded).where(t.tag == tag)).first()
            if row is not None and batch_id not in row.excluded:
                conn.execute(update(submit_journal).where(t.tag == tag)
                             .values(excluded=[*row.excluded, batch_id]))

    def forget(self, tag: str) -> None:
        t = submit_journal.c
        with self._engine.begin() as conn:
            conn.execute(delete(submit_journal).where(
                t.tag == tag, t.batch_id.is_(None), t.ambiguous.is_(False)))

    def get(self, tag: str) -> JournalEntry | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(submit_journal)
                               .where(submit_journal.c.tag == tag)).first()
        if row is None:
            return None
        m = row._mapping  # ``row.count`` would be the tuple method
        return JournalEntry(tag=m["tag"], count=m["count"], keys_digest=m["keys_digest"],
                            started_at=m["started_at"], finished_at=m["finished_at"],
                            batch_id=m["batch_id"], ambiguous=bool(m["ambiguous"]),
                            excluded=tuple(m["excluded"] or ()))
