"""What a file of requests will cost, before it is submitted (``llmbatch estimate``, and
what the API's estimate endpoint can call), and the per-request upper bounds that budgets
reserve.

Input tokens are counted offline with ``domain.tokens.estimate_tokens`` (about four characters
a token, plus message framing): no tokenizer that ships its data covers every provider
(``tiktoken`` downloads its encodings at run time, and covers one vendor), so the estimate
states its error instead (``INPUT_ERROR``). Output tokens have an upper bound (the request's
``max_tokens`` or the provider's default, else ``cost.default_max_output_tokens``) and an
expected value: the mean output of this model's finished items, capped by each bound, when
there is any history.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from llmbatch.bootstrap import Runtime
from llmbatch.db.cost_queries import output_history
from llmbatch.db.engine import read_only_connection
from llmbatch.domain.models import Endpoint, RequestLine, Usage
from llmbatch.domain.requests import parse_request_line
from llmbatch.domain.tokens import estimate_tokens
from llmbatch.errors import InputError
from llmbatch.pricing import ItemCost, ModelPrices, from_pusd, price_usage
from llmbatch.providers.base import BatchProvider
from llmbatch.service_layer.pricing import model_prices, unpriced_hint

__all__ = ["INPUT_ERROR", "BoundPricer", "Estimate", "ItemBound", "bound_cost",
           "estimate_file", "estimate_lines", "item_bound"]

INPUT_ERROR = ("input tokens estimated at ~4 characters a token: within about 20% for English "
               "prose on the vendors' tokenizers; code, JSON and non-Latin scripts run denser "
               "(more tokens than estimated)")


@dataclass(frozen=True)
class ItemBound:
    """One request's estimated input, its input and output bounds, and whether the output
    bound is the configured default (the request set none and its provider has none)."""

    input_tokens: int
    input_bound: int
    output_bound: int
    defaulted: bool


def item_bound(rt: Runtime, adapter: BatchProvider, request: RequestLine, *,
               endpoint: Endpoint, estimated: int | None = None) -> ItemBound:
    tokens = estimate_tokens(request) if estimated is None else estimated
    factor = rt.config.cost.input_bound_factor
    limit = adapter.max_output_tokens(request, endpoint=endpoint)
    output = limit if limit is not None else rt.config.cost.default_max_output_tokens
    return ItemBound(tokens, math.ceil(tokens * factor), output, limit is None)


def bound_cost(bound: ItemBound, prices: ModelPrices | None) -> ItemCost | None:
    """Batch and synchronous cost of a request at its bounds (all input uncached)."""
    if prices is None:
        return None
    return price_usage(Usage(input_tokens=bound.input_bound, output_tokens=bound.output_bound),
                       prices)


class BoundPricer:
    """The batch price (micro-USD) of each request's upper bound in one job: ``item_bound``
    then ``bound_cost``, worked out once per distinct (estimated tokens, output limit).

    Pricing goes through ``Decimal`` and the price catalogue's tiers, which made it the
    costliest step of storing a line; the lines of one job repeat the same few output limits
    and a narrow band of prompt sizes, so the answers are kept (at most ``MEMO_MAX``, then
    started over: memory stays flat however large the job)."""

    MEMO_MAX = 65_536

    def __init__(self, rt: Runtime, prices: ModelPrices | None) -> None:
        self._factor = rt.config.cost.input_bound_factor
        self._default_output = rt.config.cost.default_max_output_tokens
        self._prices = prices
        self._memo: dict[tuple[int, int | None], int] = {}

    def batch_pusd(self, tokens: int, output_limit: int | None) -> int | None:
        """``bound_cost(item_bound(...)).batch_pusd`` for a request of ``tokens`` estimated
        prompt tokens whose ``max_output_tokens`` is ``output_limit``; None without prices."""
        if self._prices is None:
            return None
        key = (tokens, output_limit)
        found = self._memo.get(key)
        if found is None:
            output = output_limit if output_limit is not None else self._default_output
            bound = ItemBound(tokens, math.ceil(tokens * self._factor), output,
                              output_limit is None)
            cost = bound_cost(bound, self._prices)
            assert cost is not None  # priced: ``_prices`` is set
            if len(self._memo) >= self.MEMO_MAX:
                self._memo.clear()
            found = self._memo[key] = cost.batch_pusd
        return found


@dataclass(frozen=True)
class Estimate:
    """The estimate of one file at one provider and model (USD amounts exact, None when the
    model has no price: ``note`` says why)."""

    provider: str
    model: str
    requests: int
    input_tokens: int
    input_tokens_bound: int
    output_tokens_bound: int
    output_tokens_expected: int | None
    output_basis: str
    defaulted_output_bounds: int
    batch_usd_expected: Decimal | None
    sync_usd_expected: Decimal | None
    batch_usd_bound: Decimal | None
    sync_usd_bound: Decimal | None
    price_source: str | None
    input_error: str = INPUT_ERROR
    note: str | None = None

    @property
    def saving_usd_expected(self) -> Decimal | None:
        if self.batch_usd_expected is None or self.sync_usd_expected is None:
            return None
        return self.sync_usd_expected - self.batch_usd_expected

    def as_dict(self) -> dict[str, Any]:
        def text(value: Decimal | None) -> str | None:
            return None if value is None else str(value)
        return {
            "provider": self.provider, "model": self.model, "requests": self.requests,
            "input_tokens": self.input_tokens, "input_tokens_bound": self.input_tokens_bound,
            "input_error": self.input_error,
            "output_tokens_bound": self.output_tokens_bound,
            "output_tokens_expected": self.output_tokens_expected,
            "output_basis": self.output_basis,
            "defaulted_output_bounds": self.defaulted_output_bounds,
            "batch_usd_expected": text(self.batch_usd_expected),
            "sync_usd_expected": text(self.sync_usd_expected),
            "saving_usd_expected": text(self.saving_usd_expected),
            "batch_usd_bound": text(self.batch_usd_bound),
            "sync_usd_bound": text(self.sync_usd_bound),
            "price_source": self.price_source, "note": self.note,
        }


def _requests(lines: Iterable[bytes], *, source: str, endpoint: Endpoint, model: str,
              adapter: BatchProvider) -> list[RequestLine]:
    found: list[RequestLine] = []
    for line_no, raw in enumerate(lines, start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError("not valid UTF-8", file=source, line=line_no) from exc
        if not text.strip():
            continue
        req = parse_request_line(text, line=line_no, index=len(found), file=source,
                                 endpoint=endpoint, model=model)
        try:  # what submit would refuse, the estimate refuses too
            adapter.encode(req, endpoint=endpoint, model=model)
        except InputError as exc:
            raise InputError(exc.message, file=source, line=line_no, field=exc.field) from exc
        found.append(req)
    if not found:
        raise InputError("the file holds no requests", file=source)
    return found


def estimate_file(rt: Runtime, path: Path, *, provider: str, model: str,
                  endpoint: Endpoint = Endpoint.CHAT, learn: bool = True) -> Estimate:
    """Estimate the JSONL file ``path``: see ``estimate_lines``."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read input: {exc.strerror}", file=str(path)) from exc
    with handle:
        return estimate_lines(rt, handle, source=str(path), provider=provider, model=model,
                              endpoint=endpoint, learn=learn)


