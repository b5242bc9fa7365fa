"""``/v1/jobs``: create, list, read, follow, cancel and retry jobs.

Every route is a thin layer over the services (``service_layer.jobs``) and read models
(``service_layer.read_models``) the CLI uses, called with the caller's tenant: a job of
another tenant is a 404, exactly like one that does not exist.
"""

from __future__ import annotations

import asyncio
import json
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse

from llmbatch.api.auth import caller
from llmbatch.api.models import (
    CancelOut,
    CreatedJobOut,
    CreateJobJson,
    EventOut,
    ItemOut,
    JobDetailOut,
    JobOut,
    PageOut,
    ProgressOut,
    RetryOut,
)
from llmbatch.api.problems import ApiProblem, problem_responses
from llmbatch.api.state import api_state
from llmbatch.api.uploads import receive_json, receive_multipart, write_jsonl
from llmbatch.bootstrap import Runtime
from llmbatch.domain.models import Endpoint
from llmbatch.domain.states import ItemStatus, JobStatus
from llmbatch.errors import InputError, InputProblems
from llmbatch.service_layer import read_models
from llmbatch.service_layer.api_keys import Principal
from llmbatch.service_layer.jobs import cancel_job, create_job, retry_lineage
from llmbatch.service_layer.model_checks import job_options_of
from llmbatch.service_layer.read_models import MAX_PAGE_SIZE
from llmbatch.service_layer.read_models.job_progress import job_progress
from llmbatch.service_layer.read_models.result_lines import job_result_lines

__all__ = ["CREATE_JOB_BODY", "receive_job_body", "router"]

router = APIRouter(prefix="/v1", tags=["jobs"])
Caller = Annotated[Principal, Depends(caller)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size")]
Cursor = Annotated[str | None, Query(max_length=200,
                                     description="The previous page's next_cursor")]
RESULTS_PER_CHUNK = 2000
NDJSON = "application/x-ndjson"
SSE = "text/event-stream"

_JOB_ERRORS = problem_responses(401, 404, 429, 503)

CREATE_JOB_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object", "required": ["file", "provider", "model"],
                "properties": {
                    "file": {"type": "string", "format": "binary",
                             "description": "JSONL, one request per line"},
                    "provider": {"type": "string", "minLength": 1, "maxLength": 50},
                    "model": {"type": "string", "minLength": 1, "maxLength": 200},
                    "endpoint": {"type": "string", "enum": [str(e) for e in Endpoint]},
                    "name": {"type": "string", "maxLength": 200},
                    "metadata": {"type": "string",
                                 "description": "A JSON object, kept with the job"},
                    "strict_model": {"type": "string", "enum": ["true", "false"],
                                     "description": "Refuse lines whose body.model differs "
                                                    "from model"},
                    "max_cost": {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$",
                                 "maxLength": 40,
                                 "description": "USD cap on the job's batch cost"},
                    "webhook_url": {"type": "string", "maxLength": 2000,
                                    "description": "Notified (signed) when the job ends"},
                    "retention": {"type": "string",
                                  "description": "A JSON object: the job's own retention "
                                                 "settings (see CreateJobJson.retention)"},
                    "betas": {"type": "string", "maxLength": 2000,
                              "description": "Provider betas for this job, comma-separated"},
                },
            },
            "encoding": {"file": {"contentType": "application/x-ndjson"}},
        },
        "application/json": {"schema": {"$ref": "#/components/schemas/CreateJobJson"}},
    },
}


def _scope(principal: Principal) -> str | None:
    return principal.read_scope


def _job_location(job_id: str) -> str:
    return f"/v1/jobs/{job_id}"


