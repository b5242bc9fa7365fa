"""The usage report: finished requests grouped by provider, model, tenant and/or day (UTC, by
when each request finished), with every token kind, the batch cost billed, what the same
tokens would have cost synchronously, and the saving. ``llmbatch usage`` prints it; the API's
usage endpoint and the metrics exporter can call ``usage_report`` as it is.

Totals are exact: costs are summed in SQL as whole picodollars, so a group's cost is the sum of
its items' costs to the last digit, and the grand total the sum of the groups'.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from llmbatch.bootstrap import Runtime
from llmbatch.db.cost_queries import GROUPS, TOKEN_KINDS, usage_rows
from llmbatch.db.read_queries import reading
from llmbatch.errors import InputError
from llmbatch.pricing import from_pusd

__all__ = ["GROUPS", "TOKEN_KINDS", "UsageRow", "usage_report"]


@dataclass(frozen=True)
class UsageRow:
    """One group (``key`` maps each grouping to its value; empty for the grand total).
    ``unpriced``: requests whose model had no price (their cost counts as nothing)."""

    key: dict[str, str]
    requests: int
    unpriced: int
    tokens: dict[str, int] = field(default_factory=dict)
    cost_pusd: int = 0
    sync_cost_pusd: int = 0

    @property
    def batch_usd(self) -> Decimal:
        return from_pusd(self.cost_pusd)

    @property
    def sync_usd(self) -> Decimal:
        return from_pusd(self.sync_cost_pusd)

    @property
    def saving_usd(self) -> Decimal:
        return from_pusd(self.sync_cost_pusd - self.cost_pusd)

    def as_dict(self) -> dict[str, Any]:
        return {**self.key, "requests": self.requests, "unpriced_requests": self.unpriced,
                **self.tokens, "batch_usd": str(self.batch_usd),
                "sync_usd": str(self.sync_usd), "saving_usd": str(self.saving_usd)}


def usage_report(rt: Runtime, by: Sequence[str], *, start: datetime | None = None,
                 end: datetime | None = None, tenant: str | None = None) -> list[UsageRow]:
    """The groups of ``by`` (any of ``GROUPS``, in that order of columns) for requests that
    finished in ``[start, end)``; ``by`` empty gives one row, the total."""
    unknown = [name for name in by if name not in GROUPS]
    if unknown:
        raise InputError(f"cannot group by {', '.join(unknown)} (choose from "
                         f"{', '.join(GROUPS)})", field="by")
    with reading(rt.engine) as q:
        rows = usage_rows(q.conn, list(by), start=start, end=end, tenant=tenant)
    return [UsageRow(key={name: str(getattr(r, name)) for name in by},
                     requests=int(r.requests), unpriced=int(r.unpriced or 0),
                     tokens={k: int(getattr(r, k)) for k in TOKEN_KINDS},
                     cost_pusd=int(r.cost_pusd), sync_cost_pusd=int(r.sync_cost_pusd))
            for r in rows if int(r.requests)]


def total(rows: Sequence[UsageRow]) -> UsageRow:
    """The sum of ``rows`` (exact)."""
    return UsageRow(key={}, requests=sum(r.requests for r in rows),
                    unpriced=sum(r.unpriced for r in rows),
                    tokens={k: sum(r.tokens.get(k, 0) for r in rows) for k in TOKEN_KINDS},
                    cost_pusd=sum(r.cost_pusd for r in rows),
                    sync_cost_pusd=sum(r.sync_cost_pusd for r in rows))
