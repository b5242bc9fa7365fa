"""Money as llmbatch stores it: whole picodollars (``int``), so that sums in SQL are exact on
every database and a cost is never a binary float."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Final

__all__ = ["PICO", "from_pusd", "to_pusd"]

PICO: Final = Decimal("1e-12")  # one picodollar: exact for any rate of 4 decimals per MTok


def to_pusd(usd: Decimal) -> int:
    """USD as whole picodollars (half-even rounding below a picodollar)."""
    return int(usd.quantize(PICO, rounding=ROUND_HALF_EVEN).scaleb(12))


def from_pusd(pusd: int) -> Decimal:
    """Picodollars as USD, exact."""
    return Decimal(pusd).scaleb(-12)
