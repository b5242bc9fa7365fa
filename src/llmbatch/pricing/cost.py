"""What a usage costs at a model's prices: the batch price billed and the synchronous price
the same tokens would have cost, both exact Decimals, stored as whole picodollars.

The arithmetic is the catalogue's own (``genai_prices.types.ModelPrice.calc_price``): it splits
nested token kinds into leaves (fresh input, cache reads, cache writes by TTL, output,
reasoning where a model prices it apart) and applies tier thresholds on the whole prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from genai_prices import Usage as CatalogueUsage
from genai_prices.types import ModelPrice

from llmbatch.domain.models import Usage
from llmbatch.domain.money import PICO, from_pusd, to_pusd
from llmbatch.pricing.catalogue import ModelPrices

__all__ = ["PICO", "ItemCost", "from_pusd", "price_usage", "to_pusd"]



@dataclass(frozen=True)
class ItemCost:
    """One item's cost in picodollars: what the batch bills and what sync would have."""

    batch_pusd: int
    sync_pusd: int

    @property
    def batch_usd(self) -> Decimal:
        return from_pusd(self.batch_pusd)

    @property
    def sync_usd(self) -> Decimal:
        return from_pusd(self.sync_pusd)


def _catalogue_usage(usage: Usage) -> CatalogueUsage:
    return CatalogueUsage(
        input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cached_tokens, cache_write_tokens=usage.cache_write_tokens,
        cache_write_1h_tokens=usage.cache_write_1h_tokens,
        output_reasoning_tokens=usage.reasoning_tokens)


def _usd(price: ModelPrice, usage: CatalogueUsage) -> Decimal:
    return price.calc_price(usage)["total_price"]


_MEMO_LIMIT = 100_000  # usage vectors remembered per price sheet (a few MB at most)


def price_usage(usage: Usage, prices: ModelPrices) -> ItemCost:
    """Batch and synchronous cost of ``usage``. Raises ``ValueError`` when the kinds do not
    nest (e.g. more cache reads than prompt tokens): such a usage has no honest price.
    The same usage at the same prices is worked out once (``ModelPrices.memo``)."""
    known: ItemCost | None = prices.memo.get(usage)
    if known is not None:
        return known
    catalogue_usage = _catalogue_usage(usage)
    cost = ItemCost(batch_pusd=to_pusd(_usd(prices.batch, catalogue_usage)),
                    sync_pusd=to_pusd(_usd(prices.sync, catalogue_usage)))
    if len(prices.memo) < _MEMO_LIMIT:
        prices.memo[usage] = cost
    return cost
