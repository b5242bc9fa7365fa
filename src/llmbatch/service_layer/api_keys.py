"""API keys: who a caller of the REST API is, and which tenant's jobs they may see.

A key reads ``lbk_<prefix>_<secret>``: the prefix (public, 12 hex characters) finds the row;
the whole key is checked against ``secret_hash``, the SHA-256 of the key. Only that hash is
stored, so a copy of the database gives no key away; the secret is 256 random bits, which is
why a plain fast hash is enough (a slow password hash protects guessable secrets, and nothing
about 2^256 is guessable). The comparison is ``hmac.compare_digest``, constant in time.

An ``admin`` key reads every tenant's jobs; its own jobs go to its own tenant.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from llmbatch.bootstrap import Runtime
from llmbatch.db.api_keys import ApiKeyQueries
from llmbatch.db.engine import read_only_connection
from llmbatch.db.item_queries import AnyRow
from llmbatch.domain.ids import new_id
from llmbatch.errors import InputError, NotFoundError

__all__ = ["KEY_PREFIX", "ApiKeyInfo", "Principal", "authenticate", "create_key", "list_keys",
           "revoke_key"]

KEY_PREFIX = "lbk"
_PREFIX_HEX = 12


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of one API request: their tenant, and whether they may read all tenants."""

    tenant: str
    admin: bool = False
    key_id: str | None = None

    @property
    def read_scope(self) -> str | None:
        """The ``tenant`` argument of the read models: None (every tenant) for an admin."""
        return None if self.admin else self.tenant


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    """A key as ``keys list`` shows it: never its secret."""

    id: str
    prefix: str
    tenant: str
    name: str | None
    admin: bool
    created_at: datetime
    revoked_at: datetime | None


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _check_tenant(tenant: str) -> None:
    if not tenant or len(tenant) > 100 or not tenant.isprintable():
        raise InputError("must be 1 to 100 printable characters", field="tenant")


def create_key(rt: Runtime, *, tenant: str, name: str | None = None,
               admin: bool = False) -> tuple[ApiKeyInfo, str]:
    """A new key for ``tenant``: its description and the key itself, which is shown this
    once and stored nowhere."""
    _check_tenant(tenant)
    prefix = secrets.token_hex(_PREFIX_HEX // 2)
    key = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    info = ApiKeyInfo(id=new_id("key"), prefix=prefix, tenant=tenant, name=name, admin=admin,
                      created_at=rt.clock(), revoked_at=None)
    with rt.engine.begin() as conn:
        ApiKeyQueries(conn).add(key_id=info.id, prefix=prefix, secret_hash=_hash(key),
                                tenant=tenant, name=name, admin=admin,
                                created_at=info.created_at)
    return info, key


def authenticate(rt: Runtime, key: str) -> Principal | None:
    """The principal a presented key stands for; None for anything but a live key."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or len(parts[1]) != _PREFIX_HEX:
        return None
    with read_only_connection(rt.engine) as conn:
        row = ApiKeyQueries(conn).by_prefix(parts[1])
    if row is None:
        # Compare anyway, so that an unknown prefix takes as long as a wrong secret.
        hmac.compare_digest(_hash(key), "0" * 64)
        return None
    if not hmac.compare_digest(_hash(key), row.secret_hash) or row.revoked_at is not None:
        return None
    return Principal(tenant=row.tenant, admin=bool(row.admin), key_id=row.id)


def list_keys(rt: Runtime, *, tenant: str | None = None) -> list[ApiKeyInfo]:
    """Every key (of ``tenant`` when given), oldest first, revoked ones too."""
    with read_only_connection(rt.engine) as conn:
        return [_info(r) for r in ApiKeyQueries(conn).all(tenant)]


def revoke_key(rt: Runtime, key_id_or_prefix: str) -> None:
    """Revoke a key by id or prefix; ``NotFoundError`` if no live key has it."""
    with rt.engine.begin() as conn:
        if ApiKeyQueries(conn).revoke(key_id_or_prefix, rt.clock()) == 0:
            raise NotFoundError(f"no live API key {key_id_or_prefix!r}")


def _info(row: AnyRow) -> ApiKeyInfo:
    return ApiKeyInfo(id=row.id, prefix=row.prefix, tenant=row.tenant, name=row.name,
                      admin=bool(row.admin), created_at=row.created_at,
                      revoked_at=row.revoked_at)
