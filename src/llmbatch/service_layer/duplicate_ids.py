"""Duplicate ids of one input file, found on disk instead of in memory.

``llmbatch validate`` and ``submit --dry-run`` store nothing, so no database constraint can
find a ``custom_id`` used twice (``submit`` itself leaves that to the items table's unique
constraint, see ``db.item_ingest``). Holding every id of the file in a set costs ~125 bytes a
line (160 MB at 500,000 lines); here each ``(line, custom_id, provider key)`` is appended to a
table in a throw-away SQLite file in chunks, and one windowed query at the end names every
line that repeats an earlier id, in line order. SQLite's sorter spills to disk past its cache,
so memory stays flat whatever the file's size.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Final

from llmbatch.errors import InputError

__all__ = ["SpilledIds"]

_CHUNK: Final = 5000
# Each line that repeats an earlier one's custom_id; then each whose provider key (what the
# adapter sends as the id) repeats an earlier line's though its custom_id does not.
_DUPLICATES: Final = """
SELECT line, 0, custom_id FROM (
    SELECT line, custom_id, row_number() OVER (PARTITION BY custom_id ORDER BY line) AS n
    FROM seen) WHERE n > 1
UNION ALL
SELECT line, 1, k FROM (
    SELECT line, coalesce(key, custom_id) AS k,
           row_number() OVER (PARTITION BY coalesce(key, custom_id) ORDER BY line) AS kn,
           row_number() OVER (PARTITION BY custom_id ORDER BY line) AS cn
    FROM seen WHERE encoded) WHERE kn > 1 AND cn = 1 AND ?
ORDER BY 1, 2
"""


class SpilledIds:
    """``with SpilledIds() as ids: ids.add(...) ...; ids.problems(file)``."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="llmbatch-ids-")
        self._db = sqlite3.connect(Path(self._dir.name) / "ids.db", isolation_level=None)
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-2048",
                       "temp_store=FILE"):
            self._db.execute(f"PRAGMA {pragma}")
        self._db.execute("CREATE TABLE seen (line INTEGER NOT NULL, custom_id TEXT NOT NULL, "
                         "key TEXT, encoded INTEGER NOT NULL)")
        self._db.execute("BEGIN")
        self._pending: list[tuple[int, str, str | None, int]] = []
        self._mapped = False

    def add(self, line: int, custom_id: str, provider_key: str | None) -> None:
        """One parsed line: its id, and the provider key it encodes to (None when it could
        not be encoded, so no key of it goes to the provider)."""
        key = None if provider_key == custom_id else provider_key
        self._mapped = self._mapped or key is not None
        self._pending.append((line, custom_id, key, provider_key is not None))
        if len(self._pending) >= _CHUNK:
            self._flush()

    def problems(self, file: str) -> Iterator[InputError]:
        """Every repeated id, in line order, as the intake reports it."""
        self._flush()
        for line, kind, value in self._db.execute(_DUPLICATES, (self._mapped,)):
            if kind == 0:
                yield InputError(f"duplicate custom_id {value!r}", file=file, line=line,
                                 field="custom_id")
            else:
                yield InputError(f"two lines map to the provider id {value!r}", file=file,
                                 line=line, field="custom_id")

    def _flush(self) -> None:
        if self._pending:
            self._db.executemany("INSERT INTO seen VALUES (?, ?, ?, ?)", self._pending)
            self._pending = []

    def close(self) -> None:
        self._db.close()
        self._dir.cleanup()

    def __enter__(self) -> SpilledIds:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
