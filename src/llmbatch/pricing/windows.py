"""A model's context window from the ``genai-prices`` catalogue (already a dependency for
prices; its ``ModelInfo.context_window`` is kept with the prices, for about a thousand
models). Used by the model rules checked at submit (``domain.model_rules``).

Why this source: it is maintained, ships its data in the wheel (no network), and llmbatch
already depends on it. LiteLLM's model table also knows output limits and supported
parameters, but pulls in a large dependency tree for one JSON file; the facts the catalogue
lacks (refused parameters, output caps) are few and sit with each provider's adapter.
"""

from __future__ import annotations

from functools import lru_cache

from genai_prices import __version__ as catalogue_version
from genai_prices import data_snapshot

__all__ = ["catalogue_context_window"]


@lru_cache(maxsize=512)
def catalogue_context_window(catalogue_id: str, model: str) -> tuple[int, str] | None:
    """``(tokens, source)`` of ``model`` under the catalogue's provider ``catalogue_id``, or
    None when the catalogue does not know the model or its window."""
    snapshot = data_snapshot.get_snapshot()
    provider = next((p for p in snapshot.providers if p.id == catalogue_id), None)
    info = provider.find_model(model) if provider is not None else None
    if info is None or not info.context_window:
        return None
    return info.context_window, f"genai-prices {catalogue_version}: {catalogue_id}/{info.id}"
