"""Where a model's prices come from: a per-model override in config, else the maintained
``genai-prices`` catalogue (shipped with its data; never updated over the network here).

Two price sheets per model: the synchronous list prices, and what a *batch* request is billed.
The catalogue knows the batch prices of many models (its ``processing: batch`` variant); for the
others the provider's own factor is applied to every synchronous rate (``BatchProvider.
batch_price_factor``, vendor knowledge kept in each provider package). Both sheets keep the
catalogue's tiers (a long prompt moves the whole request to a higher rate) and its price
history (the prices in force at the request's time).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from genai_prices import __version__ as catalogue_version
from genai_prices import data_snapshot
from genai_prices.types import ModelInfo, ModelPrice, Tier, TieredPrices

__all__ = ["BATCH_CONTEXT", "ModelPrices", "PriceOverride", "resolve_prices"]

BATCH_CONTEXT = {"processing": "batch"}


@dataclass(frozen=True)
class PriceOverride:
    """Synchronous list prices in USD per million tokens, from config (``providers.<p>.models``).
    Unset cache rates fall back to the input rate (what a provider that does not discount
    them bills); ``batch_factor`` replaces the provider's when set."""

    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None
    cache_write_1h: Decimal | None = None
    batch_factor: Decimal | None = None

    def model_price(self) -> ModelPrice:
        return ModelPrice(
            input_mtok=self.input, output_mtok=self.output,
            cache_read_mtok=self.cached_input if self.cached_input is not None else self.input,
            cache_write_mtok=self.cache_write if self.cache_write is not None else self.input,
            cache_write_1h_mtok=self.cache_write_1h,
        )


@dataclass(frozen=True)
class ModelPrices:
    """The two price sheets of one model at one time, and where they came from (for people:
    ``config`` or ``genai-prices <version>: <model id>``, plus how the batch sheet was made)."""

    sync: ModelPrice
    batch: ModelPrice
    source: str
    # Costs already worked out, by usage vector (``cost.price_usage``): the catalogue's own
    # arithmetic takes ~0.2 ms a call, more than storing the result, and a batch's results
    # repeat the same few vectors many times over.
    memo: dict[tuple[int, ...], Any] = field(default_factory=dict, compare=False, repr=False)


def _scaled(price: ModelPrice, factor: Decimal) -> ModelPrice:
    """Every rate of ``price`` times ``factor``, tiers included."""
    values: dict[str, Decimal | TieredPrices | None] = {}
    for key, value in price.__dict__.items():
        if key.startswith("_"):
            continue
        if isinstance(value, TieredPrices):
            values[key] = TieredPrices(base=value.base * factor,
                                       tiers=[Tier(start=t.start, price=t.price * factor)
                                              for t in value.tiers])
        elif isinstance(value, Decimal):
            values[key] = value * factor
        else:
            values[key] = value
    return ModelPrice(**values)


def _has_batch_variant(model: ModelInfo, at: datetime) -> bool:
    return any(v.when == BATCH_CONTEXT and (v.constraint is None or v.constraint.active(at))
               for v in model.price_variants or ())


def _find_model(catalogue_id: str, model: str) -> ModelInfo | None:
    snapshot = data_snapshot.get_snapshot()
    provider = next((p for p in snapshot.providers if p.id == catalogue_id), None)
    if provider is None:
        return None
    return provider.find_model(model)


def resolve_prices(*, catalogue_id: str | None, batch_factor: Decimal, model: str,
                   override: PriceOverride | None, at: datetime) -> ModelPrices | None:
    """The prices of ``model`` in force at ``at``: the override if given, else the catalogue's
    (None when neither knows the model)."""
    if override is not None:
        sync = override.model_price()
        factor = override.batch_factor if override.batch_factor is not None else batch_factor
        return ModelPrices(sync=sync, batch=_scaled(sync, factor),
                           source=f"config (batch = {factor} x synchronous)")
    if catalogue_id is None:
        return None
    info = _find_model(catalogue_id, model)
    if info is None:
        return None
    sync = info.get_prices(at)
    where = f"genai-prices {catalogue_version}: {catalogue_id}/{info.id}"
    if _has_batch_variant(info, at):
        return ModelPrices(sync=sync, batch=info.get_prices(at, BATCH_CONTEXT),
                           source=f"{where} (catalogue batch prices)")
    return ModelPrices(sync=sync, batch=_scaled(sync, batch_factor),
                       source=f"{where} (batch = {batch_factor} x synchronous)")
