"""``/v1/estimates`` and ``/v1/usage``: what requests will cost before they are submitted, and
what finished ones cost - thin layers over ``service_layer.estimates.estimate_lines`` and
``read_models.usage.usage_report``, the functions ``llmbatch estimate`` and ``llmbatch usage``
call.

Both are scoped to the caller's tenant: the usage report filters on it (an admin key sees
every tenant, and may name one), and the expected output of an estimate is learnt from the
caller's own finished requests only, so neither tells one tenant of another's work.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool

from llmbatch.api.auth import caller
from llmbatch.api.cost_models import EstimateJson, EstimateOut, UsageReportOut, UsageRowOut
from llmbatch.api.problems import ApiProblem, problem_responses
from llmbatch.api.routes.jobs import _body_problem
from llmbatch.api.state import api_state
from llmbatch.api.uploads import receive_json
from llmbatch.bootstrap import Runtime
from llmbatch.errors import InputError
from llmbatch.service_layer.api_keys import Principal
from llmbatch.service_layer.estimates import estimate_lines
from llmbatch.service_layer.read_models.usage import GROUPS, total, usage_report

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["costs"])
Caller = Annotated[Principal, Depends(caller)]

ESTIMATE_BODY = {"required": True, "content": {"application/json": {
    "schema": {"$ref": "#/components/schemas/EstimateJson"}}}}


def _estimate(rt: Runtime, body: EstimateJson, tenant: str | None) -> EstimateOut:
    lines = (json.dumps(line, ensure_ascii=False).encode("utf-8") for line in body.requests)
    est = estimate_lines(rt, lines, source="requests", provider=body.provider,
                         model=body.model, endpoint=body.endpoint, tenant=tenant)
    return EstimateOut.from_estimate(est, body.endpoint)


@router.post(
    "/estimates", summary="What requests will cost in a batch, synchronously, and the saving",
    response_model=EstimateOut,
    responses=problem_responses(400, 401, 413, 415, 422, 429, 503),
    openapi_extra={"requestBody": ESTIMATE_BODY})
async def estimate(request: Request, principal: Caller) -> EstimateOut:
    state = api_state(request)
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        raise ApiProblem(415, "send application/json: provider, model and inline 'requests'")
    doc = await receive_json(request.stream(), max_bytes=state.config.max_body_bytes)
    try:
        body = EstimateJson.model_validate(doc)
    except ValueError as exc:
        raise _body_problem(exc) from exc
    return await run_in_threadpool(_estimate, state.runtime, body, principal.read_scope)


def _groups(by: str) -> list[str]:
    groups = [g.strip() for g in by.split(",") if g.strip()]
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise InputError(f"cannot group by {', '.join(unknown)} (choose from "
                         f"{', '.join(GROUPS)})", field="by")
    if len(set(groups)) != len(groups):
        raise InputError("names a grouping twice", field="by")
    return groups


def _scope(principal: Principal, tenant: str | None) -> tuple[str | None, bool]:
    """The tenant to report on, and whether the caller may see it at all: a key that is not
    an admin's sees its own tenant only (naming another gives no rows, not an error that
    would tell which tenants exist)."""
    if principal.admin:
        return tenant, True
    return principal.tenant, tenant in (None, principal.tenant)


@router.get("/usage", summary="Finished requests grouped: tokens, batch cost, synchronous "
                              "cost and saving",
            response_model=UsageReportOut, response_model_by_alias=True,
            responses=problem_responses(401, 422, 429, 503))
def usage(
    request: Request, principal: Caller,
    by: Annotated[str, Query(max_length=100, description=(
        f"Comma-separated groupings, any of {','.join(GROUPS)} (empty: the total only)"))] =
        "provider,model",
    start: Annotated[date | None, Query(alias="from",
                                        description="First day (UTC), YYYY-MM-DD")] = None,
    end: Annotated[date | None, Query(alias="to",
                                      description="Last day (UTC), YYYY-MM-DD")] = None,
    tenant: Annotated[str | None, Query(max_length=200, description=(
        "Only this tenant (admin keys; any other key always sees its own tenant only)"))] =
        None,
) -> UsageReportOut:
    groups = _groups(by)
    if start is not None and end is not None and end < start:
        raise InputError("is before 'from'", field="to")
    scope, visible = _scope(principal, tenant)
    rows = usage_report(
        api_state(request).runtime, groups, tenant=scope,
        start=datetime.combine(start, time(), UTC) if start else None,
        end=datetime.combine(end + timedelta(days=1), time(), UTC)
        if end and end < date.max else None,
    ) if visible else []
    return UsageReportOut.model_validate({
        "by": groups, "from": start, "to": end, "tenant": scope,
        "rows": [UsageRowOut.from_row(r) for r in rows],
        "total": UsageRowOut.from_row(total(rows))})
