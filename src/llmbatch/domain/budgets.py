"""Budget rules, free of I/O: the scopes a batch's cost counts against and whether a
reservation fits them.

A scope is a ledger: ``tenant:<tenant>:<YYYY-MM>`` (a calendar month, UTC) and ``job:<id>``.
Each holds a limit (None: unlimited, only counted) and what is committed to it: the upper
bounds of batches reserved and not yet settled, plus the actual costs of settled ones. A
reservation fits when, for every limited scope, committed + bound <= limit. Amounts are whole
picodollars (``llmbatch.pricing``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from llmbatch.domain.money import from_pusd

__all__ = ["BudgetShortfall", "Ledger", "job_scope", "shortfall", "tenant_scope"]


def tenant_scope(tenant: str, at: datetime) -> str:
    return f"tenant:{tenant}:{at:%Y-%m}"


def job_scope(job_id: str) -> str:
    return f"job:{job_id}"


@dataclass(frozen=True)
class Ledger:
    scope: str
    limit_pusd: int | None
    committed_pusd: int


@dataclass(frozen=True)
class BudgetShortfall:
    """Why a reservation does not fit, with the figures (USD)."""

    scope: str
    limit_usd: Decimal
    committed_usd: Decimal
    needed_usd: Decimal

    @property
    def message(self) -> str:
        what = ("the job's --max-cost" if self.scope.startswith("job:")
                else f"the monthly budget of {self.scope.split(':')[1]} "
                     f"({self.scope.rsplit(':', 1)[1]})")
        return (f"over {what}: ${_plain(self.limit_usd)} limit, "
                f"${_plain(self.committed_usd)} already committed, this needs up to "
                f"${_plain(self.needed_usd)} more")

    def as_dict(self) -> dict[str, str]:
        return {"scope": self.scope, "limit_usd": str(self.limit_usd),
                "committed_usd": str(self.committed_usd), "needed_usd": str(self.needed_usd),
                "message": self.message}


def _plain(usd: Decimal) -> str:
    """An exact amount without trailing zeros or an exponent (``0.0001425``)."""
    return format(usd.normalize(), "f")


def shortfall(ledgers: list[Ledger], bound_pusd: int) -> BudgetShortfall | None:
    """The first limited scope ``bound_pusd`` does not fit, or None."""
    for ledger in ledgers:
        limit = ledger.limit_pusd
        if limit is not None and ledger.committed_pusd + bound_pusd > limit:
            return BudgetShortfall(ledger.scope, from_pusd(limit),
                                   from_pusd(ledger.committed_pusd), from_pusd(bound_pusd))
    return None
