"""Cost of an item from its usage and the model's configured prices.

Prices in config are the synchronous list prices per million tokens; batch work is billed at
``BATCH_DISCOUNT`` of them. ``input_tokens`` includes cached tokens (the convention every
adapter normalises to), so the cached part is priced separately and not twice.
"""

from __future__ import annotations

from llmbatch.config import ModelConfig
from llmbatch.domain.models import Usage

__all__ = ["BATCH_DISCOUNT", "item_cost_usd"]

BATCH_DISCOUNT = 0.5


def item_cost_usd(usage: Usage | None, model: ModelConfig | None) -> float | None:
    """Batch-priced cost in USD, or None when the model has no prices configured."""
    if usage is None or model is None or model.input_usd_per_mtok is None:
        return None
    cached_price = (model.cached_input_usd_per_mtok if model.cached_input_usd_per_mtok
                    is not None else model.input_usd_per_mtok)
    uncached = max(usage.input_tokens - usage.cached_tokens, 0)
    cost = (uncached * model.input_usd_per_mtok + usage.cached_tokens * cached_price
            + usage.output_tokens * (model.output_usd_per_mtok or 0.0)) / 1_000_000
    return round(cost * BATCH_DISCOUNT, 10)
