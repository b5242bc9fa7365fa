"""HTTP routes of the Gemini emulator, mounted at ``/gemini`` for API versions v1 and v1beta.

google-genai sends ``{base_url}/{version}/{path}`` (and ``{base_url}/upload/{version}/files``),
so the SDK with ``HttpOptions(base_url="http://H:P/gemini", api_version=...)`` works unchanged.
Resource names contain ``:verb`` suffixes (``batches/x:cancel``, ``files/y:download``), so the
routes take the rest of the path and dispatch on the suffix. Each call authenticates
(``x-goog-api-key`` or ``?key=``), is counted and has its call faults applied, then runs on a
worker thread. Upload-session URLs need no key: the session id is the capability, as for real.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import IO, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from llmbatch.emulator.gemini.errors import PROVIDER, fault_error, rpc_error
from llmbatch.emulator.gemini.service import CREATE_METHODS, GeminiService
from llmbatch.emulator.gemini.state import render_file
from llmbatch.emulator.runtime import EmulatorHTTPError

__all__ = ["build_router"]

VERSIONS = ("v1", "v1beta")
CHUNK = 1024 * 1024
_NO_KEY = ("Method doesn't allow unregistered callers (callers without established identity). "
           "Please use API Key or other form of API consumer identity to call this API.")


class _EscapedJSONResponse(JSONResponse):
    """JSON with non-ASCII characters escaped: inline answers may hold a lone surrogate (the
    ``poison_output`` fault), which UTF-8 cannot carry but a JSON escape can."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":")).encode()


def _stream(handle: IO[bytes]) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def _page_size(request: Request, default: int, high: int) -> int:
    raw = request.query_params.get("pageSize", request.query_params.get("page_size"))
    try:
        value = int(raw) if raw is not None else default
    except ValueError:
        raise rpc_error(400, f"Invalid value at 'page_size' (TYPE_INT32), \"{raw}\"") from None
    return min(max(value, 1), high) if value > 0 else default


