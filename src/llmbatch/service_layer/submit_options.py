"""What a submit may ask beyond the job's own fields, carried as one value from the CLI and
the Python client to wherever the job is created (``jobs.create_job`` locally, the form
fields of ``POST /v1/jobs`` remotely), so neither side drops one of them."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

__all__ = ["NO_OPTIONS", "SubmitOptions"]


@dataclass(frozen=True)
class SubmitOptions:
    """``strict_model``: refuse lines whose ``body.model`` names another model; ``max_cost``:
    a USD cap on the job's batch cost; ``webhook_url``: notified (signed) when the job ends."""

    strict_model: bool = False
    max_cost: Decimal | None = None
    webhook_url: str | None = None


NO_OPTIONS = SubmitOptions()
"""The default: none asked for."""
