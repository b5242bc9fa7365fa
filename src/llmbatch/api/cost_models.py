"""The JSON shapes of the cost routes (``/v1/estimates``, ``/v1/usage``): the estimate
``llmbatch estimate --json`` prints and the report ``llmbatch usage --format json`` prints,
with every USD amount an exact decimal written as a string (like ``cost_usd`` elsewhere).

Kept apart from ``api/models.py`` so the job shapes and the cost shapes change separately.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from llmbatch.domain.models import Endpoint
from llmbatch.domain.money import to_pusd
from llmbatch.service_layer.estimates import Estimate
from llmbatch.service_layer.read_models.usage import UsageRow, total

__all__ = ["EstimateJson", "EstimateOut", "UsageReportOut", "UsageRowOut", "UsageTokensOut"]

_USD = "USD, an exact decimal written as a string; null when the model has no price"


class EstimateJson(BaseModel):
    """``POST /v1/estimates``: the requests to price, as ``POST /v1/jobs`` takes them inline."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "provider": "openai", "model": "gpt-4o-mini",
        "requests": [{"custom_id": "q1", "body": {"messages": [
            {"role": "user", "content": "Say hello"}], "max_tokens": 50}}]}]})

    provider: str = Field(min_length=1, max_length=50)
    model: str = Field(min_length=1, max_length=200)
    endpoint: Endpoint = Endpoint.CHAT
    requests: list[dict[str, Any]] = Field(
        min_length=1, description="Request lines, as in a JSONL file (custom_id, body)")


class EstimateOut(BaseModel):
    """What the requests will cost: tokens, the batch price, the synchronous price and the
    saving, expected and at most (the figures ``llmbatch estimate`` prints)."""

    model_config = ConfigDict(frozen=True)

    provider: str
    model: str
    endpoint: Endpoint
    requests: int = Field(description="How many requests were estimated")
    input_tokens: int = Field(description="Estimated input tokens (see input_error)")
    input_tokens_bound: int
    input_error: str = Field(description="How far the input estimate can be off, and why")
    output_tokens_expected: int | None
    output_tokens_bound: int
    output_basis: str = Field(description="Where the expected output comes from")
    defaulted_output_bounds: int = Field(
        description="Requests without max_tokens, bounded by cost.default_max_output_tokens")
    batch_usd_expected: str | None = Field(description=f"Batch price expected, {_USD}")
    sync_usd_expected: str | None = Field(description=f"Synchronous price expected, {_USD}")
    saving_usd_expected: str | None = Field(description=f"Synchronous minus batch, {_USD}")
    batch_usd_bound: str | None = Field(description=f"Batch price at most, {_USD}")
    sync_usd_bound: str | None = Field(description=f"Synchronous price at most, {_USD}")
    saving_usd_bound: str | None = Field(description=f"Saving at the bounds, {_USD}")
    price_source: str | None
    note: str | None = Field(description="Why there is no price, when there is none")

    @classmethod
    def from_estimate(cls, est: Estimate, endpoint: Endpoint) -> EstimateOut:
        saving = (None if est.sync_usd_bound is None or est.batch_usd_bound is None
                  else str(est.sync_usd_bound - est.batch_usd_bound))
        return cls(**est.as_dict(), endpoint=endpoint, saving_usd_bound=saving)

    def estimate(self) -> Estimate:
        """Back as the service's ``Estimate`` (what ``llmbatch estimate`` prints)."""
        def usd(value: str | None) -> Decimal | None:
            return None if value is None else Decimal(value)

        return Estimate(
            provider=self.provider, model=self.model, requests=self.requests,
            input_tokens=self.input_tokens, input_tokens_bound=self.input_tokens_bound,
            output_tokens_bound=self.output_tokens_bound,
            output_tokens_expected=self.output_tokens_expected,
            output_basis=self.output_basis,
            defaulted_output_bounds=self.defaulted_output_bounds,
            batch_usd_expected=usd(self.batch_usd_expected),
            sync_usd_expected=usd(self.sync_usd_expected),
            batch_usd_bound=usd(self.batch_usd_bound), sync_usd_bound=usd(self.sync_usd_bound),
            price_source=self.price_source, input_error=self.input_error, note=self.note)


class UsageTokensOut(BaseModel):
    """Tokens by kind (they nest: cached within input, reasoning within output)."""

    model_config = ConfigDict(frozen=True)

    input_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    cache_write_1h_tokens: int
    output_tokens: int
    reasoning_tokens: int


class UsageRowOut(BaseModel):
    """One group of finished requests (``group`` empty: the total)."""

    model_config = ConfigDict(frozen=True)

    group: dict[str, str] = Field(description="The value of each grouping asked for in 'by'")
    requests: int
    unpriced_requests: int = Field(description="Requests whose model had no price (counted "
                                               "as $0)")
    tokens: UsageTokensOut
    batch_usd: str = Field(description="Batch cost billed, USD (exact decimal)")
    sync_usd: str = Field(description="The same tokens at synchronous prices, USD (exact "
                                      "decimal)")
    saving_usd: str = Field(description="sync_usd - batch_usd (exact decimal)")

    @classmethod
    def from_row(cls, row: UsageRow) -> UsageRowOut:
        return cls(group=dict(row.key), requests=row.requests, unpriced_requests=row.unpriced,
                   tokens=UsageTokensOut(**row.tokens), batch_usd=str(row.batch_usd),
                   sync_usd=str(row.sync_usd), saving_usd=str(row.saving_usd))


class UsageReportOut(BaseModel):
    """Finished requests grouped, of the caller's tenant (every tenant for an admin key)."""

    model_config = ConfigDict(frozen=True)

    by: list[str]
    start: date | None = Field(alias="from", description="First day (UTC), inclusive")
    end: date | None = Field(alias="to", description="Last day (UTC), inclusive")
    tenant: str | None = Field(description="The tenant reported on; null: every tenant")
    rows: list[UsageRowOut]
    total: UsageRowOut

    @classmethod
    def build(cls, by: list[str], rows: list[UsageRow], *, start: date | None,
              end: date | None, tenant: str | None) -> UsageReportOut:
        """The report of the read model's ``rows`` (the route's answer and the embedded
        ``Client.usage``'s)."""
        return cls.model_validate({
            "by": by, "from": start, "to": end, "tenant": tenant,
            "rows": [UsageRowOut.from_row(r) for r in rows],
            "total": UsageRowOut.from_row(total(rows))})

    def usage_rows(self) -> list[UsageRow]:
        """Back as the read model's rows (what ``llmbatch usage`` prints)."""
        return [UsageRow(key=dict(r.group), requests=r.requests, unpriced=r.unpriced_requests,
                         tokens=r.tokens.model_dump(), cost_pusd=to_pusd(Decimal(r.batch_usd)),
                         sync_cost_pusd=to_pusd(Decimal(r.sync_usd))) for r in self.rows]