def build_router(service: GeminiService, prefix: str) -> APIRouter:
    """The Gemini routes, bound to one service; ``prefix`` is where they are mounted."""
    router = APIRouter()
    rt = service.runtime

    def root(request: Request) -> str:
        return str(request.base_url).rstrip("/") + prefix

    async def enter(request: Request, version: str, operation: str,
                    tags: dict[str, str] | None = None) -> None:
        if version not in VERSIONS:
            raise rpc_error(404, f"API version {version} is not served by this emulator.")
        key = request.headers.get("x-goog-api-key") or request.query_params.get("key")
        if not key:
            rt.stats.auth_failure(PROVIDER)
            raise rpc_error(403, _NO_KEY, reason="CREDENTIALS_MISSING")
        if not rt.key_accepted(key):
            rt.stats.auth_failure(PROVIDER)
            raise rpc_error(400, "API key not valid. Please pass a valid API key.",
                            reason="API_KEY_INVALID")
        drawn = rt.call_faults(PROVIDER, operation, tags or {})
        if drawn.delay_s:
            await asyncio.sleep(drawn.delay_s)
        if drawn.error is not None:
            retry = drawn.error.retry_after_s
            error = fault_error(drawn.error.status, drawn.error.message, retry)
            if retry is not None:
                error.headers["retry-after"] = str(max(1, int(-(-retry // 1))))
                error.headers["retry-after-ms"] = str(int(retry * 1000))
            raise error

    @router.post("/upload/{version}/files")
    async def upload(version: str, request: Request) -> Response:
        session_id = request.query_params.get("upload_id")
        if session_id is not None:
            return await upload_chunk(session_id, request)
        await enter(request, version, "files.upload")
        if request.headers.get("x-goog-upload-protocol") != "resumable" or \
                request.headers.get("x-goog-upload-command") != "start":
            raise rpc_error(400, "Only the resumable upload protocol is emulated "
                            "(X-Goog-Upload-Protocol: resumable, X-Goog-Upload-Command: start).")
        raw = await request.body()
        try:
            metadata = json.loads(raw) if raw else {}
        except ValueError:
            raise rpc_error(400, "Invalid JSON payload received.") from None
        size = request.headers.get("x-goog-upload-header-content-length")
        session = service.start_upload(
            metadata if isinstance(metadata, dict) else {},
            int(size) if size and size.isdigit() else None,
            request.headers.get("x-goog-upload-header-content-type"))
        url = f"{root(request)}/upload/{version}/files?upload_id={session.id}" \
              "&upload_protocol=resumable"
        return Response(status_code=200, headers={"x-goog-upload-url": url,
                                                  "x-goog-upload-status": "active"})

    async def upload_chunk(session_id: str, request: Request) -> Response:
        command = {c.strip() for c in request.headers.get("x-goog-upload-command", "").split(",")}
        offset = request.headers.get("x-goog-upload-offset", "0")
        data = await request.body()
        try:
            record = await run_in_threadpool(service.upload_chunk, session_id,
                                             int(offset) if offset.isdigit() else -1, data,
                                             "finalize" in command)
        except EmulatorHTTPError as exc:
            exc.headers["x-goog-upload-status"] = "final"  # else the SDK re-sends 3 times
            raise
        if record is None:
            return Response(status_code=200, headers={"x-goog-upload-status": "active"})
        version = request.url.path.split("/upload/")[1].split("/")[0]
        return JSONResponse({"file": render_file(record, root(request), version)},
                            headers={"x-goog-upload-status": "final"})

    @router.post("/{version}/models/{target}")
    async def model_method(version: str, target: str, request: Request) -> JSONResponse:
        model, _, method = target.partition(":")
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        batch = body.get("batch") if isinstance(body, dict) else None
        display = batch.get("displayName", batch.get("display_name")) if isinstance(
            batch, dict) else None
        tags = {"displayName": display} if isinstance(display, str) else {}
        await enter(request, version, "batches.create", tags)
        kind = CREATE_METHODS.get(method)
        if kind is None:
            raise rpc_error(404, f"Method models.{method or model} is not emulated.")
        if len(raw) > rt.settings.gemini.max_inline_bytes:
            raise rpc_error(400, "Request payload size exceeds the limit: "
                            f"{rt.settings.gemini.max_inline_bytes} bytes.")
        if body is None:
            raise rpc_error(400, "Invalid JSON payload received.")
        name = service.check_model(model, version, method)
        faults = rt.faults.for_batch(PROVIDER, tags)
        return JSONResponse(await run_in_threadpool(service.create_batch, name, body, faults,
                                                    kind))

    @router.get("/{version}/batches")
    async def list_batches(version: str, request: Request) -> JSONResponse:
        await enter(request, version, "batches.list")
        size = _page_size(request, 50, 1000)
        token = request.query_params.get("pageToken")
        return JSONResponse(await run_in_threadpool(service.list_batches, size, token))

    @router.api_route("/{version}/batches/{target}", methods=["GET", "POST", "DELETE"])
    async def batch(version: str, target: str, request: Request) -> JSONResponse:
        ident, _, verb = target.partition(":")
        name = f"batches/{ident}"
        operation = {("GET", ""): "batches.get", ("DELETE", ""): "batches.delete",
                     ("POST", "cancel"): "batches.cancel"}.get((request.method, verb))
        if operation is None:
            raise rpc_error(404, f"Method {request.method} batches/*:{verb} is not emulated.")
        await enter(request, version, operation, service.batch_tags(name))
        if operation == "batches.get":
            record = service.batch(name)
            return _EscapedJSONResponse(await run_in_threadpool(service.view, record))
        call = service.cancel if operation == "batches.cancel" else service.delete
        return JSONResponse(await run_in_threadpool(call, name))

    @router.get("/{version}/files")
    async def list_files(version: str, request: Request) -> JSONResponse:
        await enter(request, version, "files.list")
        size = _page_size(request, 10, 100)
        return JSONResponse(service.list_files(size, request.query_params.get("pageToken"),
                                               base_url=root(request), version=version))

    @router.api_route("/{version}/files/{target}", methods=["GET", "DELETE"])
    async def file(version: str, target: str, request: Request) -> Response:
        ident, _, verb = target.partition(":")
        name = f"files/{ident}"
        if verb == "download" and request.method == "GET":
            return await download(version, name, request)
        if verb:
            raise rpc_error(404, f"Method files/*:{verb} is not emulated.")
        if request.method == "DELETE":
            await enter(request, version, "files.delete")
            return JSONResponse(await run_in_threadpool(service.delete_file, name))
        await enter(request, version, "files.get")
        return JSONResponse(render_file(service.file(name), root(request), version))

    @router.get("/download/{version}/files/{target}")
    async def download_alias(version: str, target: str, request: Request) -> Response:
        ident, _, verb = target.partition(":")
        if verb != "download":
            raise rpc_error(404, "Not found.")
        return await download(version, f"files/{ident}", request)

    async def download(version: str, name: str, request: Request) -> Response:
        with service.state.lock:
            known = service.state.files.get(name)
        await enter(request, version, "files.download", known.tags if known else {})
        if request.query_params.get("alt") != "media":
            raise rpc_error(400, "Downloads need alt=media.")
        record = service.download(name)
        handle = rt.blobs.path(record.blob).open("rb")  # opened now: a racing delete is fine
        return StreamingResponse(_stream(handle), media_type=record.mime_type,
                                 headers={"content-length": str(record.size)})

    @router.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                      include_in_schema=False)
    async def unknown(path: str, request: Request) -> Any:
        raise rpc_error(404, f"The requested URL /{path} was not found on this server.")

    return router
