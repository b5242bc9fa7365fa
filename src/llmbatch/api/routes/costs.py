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
from llmbatch.api.cost_models import EstimateJson, EstimateOut, UsageReportOut
from llmbatch.api.problems import ApiProblem, problem_responses
from llmbatch.api.routes.jobs import _body_problem
from llmbatch.api.state import api_state
from llmbatch.api.uploads import Upload, receive_json, receive_multipart
from llmbatch.bootstrap import Runtime
from llmbatch.domain.models import Endpoint
from llmbatch.errors import InputError
from llmbatch.service_layer.api_keys import Principal
from llmbatch.service_layer.estimates import estimate_lines
from llmbatch.service_layer.read_models.usage import GROUPS, usage_report

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["costs"])
Caller = Annotated[Principal, Depends(caller)]

ESTIMATE_BODY = {"required": True, "content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/EstimateJson"}},
    "multipart/form-data": {
        "schema": {"type": "object", "required": ["file", "provider", "model"],
                   "properties": {
                       "file": {"type": "string", "format": "binary",
                                "description": "JSONL, one request per line"},
                       "provider": {"type": "string", "minLength": 1, "maxLength": 50},
                       "model": {"type": "string", "minLength": 1, "maxLength": 200},
                       "endpoint": {"type": "string", "enum": [str(e) for e in Endpoint]}}},
        "encoding": {"file": {"contentType": "application/x-ndjson"}}}}}


def _estimate(rt: Runtime, body: EstimateJson, tenant: str | None) -> EstimateOut:
    lines = (json.dumps(line, ensure_ascii=False).encode("utf-8") for line in body.requests)
    est = estimate_lines(rt, lines, source="requests", provider=body.provider,
                         model=body.model, endpoint=body.endpoint, tenant=tenant)
    return EstimateOut.from_estimate(est, body.endpoint)


def _estimate_upload(rt: Runtime, upload: Upload, tenant: str | None) -> EstimateOut:
    """An uploaded JSONL (``llmbatch estimate FILE --api-url``): its problems name the
    client's file, as ``llmbatch estimate`` names it locally."""
    try:
        fields = upload.fields
        endpoint = fields.get("endpoint") or str(Endpoint.CHAT)
        if endpoint not in {str(e) for e in Endpoint}:
            raise InputError(f"must be one of {', '.join(str(e) for e in Endpoint)}",
                             field="endpoint")
        for name, cap in (("provider", 50), ("model", 200)):
            if not fields.get(name):
                raise InputError("is required", field=name)
            if len(fields[name]) > cap:
                raise InputError(f"is longer than {cap} characters", field=name)
        with upload.path.open("rb") as handle:
            est = estimate_lines(rt, handle, source=upload.filename,
                                 provider=fields["provider"], model=fields["model"],
                                 endpoint=Endpoint(endpoint), tenant=tenant)
        return EstimateOut.from_estimate(est, Endpoint(endpoint))
    finally:
        upload.path.unlink(missing_ok=True)


@router.post(
    "/estimates", summary="What requests will cost in a batch, synchronously, and the saving",
    response_model=EstimateOut,
    responses=problem_responses(400, 401, 413, 415, 422, 429, 503),
    openapi_extra={"requestBody": ESTIMATE_BODY})
async def estimate(request: Request, principal: Caller) -> EstimateOut:
    state = api_state(request)
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "multipart/form-data":
        upload = await receive_multipart(request.stream(), content_type,
                                         max_bytes=state.config.max_body_bytes)
        return await run_in_threadpool(_estimate_upload, state.runtime, upload,
                                       principal.read_scope)
    if media != "application/json":
        raise ApiProblem(415, "send application/json (provider, model and inline "
                              "'requests') or multipart/form-data (a JSONL 'file' part)")
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
    return UsageReportOut.build(groups, rows, start=start, end=end, tenant=scope)
