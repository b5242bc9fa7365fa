"""Prices and costs: where a model's prices come from (``catalogue``) and what a usage costs
at them (``cost``). Decimal end to end; costs are stored as whole picodollars so that sums
in SQL are exact on SQLite and PostgreSQL alike (docs/cost.md)."""

from llmbatch.pricing.catalogue import ModelPrices, PriceOverride, resolve_prices
from llmbatch.pricing.cost import (
    PICO,
    ItemCost,
    from_pusd,
    price_usage,
    to_pusd,
)

__all__ = ["PICO", "ItemCost", "ModelPrices", "PriceOverride", "from_pusd", "price_usage",
           "resolve_prices", "to_pusd"]
