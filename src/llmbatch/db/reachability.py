"""Saying in one line that the database cannot be reached, instead of a driver traceback."""

from __future__ import annotations

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, OperationalError

from llmbatch.errors import InfrastructureError

__all__ = ["require_database"]


def require_database(engine: Engine) -> None:
    """Connect once; an unreachable database (down, wrong address, refused credentials) is an
    ``InfrastructureError`` naming where, without the password."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except (OperationalError, DBAPIError) as exc:
        where = engine.url.render_as_string(hide_password=True)
        reason = " ".join(str(exc.orig or exc).split())[:200]
        raise InfrastructureError(f"the database at {where} cannot be reached: {reason} "
                                  "(nothing was stored; run again once it is up)") from None