def _form_params(fields: dict[str, str]) -> dict[str, Any]:
    def text(name: str, *, required: bool = False, max_len: int = 200) -> str | None:
        value = fields.get(name)
        if value is None or value == "":
            if required:
                raise InputError("is required", field=name)
            return None
        if len(value) > max_len:
            raise InputError(f"is longer than {max_len} characters", field=name)
        return value

    endpoint = text("endpoint") or str(Endpoint.CHAT)
    if endpoint not in {str(e) for e in Endpoint}:
        raise InputError(f"must be one of {', '.join(str(e) for e in Endpoint)}",
                         field="endpoint")
    metadata = _json_object(text("metadata", max_len=1 << 20), "metadata")
    retention = _json_object(text("retention", max_len=4096), "retention")
    betas = [b.strip() for b in (text("betas", max_len=2000) or "").split(",") if b.strip()]
    strict = (text("strict_model") or "false").lower()
    if strict not in ("true", "false"):
        raise InputError("must be true or false", field="strict_model")
    return {"provider": text("provider", required=True, max_len=50),
            "model": text("model", required=True), "endpoint": Endpoint(endpoint),
            "name": text("name"), "metadata": metadata, "retention": retention,
            "job_options": job_options_of(betas),
            "strict_model": strict == "true",
            "max_cost": _max_cost(text("max_cost", max_len=40)),
            "webhook_url": text("webhook_url", max_len=2000)}


def _json_object(raw: str | None, field: str) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise InputError("must be a JSON object", field=field) from exc
    if not isinstance(value, dict):
        raise InputError("must be a JSON object", field=field)
    return value


def _max_cost(value: str | None) -> Decimal | None:
    """A form's ``max_cost``: a non-negative decimal number of USD."""
    if value is None:
        return None
    try:
        amount = Decimal(value)
    except ArithmeticError as exc:
        raise InputError("must be a decimal number of USD", field="max_cost") from exc
    if not amount.is_finite() or amount < 0:
        raise InputError("must be a decimal number of USD, 0 or more", field="max_cost")
    return amount


def _create(rt: Runtime, path: Path, shown_as: str, params: dict[str, Any], tenant: str,
            idempotency_key: str | None) -> tuple[str, bool, list[str]]:
    """``create_job`` on the uploaded file; its input errors and warnings name the client's
    file name, not the temporary one."""
    warnings: list[str] = []
    try:
        job_id, created = create_job(rt, path, tenant=tenant, idempotency_key=idempotency_key,
                                     warn=warnings.append, **params)
        return job_id, created, [w.replace(str(path), shown_as) for w in warnings]
    except InputProblems as exc:  # every problem listed, as the CLI lists them locally
        raise InputProblems([_renamed(p, str(path), shown_as) for p in exc.problems],
                            total=exc.total, file=shown_as) from exc
    except InputError as exc:
        if exc.file == str(path):
            raise _renamed(exc, str(path), shown_as) from exc
        raise
    finally:
        path.unlink(missing_ok=True)


@router.post(
    "/jobs", status_code=201, summary="Create a job from a JSONL upload or inline requests",
    response_model=CreatedJobOut,
    responses={
        201: {"description": "Created", "headers": {"Location": {
            "description": "The new job", "schema": {"type": "string"}}}},
        200: {"description": "The job this Idempotency-Key already created (same content)",
              "model": CreatedJobOut,
              "headers": {"Location": {"schema": {"type": "string"}}}},
        **problem_responses(400, 401, 409, 413, 415, 422, 429, 503)},
    openapi_extra={"requestBody": CREATE_JOB_BODY})
async def create(
    request: Request, principal: Caller,
    idempotency_key: Annotated[str | None, Header(
        alias="Idempotency-Key", min_length=1, max_length=200,
        description="Same key + same content returns the existing job; other content: 409",
    )] = None,
) -> Response:
    state = api_state(request)
    rt = state.runtime
    path, shown_as, params = await receive_job_body(request)
    job_id, created, warnings = await run_in_threadpool(_create, rt, path, shown_as, params,
                                                        principal.tenant, idempotency_key)
    job = await run_in_threadpool(read_models.job_summary, rt, job_id)
    answer = CreatedJobOut(**JobOut.from_summary(job).model_dump(), warnings=warnings)
    return JSONResponse(answer.model_dump(mode="json"),
                        status_code=201 if created else 200,
                        headers={"Location": _job_location(job_id)})


