"""Is the database's schema at this code's head? Answered without importing Alembic.

Every worker, beat and ``submit`` checks the schema at start (``cli.runtime.ensure_schema``),
and almost always it is current. Alembic (with Mako and the migration modules) costs ~7 MiB
of memory that a long-running worker would then hold for nothing, so the usual answer comes
from the migration files' ``revision``/``down_revision`` lines and one read of
``alembic_version``; whatever this cannot tell for sure (a merge revision, no version table,
an unexpected file) answers ``False`` and the caller asks Alembic (``db.migrate``).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

__all__ = ["at_head", "head_revision"]

VERSIONS_DIR = Path(__file__).parent / "migrations" / "versions"
_ASSIGNMENT = re.compile(r'^(revision|down_revision)\s*(?::[^=]*)?=\s*(.+?)\s*$', re.MULTILINE)
_STRING = re.compile(r'^"([^"]+)"$|^\'([^\']+)\'$')


def _value(raw: str) -> str | None:
    """A plain string literal or None; anything else (a tuple of a merge) raises."""
    if raw == "None":
        return None
    match = _STRING.match(raw)
    if match is None:
        raise ValueError(raw)
    return match[1] or match[2]


@cache
def head_revision() -> str | None:
    """The single head of the migration chain, or None when the files do not say it plainly
    (then only Alembic can tell)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in VERSIONS_DIR.glob("*.py"):
        found = dict(_ASSIGNMENT.findall(path.read_text(encoding="utf-8")))
        if "revision" not in found:
            return None
        try:
            revision, parent = _value(found["revision"]), _value(found.get("down_revision", ""))
        except ValueError:
            return None
        if revision is None:
            return None
        revisions.add(revision)
        if parent is not None:
            parents.add(parent)
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def at_head(engine: Engine) -> bool:
    """True only when the database certainly is at this code's head."""
    head = head_revision()
    if head is None:
        return False
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    except SQLAlchemyError:  # no version table yet: a new database
        return False
    return [row[0] for row in rows] == [head]
