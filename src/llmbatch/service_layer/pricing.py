"""A model's prices for the services: the provider's catalogue id and batch factor (vendor
knowledge, from its adapter class) with the config override, resolved through
``llmbatch.pricing`` and cached (a lookup walks the catalogue).

A model nobody prices is logged once per process as a warning and costs ``None``; ``status``,
``estimate`` and ``usage`` say so in words rather than showing a bare dash.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from functools import lru_cache

import structlog

from llmbatch.bootstrap import Runtime
from llmbatch.config import ModelConfig
from llmbatch.domain.models import Usage
from llmbatch.errors import LLMBatchError
from llmbatch.pricing import ItemCost, ModelPrices, PriceOverride, price_usage, resolve_prices

__all__ = ["item_cost", "model_prices", "override_of", "unpriced_hint"]

log = structlog.get_logger("llmbatch.pricing")

_warned: set[tuple[str, str]] = set()


def override_of(model: ModelConfig | None) -> PriceOverride | None:
    """The config prices of a model entry, if it has any."""
    if model is None or model.input_usd_per_mtok is None:
        return None
    return PriceOverride(input=model.input_usd_per_mtok,
                         output=model.output_usd_per_mtok or Decimal(0),
                         cached_input=model.cached_input_usd_per_mtok,
                         cache_write=model.cache_write_usd_per_mtok,
                         cache_write_1h=model.cache_write_1h_usd_per_mtok,
                         batch_factor=model.batch_price_factor)


@lru_cache(maxsize=512)
def _cached(catalogue_id: str | None, factor: Decimal, model: str,
            override: PriceOverride | None, minute: datetime) -> ModelPrices | None:
    return resolve_prices(catalogue_id=catalogue_id, batch_factor=factor, model=model,
                          override=override, at=minute)


def catalogue_of(rt: Runtime, provider: str) -> tuple[str | None, Decimal]:
    """The provider's catalogue id and batch factor (from its adapter class; a provider the
    registry does not know has neither, so only config can price it)."""
    try:
        adapter_class = type(rt.registry.get(provider))
    except LLMBatchError:
        return None, Decimal("0.5")
    return adapter_class.price_catalogue_id, adapter_class.batch_price_factor


def model_prices(rt: Runtime, provider: str, model: str, at: datetime) -> ModelPrices | None:
    """Prices of ``model`` at ``provider`` in force at ``at`` (None, logged once, if unknown)."""
    catalogue_id, factor = catalogue_of(rt, provider)
    override = override_of(rt.config.provider(provider).model(model))
    prices = _cached(catalogue_id, factor, model, override, at.replace(second=0, microsecond=0))
    if prices is None and (provider, model) not in _warned:
        _warned.add((provider, model))
        log.warning("llmbatch.pricing.unpriced", provider=provider, model=model,
                    hint=unpriced_hint(provider, model))
    return prices


def unpriced_hint(provider: str, model: str) -> str:
    """What to do about a model without prices, in one line."""
    return (f"no price known for {provider}/{model}: the genai-prices catalogue lacks it; set "
            f"input_usd_per_mtok and output_usd_per_mtok on providers.{provider}.models[] to "
            "price it")


def item_cost(usage: Usage | None, prices: ModelPrices | None) -> ItemCost | None:
    """Cost of one item's usage (None without usage or prices, or when the usage's kinds do
    not nest, which is logged)."""
    if usage is None or prices is None:
        return None
    try:
        return price_usage(usage, prices)
    except ValueError as exc:
        log.warning("llmbatch.pricing.bad_usage", usage=usage.as_dict(), error=str(exc))
        return None
