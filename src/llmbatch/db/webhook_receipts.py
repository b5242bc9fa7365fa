"""Provider webhook deliveries already acted on, by their ``webhook-id``.

Vendors deliver at least once: when our answer is lost they send the same delivery again,
under the same id. Remembering each id acted on (one short row, written in the transaction of
the wake-up it caused) lets a repeat be acknowledged without a second wake-up, on every API
process alike and across restarts. The table stays small: rows older than ``keep_s`` (longer
than any vendor retries) are deleted as new ones arrive, through the ``received_at`` index.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import ReturningInsert

from llmbatch.db.tables import provider_webhook_receipts
from llmbatch.errors import ConfigError

__all__ = ["first_receipt"]


def first_receipt(conn: Connection, provider: str, delivery_id: str, now: datetime,
                  keep_s: float) -> bool:
    """Record the delivery ``delivery_id`` from ``provider``; False if it was recorded before
    (a repeat). Two copies arriving at once: the second waits for the first's transaction and
    is then a repeat (or the first, should that one roll back)."""
    r = provider_webhook_receipts
    conn.execute(delete(r).where(r.c.received_at < now - timedelta(seconds=keep_s)))
    dialect = conn.dialect.name
    row = {"provider": provider, "delivery_id": delivery_id, "received_at": now}
    stmt: ReturningInsert[tuple[str]]
    if dialect == "postgresql":
        stmt = postgresql.insert(r).values(row).on_conflict_do_nothing().returning(
            r.c.delivery_id)
    elif dialect == "sqlite":
        stmt = sqlite.insert(r).values(row).on_conflict_do_nothing().returning(r.c.delivery_id)
    else:  # pragma: no cover - only the two supported databases
        raise ConfigError(f"database {dialect!r} is not supported (SQLite or PostgreSQL)")
    # RETURNING, not rowcount: psycopg reports -1 for an INSERT that may do nothing.
    return conn.execute(stmt).first() is not None
