"""HTTP routes of the Anthropic emulator, mounted at ``/anthropic``.

Auth as the real API takes it: ``x-api-key`` (SDK 0.x/1.x, curl) or ``Authorization: Bearer``
(SDK 2.x), plus a known ``anthropic-version``. Each route counts the call and applies the call
faults drawn for its operation (named as the SDK calls them: ``batches.create``,
``batches.retrieve``, ``batches.list``, ``batches.cancel``, ``batches.delete``,
``batches.results``).

Targeting a batch with faults: Anthropic batches have no metadata, so a batch's tags are
``first_custom_id`` and ``custom_id_prefix`` (the first request's custom_id up to its last
``-``), plus any ``k=v`` pairs of an ``x-emulator-tags: k=v;k2=v2`` header on create (an
emulator-only header that tests use to tie a batch to their own tag).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import IO

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from llmbatch.emulator.anthropic.errors import (
    PROVIDER,
    anthropic_error,
    fault_error,
    invalid_request,
)
from llmbatch.emulator.anthropic.service import AnthropicService

__all__ = ["TAGS_HEADER", "build_router", "tags_of"]

TAGS_HEADER = "x-emulator-tags"
CHUNK = 1024 * 1024


def tags_of(raw: bytes, header: str | None) -> dict[str, str]:
    """Fault-matching tags of a create request (see the module docstring)."""
    tags: dict[str, str] = {}
    try:
        body = json.loads(raw)
        first = body["requests"][0]["custom_id"]
    except (ValueError, KeyError, IndexError, TypeError):
        first = None
    if isinstance(first, str):
        tags["first_custom_id"] = first
        tags["custom_id_prefix"] = first.rsplit("-", 1)[0]
    for pair in (header or "").split(";"):
        key, sep, value = pair.partition("=")
        if sep and key.strip():
            tags[key.strip()] = value.strip()
    return tags


def betas_of(request: Request) -> tuple[str, ...]:
    """The betas of the ``anthropic-beta`` header (comma-separated; the SDK joins its list)."""
    header = request.headers.get("anthropic-beta", "")
    return tuple(b.strip() for b in header.split(",") if b.strip())


def _stream(handle: IO[bytes]) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def build_router(service: AnthropicService, prefix: str) -> APIRouter:
    """The Anthropic routes, bound to one service."""
    router = APIRouter()
    rt = service.runtime

    def base_url(request: Request) -> str:
        return str(request.base_url).rstrip("/") + prefix

    async def enter(request: Request, operation: str,
                    tags: dict[str, str] | None = None) -> None:
        key = request.headers.get("x-api-key")
        if key is None:
            scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
            key = bearer.strip() if scheme.lower() == "bearer" else None
        if not key:
            rt.stats.auth_failure(PROVIDER)
            raise anthropic_error(401, "x-api-key header is required")
        if not rt.key_accepted(key):
            rt.stats.auth_failure(PROVIDER)
            raise anthropic_error(401, "invalid x-api-key")
        version = request.headers.get("anthropic-version")
        if version is None:
            raise invalid_request("anthropic-version: header is required")
        if version not in rt.settings.anthropic.api_versions:
            raise invalid_request(f"anthropic-version: invalid version '{version}'")
        rt.stats.betas_seen(PROVIDER, operation, betas_of(request))
        await rt.apply_call_faults(PROVIDER, operation, tags or {}, fault_error)

    @router.post("/v1/messages/batches")
    async def create(request: Request) -> JSONResponse:
        raw = await request.body()
        tags = tags_of(raw, request.headers.get(TAGS_HEADER))
        await enter(request, "batches.create", tags)
        betas = betas_of(request)
        return JSONResponse(await run_in_threadpool(
            lambda: service.create_batch(raw, tags, base_url(request), betas=betas)))

    @router.get("/v1/messages/batches")
    async def list_batches(request: Request) -> JSONResponse:
        await enter(request, "batches.list")
        raw_limit = request.query_params.get("limit", "20")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 1000:
            raise invalid_request("limit: Input should be between 1 and 1000")
        page = service.list_batches(limit=int(raw_limit),
                                    after_id=request.query_params.get("after_id"),
                                    before_id=request.query_params.get("before_id"),
                                    base_url=base_url(request))
        return JSONResponse(page)

    @router.get("/v1/messages/batches/{batch_id}")
    async def retrieve(batch_id: str, request: Request) -> JSONResponse:
        await enter(request, "batches.retrieve", service.batch_tags(batch_id))
        record = service.batch(batch_id)
        return JSONResponse(await run_in_threadpool(service.view, record, base_url(request)))

    @router.delete("/v1/messages/batches/{batch_id}")
    async def delete(batch_id: str, request: Request) -> JSONResponse:
        await enter(request, "batches.delete", service.batch_tags(batch_id))
        return JSONResponse(await run_in_threadpool(service.delete_batch, batch_id))

    @router.post("/v1/messages/batches/{batch_id}/cancel")
    async def cancel(batch_id: str, request: Request) -> JSONResponse:
        await enter(request, "batches.cancel", service.batch_tags(batch_id))
        return JSONResponse(await run_in_threadpool(service.cancel_batch, batch_id,
                                                    base_url(request)))

    @router.get("/v1/messages/batches/{batch_id}/results")
    async def results(batch_id: str, request: Request) -> Response:
        await enter(request, "batches.results", service.batch_tags(batch_id))
        path = await run_in_threadpool(service.results_path, batch_id)
        handle = path.open("rb")  # opened here: a delete racing the download cannot break it
        size = os.fstat(handle.fileno()).st_size
        return StreamingResponse(_stream(handle), media_type="application/x-jsonl",
                                 headers={"content-length": str(size)})

    @router.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                      include_in_schema=False)
    async def unknown(path: str, request: Request) -> JSONResponse:
        raise anthropic_error(404, f"Not found: {request.method} /{path}")

    return router
