"""What ``status`` shows of a job's tokens and cost: every token kind, the batch cost billed,
the synchronous price of the same tokens and the saving; for a model without prices, a line
saying so and how to price it (never a bare dash)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from llmbatch.bootstrap import Runtime
from llmbatch.service_layer.pricing import model_prices, unpriced_hint
from llmbatch.service_layer.read_models import JobDetail

__all__ = ["cost_fields", "cost_line", "unpriced_note", "usd"]


def usd(value: Decimal | None) -> str:
    """A cost for people: dollars to the micro-dollar, or ``-``."""
    return "-" if value is None else f"${value.quantize(Decimal('0.000001'))}"


def unpriced_note(rt: Runtime, provider: str, model: str) -> str | None:
    """Why a job of ``model`` has no cost (no price known for it), or None when priced."""
    priced = model_prices(rt, provider, model, datetime.now(UTC)) is not None
    return None if priced else unpriced_hint(provider, model)


def cost_fields(job: JobDetail, note: str | None) -> dict[str, Any]:
    """The JSON fields: exact decimal strings, and why a cost is missing (``note``, from
    ``unpriced_note``)."""
    saving = (job.sync_cost_usd - job.cost_usd
              if job.cost_usd is not None and job.sync_cost_usd is not None else None)
    return {"cost_usd": None if job.cost_usd is None else str(job.cost_usd),
            "sync_cost_usd": None if job.sync_cost_usd is None else str(job.sync_cost_usd),
            "saving_usd": None if saving is None else str(saving),
            "cost_note": note}


def cost_line(job: JobDetail, note: str | None) -> str:
    """The job's cost for the table view: batch, synchronous and the saving, or why it is
    unknown."""
    fields = cost_fields(job, note)
    if fields["cost_note"] is not None and job.cost_usd is None:
        return f"  cost: unknown: {fields['cost_note']}"
    saving = (job.sync_cost_usd - job.cost_usd
              if job.cost_usd is not None and job.sync_cost_usd is not None else None)
    return (f"  cost: {usd(job.cost_usd)} batch, {usd(job.sync_cost_usd)} synchronous, "
            f"saving {usd(saving)}")