def _renamed(exc: InputError, actual: str, shown_as: str) -> InputError:
    """``exc`` naming the client's file instead of the temporary one."""
    if exc.file != actual:
        return exc
    return InputError(exc.message, file=shown_as, line=exc.line, field=exc.field)


async def receive_job_body(request: Request) -> tuple[Path, str, dict[str, Any]]:
    """A job's body as ``POST /v1/jobs`` takes it (a multipart JSONL upload, or JSON with
    inline requests): the JSONL on disk (the caller deletes it), the name its problems
    give the file, and the other fields as ``create_job``'s keyword arguments."""
    state = api_state(request)
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "multipart/form-data":
        upload = await receive_multipart(request.stream(), content_type,
                                         max_bytes=state.config.max_body_bytes,
                                         tmp_dir=_upload_dir(state.config.upload_dir))
        try:
            params = _form_params(upload.fields)
        except InputError:
            upload.path.unlink(missing_ok=True)
            raise
        return upload.path, upload.filename, params
    if media == "application/json":
        doc = await receive_json(request.stream(), max_bytes=state.config.max_body_bytes)
        try:
            body = CreateJobJson.model_validate(doc)
        except ValueError as exc:
            raise _body_problem(exc) from exc
        params = body.model_dump(exclude={"requests", "retention", "betas"})
        params["retention"] = (body.retention.model_dump(exclude_none=True)
                               if body.retention else None)
        params["job_options"] = job_options_of(body.betas)
        path = await run_in_threadpool(write_jsonl, body.requests,
                                       _upload_dir(state.config.upload_dir))
        return path, "requests", params
    raise ApiProblem(415, "send multipart/form-data (a JSONL 'file' part) or "
                          "application/json (inline 'requests')")


def _upload_dir(configured: str | None) -> Path | None:
    if configured is None:
        return None
    path = Path(configured)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _body_problem(exc: ValueError) -> ApiProblem:
    from pydantic import ValidationError

    from llmbatch.api.models import ProblemError

    errors: list[ProblemError] = []
    if isinstance(exc, ValidationError):
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or None
            errors.append(ProblemError(message=err["msg"], field=field,
                                       text=f"field '{field}' {err['msg']}"))
    detail = "; ".join(e.text for e in errors) or str(exc)
    return ApiProblem(422, detail, errors=errors)


@router.get("/jobs", summary="Jobs, newest first", response_model=PageOut[JobOut],
            responses=problem_responses(401, 422, 429, 503))
def list_jobs(
    request: Request, principal: Caller,
    status: Annotated[list[JobStatus] | None, Query(description="Only these statuses")] = None,
    provider: Annotated[str | None, Query(max_length=50)] = None,
    parent_job_id: Annotated[str | None, Query(max_length=40)] = None,
    cursor: Cursor = None, limit: Limit = 50,
) -> PageOut[JobOut]:
    page = read_models.list_jobs(api_state(request).runtime, limit=limit, cursor=cursor,
                                 status=status, tenant=_scope(principal), provider=provider,
                                 parent_job_id=parent_job_id)
    return PageOut[JobOut](data=[JobOut.from_summary(j) for j in page.entries],
                           next_cursor=page.next_cursor)


@router.get("/jobs/{job_id}", summary="A job: status, counts, usage, cost, provider batches",
            response_model=JobDetailOut, responses=_JOB_ERRORS)
def get_job(request: Request, principal: Caller, job_id: str) -> JobDetailOut:
    job = read_models.job_detail(api_state(request).runtime, job_id, tenant=_scope(principal))
    return JobDetailOut.from_detail(job)


@router.get("/jobs/{job_id}/progress",
            summary="A job's progress: provider-side counts, ETA, why it waits",
            response_model=ProgressOut, responses=_JOB_ERRORS)