def estimate_lines(rt: Runtime, lines: Iterable[bytes], *, source: str, provider: str,
                   model: str, endpoint: Endpoint = Endpoint.CHAT, learn: bool = True,
                   tenant: str | None = None) -> Estimate:
    """Estimate JSONL ``lines`` (validated as submit would; errors name ``source`` and the
    line) for ``provider``/``model``; ``learn``: read the expected output from the
    database's finished items (off: no database yet), of ``tenant``'s jobs only when given.
    The API's estimate endpoint passes a request body's lines here."""
    adapter = rt.registry.get(provider)
    requests = _requests(lines, source=source, endpoint=endpoint, model=model,
                         adapter=adapter)
    prices = model_prices(rt, provider, model, rt.clock())
    mean, seen = None, 0
    if learn:
        with read_only_connection(rt.engine) as conn:
            mean, seen = output_history(conn, provider, model, tenant=tenant)
    bounds = [item_bound(rt, adapter, r, endpoint=endpoint) for r in requests]
    expected_out = [b.output_bound if mean is None else min(math.ceil(mean), b.output_bound)
                    for b in bounds]
    basis = (f"mean of {seen} finished requests of {provider}/{model}" if mean is not None
             else "no finished requests of this model yet: the bound")
    batch_exp = sync_exp = batch_max = sync_max = None
    if prices is not None:
        exp = [price_usage(Usage(input_tokens=b.input_tokens, output_tokens=o), prices)
               for b, o in zip(bounds, expected_out, strict=True)]
        top = [bound_cost(b, prices) for b in bounds]
        batch_exp = from_pusd(sum(c.batch_pusd for c in exp))
        sync_exp = from_pusd(sum(c.sync_pusd for c in exp))
        batch_max = from_pusd(sum(c.batch_pusd for c in top if c is not None))
        sync_max = from_pusd(sum(c.sync_pusd for c in top if c is not None))
    return Estimate(
        provider=provider, model=model, requests=len(requests),
        input_tokens=sum(b.input_tokens for b in bounds),
        input_tokens_bound=sum(b.input_bound for b in bounds),
        output_tokens_bound=sum(b.output_bound for b in bounds),
        output_tokens_expected=sum(expected_out), output_basis=basis,
        defaulted_output_bounds=sum(b.defaulted for b in bounds),
        batch_usd_expected=batch_exp, sync_usd_expected=sync_exp,
        batch_usd_bound=batch_max, sync_usd_bound=sync_max,
        price_source=prices.source if prices else None,
        note=None if prices else unpriced_hint(provider, model))
