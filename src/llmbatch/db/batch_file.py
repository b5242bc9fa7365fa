"""Reading a batch's requests for its provider file: one ordered query streamed through a
server-side cursor (PostgreSQL; SQLite's cursor steps through the result as it is read), so
building a 50,000-line file holds ``chunk`` rows at a time and sorts the batch once.

(Keyset pages of ``chunk`` rows, one query each, sorted the whole batch again for every page:
the batch's items are found through ``(batch_id, provider_key)``, not in ``seq`` order.)
The read runs in a read-only snapshot (``engine.read_only_connection``), which holds up no
writer on either database while the file is uploaded.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import Engine, select

from llmbatch.db.engine import read_only_connection
from llmbatch.db.item_queries import AnyRow
from llmbatch.db.tables import items

__all__ = ["stream_batch_requests"]


def stream_batch_requests(engine: Engine, batch_id: str, chunk: int) -> Iterator[AnyRow]:
    """``seq, custom_id, request`` of the batch's items in input order."""
    query = (select(items.c.seq, items.c.custom_id, items.c.request)
             .where(items.c.batch_id == batch_id).order_by(items.c.seq))
    with read_only_connection(engine) as conn:
        result = conn.execution_options(stream_results=True, yield_per=chunk).execute(query)
        for partition in result.partitions():
            yield from partition