def get_progress(request: Request, principal: Caller, job_id: str) -> ProgressOut:
    progress = job_progress(api_state(request).runtime, job_id, tenant=_scope(principal))
    return ProgressOut.from_progress(progress)


@router.get("/jobs/{job_id}/items", summary="A job's items in input order",
            response_model=PageOut[ItemOut], responses=problem_responses(401, 404, 422, 429, 503))
def list_items(
    request: Request, principal: Caller, job_id: str,
    status: Annotated[list[ItemStatus] | None, Query(description="Only these statuses")] = None,
    cursor: Cursor = None, limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 100,
) -> PageOut[ItemOut]:
    page = read_models.job_items(api_state(request).runtime, job_id, status=status,
                                 cursor=cursor, limit=limit, tenant=_scope(principal))
    return PageOut[ItemOut](data=[ItemOut.from_summary(i) for i in page.entries],
                            next_cursor=page.next_cursor)


def _ndjson_chunks(texts: Iterator[str]) -> Iterator[bytes]:
    """Results as JSON lines, several hundred per chunk (one thread hop per chunk)."""
    lines: list[str] = []
    for text in texts:
        lines.append(text)
        if len(lines) >= RESULTS_PER_CHUNK:
            yield ("\n".join(lines) + "\n").encode("utf-8")
            lines = []
    if lines:
        yield ("\n".join(lines) + "\n").encode("utf-8")


def _gzipped(chunks: Iterator[bytes]) -> Iterator[bytes]:
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)  # fast: the wire is rarely the limit
    for chunk in chunks:
        out = compressor.compress(chunk)
        if out:
            yield out
    yield compressor.flush()


def _wants_gzip(accept_encoding: str) -> bool:
    for part in accept_encoding.split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


@router.get(
    "/jobs/{job_id}/results", summary="Every result, one JSON line per input line, in order",
    response_class=StreamingResponse,
    responses={200: {"description": "JSON lines (gzip-encoded when Accept-Encoding asks)",
                     "content": {NDJSON: {"schema": {"$ref": "#/components/schemas/Result"},
                                          "example": {"custom_id": "q1",
                                                      "status": "succeeded",
                                                      "output_text": "Hello!"}}}},
               **problem_responses(401, 404, 422, 429, 503)})
def results(
    request: Request, principal: Caller, job_id: str,
    lineage: Annotated[bool, Query(
        description="Merge the job with its retries: one line per input line, the latest "
                    "attempt wins, each naming its job_id")] = False,
) -> StreamingResponse:
    rt = api_state(request).runtime
    texts: Iterator[str]
    if lineage:
        records = read_models.lineage_results(rt, job_id, tenant=_scope(principal))
        texts = (json.dumps(r.as_dict(), ensure_ascii=False) for r in records)
    else:
        texts = job_result_lines(rt, job_id, tenant=_scope(principal))
    chunks = _ndjson_chunks(texts)
    headers = {"Vary": "Accept-Encoding"}
    if _wants_gzip(request.headers.get("accept-encoding", "")):
        chunks = _gzipped(chunks)
        headers["Content-Encoding"] = "gzip"
    return StreamingResponse(chunks, media_type=NDJSON, headers=headers)


def _sse(event: EventOut) -> str:
    return f"id: {event.id}\nevent: {event.type}\ndata: {event.model_dump_json()}\n\n"


