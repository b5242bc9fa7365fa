"""Queries on the ``api_keys`` table (see ``service_layer.api_keys`` for what a key is)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, insert, select, update

from llmbatch.db.item_queries import AnyRow
from llmbatch.db.tables import api_keys

__all__ = ["ApiKeyQueries"]


class ApiKeyQueries:
    """The key table's reads and writes on one connection."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, *, key_id: str, prefix: str, secret_hash: str, tenant: str, name: str | None,
            admin: bool, created_at: datetime) -> None:
        self.conn.execute(insert(api_keys).values(
            id=key_id, prefix=prefix, secret_hash=secret_hash, tenant=tenant, name=name,
            admin=admin, created_at=created_at))

    def by_prefix(self, prefix: str) -> AnyRow | None:
        return self.conn.execute(select(api_keys).where(api_keys.c.prefix == prefix)).first()

    def all(self, tenant: str | None = None) -> list[AnyRow]:
        query = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
        if tenant is not None:
            query = query.where(api_keys.c.tenant == tenant)
        return list(self.conn.execute(query).all())

    def revoke(self, key_id_or_prefix: str, at: datetime) -> int:
        """Revoke the key with this id or prefix; the number of keys revoked (0 or 1)."""
        result = self.conn.execute(
            update(api_keys)
            .where((api_keys.c.id == key_id_or_prefix) | (api_keys.c.prefix == key_id_or_prefix),
                   api_keys.c.revoked_at.is_(None))
            .values(revoked_at=at))
        return int(result.rowcount)
