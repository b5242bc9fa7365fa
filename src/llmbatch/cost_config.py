"""Settings of cost accounting: how upper bounds are taken and which budgets hold
(``cost:`` in ``llm_config.yaml``; docs/cost.md)."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["BudgetConfig", "CostConfig"]


class BudgetConfig(BaseModel):
    """Monthly budgets per tenant (calendar months, UTC), in USD of batch cost.

    ``tenants`` maps a tenant to its limit; ``"*"`` is the limit of any tenant not listed.
    A tenant with neither has no budget (its spend is still counted). ``on_exceed``: a job
    whose upper bound does not fit is ``refuse``d at submit with the figures, or accepted and
    its batches ``wait`` until reservations settle below their bounds or the month turns.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenants: dict[str, Decimal] = Field(default_factory=dict)
    on_exceed: Literal["refuse", "wait"] = "refuse"

    def limit_for(self, tenant: str) -> Decimal | None:
        return self.tenants.get(tenant, self.tenants.get("*"))


class CostConfig(BaseModel):
    """How costs are bounded before they are known."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default_max_output_tokens: int = Field(
        4096, gt=0, description="Output bound of a request that sets no max_tokens and whose "
                                "provider has no default")
    input_bound_factor: Decimal = Field(
        Decimal("1.5"), ge=1, description="Estimated input tokens times this bound a "
                                          "request's prompt (the estimate runs ~4 characters "
                                          "a token; code and non-Latin text run denser)")
    budgets: BudgetConfig = BudgetConfig()