async def _live_events(request: Request, rt: Runtime, job_id: str, tenant: str | None,
                       page: read_models.Page[read_models.EventRecord], cursor: str | None,
                       ended: bool) -> AsyncIterator[str]:
    """The SSE stream: events as they are recorded, then ``end`` once the job has ended.
    ``ended`` is always read before the events page that follows it, so the events of the
    job's last transition are sent before ``end``."""
    config = api_state(request).config
    idle_since = time.monotonic()
    while True:
        for record in page.entries:
            yield _sse(EventOut.from_record(record))
            cursor = str(record.id)
            idle_since = time.monotonic()
        if page.next_cursor is None:
            if ended:
                yield f"event: end\ndata: {json.dumps({'job_id': job_id})}\n\n"
                return
            if time.monotonic() - idle_since > config.sse_keepalive_s:
                yield ": keep-alive\n\n"
                idle_since = time.monotonic()
            if await request.is_disconnected():
                return
            await asyncio.sleep(config.sse_poll_s)
            summary = await run_in_threadpool(read_models.job_summary, rt, job_id,
                                              tenant=tenant)
            ended = summary.ended
        page = await run_in_threadpool(read_models.job_events, rt, job_id, cursor=cursor,
                                       limit=MAX_PAGE_SIZE, tenant=tenant)


@router.get(
    "/jobs/{job_id}/events", summary="A job's timeline; live as Server-Sent Events",
    response_model=PageOut[EventOut],
    responses={200: {"description": "A page of events; with 'Accept: text/event-stream' a "
                                    "live stream (SSE) that resumes after Last-Event-ID and "
                                    "ends with an 'end' event once the job has ended",
                     "content": {SSE: {"schema": {"type": "string"},
                                       "example": "id: 7\nevent: job.created\ndata: {...}\n\n"}}},
               **problem_responses(401, 404, 422, 429, 503)})
async def events(
    request: Request, principal: Caller, job_id: str, cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 100,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=20)] = None,
) -> Any:
    rt = api_state(request).runtime
    tenant = _scope(principal)
    live = SSE in request.headers.get("accept", "")
    if live and last_event_id:
        cursor = last_event_id
    ended = False
    if live:  # read before the first page: if it had ended then, that page ends the stream
        ended = (await run_in_threadpool(read_models.job_summary, rt, job_id,
                                         tenant=tenant)).ended
    # The first page now: a bad cursor or an unknown job is a problem, not a broken stream.
    page = await run_in_threadpool(read_models.job_events, rt, job_id, cursor=cursor,
                                   limit=MAX_PAGE_SIZE if live else limit, tenant=tenant)
    if not live:
        return PageOut[EventOut](data=[EventOut.from_record(e) for e in page.entries],
                                 next_cursor=page.next_cursor)
    return StreamingResponse(
        _live_events(request, rt, job_id, tenant, page, cursor, ended),
        media_type=SSE, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.post("/jobs/{job_id}/cancel", summary="Cancel a job (partial results are kept)",
             response_model=CancelOut, responses=_JOB_ERRORS)
def cancel(request: Request, principal: Caller, job_id: str) -> CancelOut:
    status = cancel_job(api_state(request).runtime, job_id, tenant=_scope(principal))
    return CancelOut(id=job_id, status=status)


@router.post("/jobs/{job_id}/retry", status_code=201,
             summary="Start a child job of the failed and expired items",
             response_model=RetryOut,
             responses={201: {"headers": {"Location": {"schema": {"type": "string"}}}},
                        **problem_responses(401, 404, 409, 422, 429, 503)})
def retry(
    request: Request, response: Response, principal: Caller, job_id: str,
    name: Annotated[str | None, Query(max_length=200,
                                      description="A label for the new job")] = None,
    include_cancelled: Annotated[bool, Query(
        description="Also re-run items that were cancelled")] = False,
) -> RetryOut:
    rt = api_state(request).runtime
    outcome = retry_lineage(rt, job_id, name=name, include_cancelled=include_cancelled,
                            tenant=_scope(principal))
    assert outcome.child_id is not None  # retry_lineage raises when it creates no child
    response.headers["Location"] = _job_location(outcome.child_id)
    job = read_models.job_summary(rt, outcome.child_id)
    return RetryOut(job=JobOut.from_summary(job), items=outcome.count,
                    already_succeeded=outcome.already_succeeded, in_flight=outcome.in_flight)

