"""HTTP routes of the OpenAI emulator, mounted at ``/openai/v1``.

Each route authenticates (``Authorization: Bearer``), counts the call and applies any call
fault drawn for its operation, parses the request the way the official SDK sends it, and hands
off to ``OpenAIService`` on a worker thread (validation and result writing can take a while
on 50,000-line files; the event loop must keep serving other calls meanwhile).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from typing import IO, Any, cast

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from llmbatch.emulator.multipart import FilePart, MultipartError, boundary_of, read_form
from llmbatch.emulator.openai.endpoints import ENDPOINTS
from llmbatch.emulator.openai.errors import (
    PROVIDER,
    fault_error,
    invalid_value,
    missing_parameter,
    openai_error,
)
from llmbatch.emulator.openai.service import UPLOAD_PURPOSES, OpenAIService, expiry_seconds

__all__ = ["build_router"]

CHUNK = 1024 * 1024
_BAD_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
    "sent was not valid JSON. If you have trouble figuring out how to fix this, please "
    "contact us through our help center at help.openai.com.)"
)
_NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization "
    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password "
    "field (with blank username) if you're accessing the API from your browser and are "
    "prompted for a username and password. You can obtain an API key from "
    "https://platform.openai.com/account/api-keys."
)


def _masked(key: str) -> str:
    return key[:3] + "*" * 10 + key[-4:] if len(key) > 8 else "*" * len(key)


def _int_query(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise openai_error(400, f"Invalid type for '{name}': expected an integer, but got a "
                           "string instead.", param=name, code="invalid_type") from None
    if not low <= value <= high:
        raise openai_error(400, f"Invalid '{name}': expected a value from {low} to {high}, but "
                           f"got {value} instead.", param=name, code="invalid_value")
    return value


def _stream_file(handle: IO[bytes]) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def build_router(service: OpenAIService) -> APIRouter:
    """The OpenAI routes, bound to one service."""
    router = APIRouter()
    rt = service.runtime

    async def enter(request: Request, operation: str, tags: dict[str, str] | None = None) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            rt.stats.auth_failure(PROVIDER)
            raise openai_error(401, _NO_KEY)
        if not rt.key_accepted(key.strip()):
            rt.stats.auth_failure(PROVIDER)
            raise openai_error(401, f"Incorrect API key provided: {_masked(key.strip())}. You "
                               "can find your API key at "
                               "https://platform.openai.com/account/api-keys.",
                               code="invalid_api_key")
        await rt.apply_call_faults(PROVIDER, operation, tags or {}, fault_error)

    @router.post("/files")
    async def create_file(request: Request) -> JSONResponse:
        await enter(request, "files.create")
        try:
            boundary = boundary_of(request.headers.get("content-type", ""))
        except MultipartError as exc:
            raise openai_error(400, str(exc)) from None
        blob_id = rt.ids.new("file-")

        def open_file(part: FilePart) -> IO[bytes]:
            target = rt.blobs.path(blob_id) if part.name == "file" else os.devnull
            return open(target, "wb")  # read_form closes it

        try:
            form = await read_form(request.stream(), boundary, open_file,
                                   max_file_bytes=rt.settings.openai.max_file_bytes)
            part = form.files.get("file")
            if part is None:
                raise missing_parameter("file")
            purpose = form.fields.get("purpose")
            if not purpose:
                raise missing_parameter("purpose")
            if purpose not in UPLOAD_PURPOSES:
                raise invalid_value("purpose", f"'{purpose}' is not one of "
                                    f"{', '.join(UPLOAD_PURPOSES)}.")
            if purpose == "batch" and not part.filename.endswith(".jsonl"):
                raise openai_error(400, "Invalid file format for Batch API. Must be .jsonl",
                                   param="file")
            expires_s = None
            anchor = form.fields.get("expires_after[anchor]")
            seconds = form.fields.get("expires_after[seconds]")
            if anchor is not None or seconds is not None:
                expires_s = expiry_seconds({"anchor": anchor, "seconds": seconds},
                                            "expires_after")
            record = service.add_file(blob_id=blob_id, filename=part.filename,
                                      purpose=purpose, expires_after_s=expires_s)
        except MultipartError as exc:
            rt.blobs.delete(blob_id)
            raise openai_error(400, f"Could not read the uploaded form: {exc}.") from None
        except BaseException:
            rt.blobs.delete(blob_id)
            raise
        return JSONResponse(record)

    @router.get("/files")
    async def list_files(request: Request) -> JSONResponse:
        await enter(request, "files.list")
        order = request.query_params.get("order", "desc")
        if order not in ("asc", "desc"):
            raise invalid_value("order", "expected 'asc' or 'desc'.")
        limit = _int_query(request, "limit", 10_000, 1, 10_000)
        return JSONResponse(service.list_files(
            purpose=request.query_params.get("purpose"), limit=limit, order=order,
            after=request.query_params.get("after")))

    @router.get("/files/{file_id}")
    async def retrieve_file(file_id: str, request: Request) -> JSONResponse:
        await enter(request, "files.retrieve")
        return JSONResponse(service.file(file_id).render())

    @router.delete("/files/{file_id}")
    async def delete_file(file_id: str, request: Request) -> JSONResponse:
        await enter(request, "files.delete")
        return JSONResponse(await run_in_threadpool(service.delete_file, file_id))

    @router.get("/files/{file_id}/content")
    async def file_content(file_id: str, request: Request) -> Response:
        await enter(request, "files.content")
        # Opened here, not in the stream: a delete racing the download cannot break it.
        handle = service.content_path(file_id).open("rb")
        size = os.fstat(handle.fileno()).st_size
        return StreamingResponse(_stream_file(handle), media_type="application/octet-stream",
                                 headers={"content-length": str(size)})

    @router.post("/batches")
    async def create_batch(request: Request) -> JSONResponse:
        raw = await request.body()
        try:
            params = json.loads(raw) if raw else None
        except ValueError:
            params = None
        metadata = params.get("metadata") if isinstance(params, dict) else None
        tags = {str(k): str(v) for k, v in metadata.items()} if isinstance(metadata,
                                                                            dict) else {}
        await enter(request, "batches.create", tags)
        if not isinstance(params, dict):
            raise openai_error(400, _BAD_JSON)
        return JSONResponse(await run_in_threadpool(service.create_batch,
                                                    cast(dict[str, Any], params)))

    @router.get("/batches")
    async def list_batches(request: Request) -> JSONResponse:
        await enter(request, "batches.list")
        limit = _int_query(request, "limit", 20, 1, 100)
        after = request.query_params.get("after")
        return JSONResponse(await run_in_threadpool(
            lambda: service.list_batches(after=after, limit=limit)))

    @router.get("/batches/{batch_id}")
    async def retrieve_batch(batch_id: str, request: Request) -> JSONResponse:
        await enter(request, "batches.retrieve", service.batch_tags(batch_id))
        return JSONResponse(await run_in_threadpool(service.retrieve_batch, batch_id))

    @router.post("/batches/{batch_id}/cancel")
    async def cancel_batch(batch_id: str, request: Request) -> JSONResponse:
        await enter(request, "batches.cancel", service.batch_tags(batch_id))
        return JSONResponse(await run_in_threadpool(service.cancel_batch, batch_id))

    @router.post("/chat/completions")
    async def chat_completion(request: Request) -> JSONResponse:
        # The synchronous endpoint, so SDK loops (the OpenAI SDK, LiteLLM) can be measured on
        # the same emulator as the batch path: the same body checks and the same synthesized
        # answer a batch result line holds, after ``timing.sync_latency_s``.
        await enter(request, "chat.completions")
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise openai_error(400, _BAD_JSON)
        if body.get("stream") is True:
            raise openai_error(400, "The emulator does not stream chat completions.",
                               param="stream", code="invalid_value")
        chat = ENDPOINTS["/v1/chat/completions"]
        rejection = chat.reject(body)
        if rejection is not None:
            raise openai_error(rejection.status, rejection.message, param=rejection.param,
                               code=rejection.code, type=rejection.type)
        if rt.settings.timing.sync_latency_s:
            await asyncio.sleep(rt.settings.timing.sync_latency_s)
        response, _ = chat.respond(body, created=int(rt.clock.now()),
                                   response_id=rt.ids.new("", length=29),
                                   default_dim=rt.settings.openai.embedding_dim)
        return JSONResponse(response)

    @router.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                      include_in_schema=False)
    async def unknown(path: str, request: Request) -> JSONResponse:
        raise openai_error(404, f"Invalid URL ({request.method} /v1/{path})")

    return router
