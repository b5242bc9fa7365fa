"""Identifiers: prefixed, roughly time-ordered, unique without coordination."""

from __future__ import annotations

import secrets
import time

__all__ = ["new_id"]


def new_id(prefix: str) -> str:
    """``<prefix>_<ms since epoch, hex><48 random bits, hex>``: sortable by creation time."""
    return f"{prefix}_{int(time.time() * 1000):011x}{secrets.token_hex(6)}"
