"""``/v1/validations``: the input door's verdict on a job's requests with nothing stored - the
API side of ``llmbatch validate`` and ``submit --dry-run`` (``intake.validate_file``, the
function both call). The body is the one ``POST /v1/jobs`` takes; the verdict is the answer
(200), a refusal included, so every problem is listed, not only the first."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool

from llmbatch.api.auth import caller
from llmbatch.api.problems import problem_responses
from llmbatch.api.routes.jobs import CREATE_JOB_BODY, receive_job_body
from llmbatch.api.state import api_state
from llmbatch.api.validation_models import ValidationOut
from llmbatch.bootstrap import Runtime
from llmbatch.service_layer.api_keys import Principal

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["jobs"])
Caller = Annotated[Principal, Depends(caller)]


def _validate(rt: Runtime, path: Path, shown_as: str, params: dict[str, Any]) -> ValidationOut:
    try:
        return ValidationOut.of_file(rt, path, provider=params["provider"],
                                     model=params["model"], endpoint=params["endpoint"],
                                     strict_model=params["strict_model"],
                                     job_options=params.get("job_options"), shown_as=shown_as)
    finally:
        path.unlink(missing_ok=True)


@router.post(
    "/validations", summary="Check a job's requests as POST /jobs would, storing nothing",
    response_model=ValidationOut,
    responses=problem_responses(400, 401, 413, 415, 422, 429, 503),
    openapi_extra={"requestBody": CREATE_JOB_BODY})
async def validate(request: Request, principal: Caller) -> ValidationOut:
    path, shown_as, params = await receive_job_body(request)
    return await run_in_threadpool(_validate, api_state(request).runtime, path, shown_as,
                                   params)
