"""Cursors of the paged listings and the page-size bound.

A cursor names the last entry of the page already read (keyset pagination): a job's
``created_at`` and id, an event's id, an item's ``seq``. The job cursor is opaque (URL-safe
base64 of JSON) because two fields make it; event and item cursors are the plain decimal id or
``seq``, so that a Server-Sent Events ``Last-Event-ID`` can be passed back as it is. A cursor
that cannot be read is an ``InputError`` on the field ``cursor``: a caller's mistake, never a
server error.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime

from llmbatch.errors import InputError

__all__ = ["MAX_PAGE_SIZE", "check_limit", "job_cursor", "parse_job_cursor",
           "parse_position", "position_cursor"]

MAX_PAGE_SIZE = 1000


def check_limit(limit: int) -> int:
    """``limit`` if it is a page size the read models serve, else ``InputError``."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InputError(f"limit must be between 1 and {MAX_PAGE_SIZE}, not {limit}",
                         field="limit")
    return limit


def job_cursor(created_at: datetime, job_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), job_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def parse_job_cursor(cursor: str) -> tuple[datetime, str]:
    """``(created_at, job id)`` from a ``job_cursor``."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, job_id = json.loads(raw)
        moment = datetime.fromisoformat(created_at)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InputError("not a cursor of this listing", field="cursor") from exc
    if moment.tzinfo is None or not isinstance(job_id, str):
        raise InputError("not a cursor of this listing", field="cursor")
    return moment, job_id


def position_cursor(position: int) -> str:
    return str(position)


def parse_position(cursor: str) -> int:
    """The event id or item ``seq`` a cursor names."""
    # 18 digits: any id a BIGINT column holds, and never one that overflows it.
    if not cursor.isascii() or not cursor.isdigit() or len(cursor) > 18:
        raise InputError("not a cursor of this listing", field="cursor")
    return int(cursor)
