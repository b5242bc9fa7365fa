"""Errors as RFC 9457 problem details (``application/problem+json``).

Each llmbatch error maps to one status: bad input 422 (with the file, line and field the CLI
prints, from the service layer's ``InputError``), no such job 404 (another tenant's job too),
conflict 409, database or broker down 503. Anything unexpected is a 500 whose body says
nothing about the server's insides.

Every body passes through the redaction step (``observability.redaction``) on its way out: a
problem may quote the caller's input (a custom_id, a job id in the path, a field's value), and
an email address, phone or card number or key in it becomes ``[email]``, ``[phone]``...,
like everywhere else llmbatch writes about a job.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from llmbatch.api.models import ProblemError, ProblemOut
from llmbatch.errors import (
    ConfigError,
    ConflictError,
    InfrastructureError,
    InputError,
    InputProblems,
    LLMBatchError,
    NotFoundError,
)
from llmbatch.observability.redaction import redactor

__all__ = ["PROBLEM_MEDIA_TYPE", "ApiProblem", "install_problem_handlers", "problem_response",
           "problem_responses"]

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_SCHEMA_REF = "#/components/schemas/ProblemOut"
log = logging.getLogger(__name__)
# RFC 9110's names, whatever this Python's ``http.HTTPStatus`` calls them.
_TITLES = {413: "Content Too Large", 422: "Unprocessable Content"}


class ApiProblem(Exception):
    """Raised by routes and dependencies to answer with a problem (401, 413, 415, 429...)."""

    def __init__(self, status: int, detail: str, *, headers: dict[str, str] | None = None,
                 errors: list[ProblemError] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}
        self.errors = errors


def problem_response(status: int, detail: str | None, *, instance: str | None = None,
                     headers: dict[str, str] | None = None,
                     errors: list[ProblemError] | None = None,
                     problem_count: int | None = None) -> JSONResponse:
    title = _TITLES.get(status) or HTTPStatus(status).phrase
    body = ProblemOut(title=title, status=status, detail=detail,
                      instance=instance, errors=errors, problem_count=problem_count)
    content = redactor().value(body.model_dump(mode="json", exclude_none=True))
    return JSONResponse(content, status_code=status,
                        media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def input_problem(exc: InputError) -> list[ProblemError]:
    """Each listed problem of ``exc`` (several for ``InputProblems``), as the CLI prints it."""
    return [ProblemError(message=p.message, file=p.file, line=p.line, field=p.field,
                         text=str(p))
            for p in (exc.problems if isinstance(exc, InputProblems) else [exc])]


def _status_of(exc: LLMBatchError) -> int:
    if isinstance(exc, InputError | ConfigError):
        return 422
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ConflictError):
        return 409
    if isinstance(exc, InfrastructureError):
        return 503
    return 500


def install_problem_handlers(app: FastAPI) -> None:
    """Every error the app can raise, answered as a problem."""

    async def on_llmbatch(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, LLMBatchError)
        status = _status_of(exc)
        if status == 500:
            log.error("unexpected llmbatch error on %s", request.url.path, exc_info=exc)
            return problem_response(500, "internal error", instance=request.url.path)
        errors = input_problem(exc) if isinstance(exc, InputError) else None
        return problem_response(status, str(exc), instance=request.url.path, errors=errors,
                                problem_count=exc.total if isinstance(exc, InputProblems)
                                else None)

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiProblem)
        return problem_response(exc.status, exc.detail, instance=request.url.path,
                                headers=exc.headers, errors=exc.errors)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path",
                                                                  "header")]
            field = ".".join(loc) or None
            message = str(err.get("msg", "invalid"))
            errors.append(ProblemError(message=message, field=field,
                                       text=f"field '{field}' {message}" if field else message))
        detail = "; ".join(e.text for e in errors) or "invalid request"
        return problem_response(422, detail, instance=request.url.path, errors=errors)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return problem_response(exc.status_code, str(exc.detail), instance=request.url.path,
                                headers=dict(exc.headers or {}))

    async def on_any(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s", request.url.path, exc_info=exc)
        return problem_response(500, "internal error", instance=request.url.path)

    app.add_exception_handler(LLMBatchError, on_llmbatch)
    app.add_exception_handler(ApiProblem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_any)


_DESCRIPTIONS = {
    400: "The request cannot be read", 401: "No valid API key",
    404: "No such job (another tenant's job is not told apart from none)",
    409: "Conflicts with the stored state", 413: "The body is over the size cap",
    415: "Unsupported content type", 422: "Invalid input: where (file, line, field) and why",
    429: "Over the per-key rate limit; retry after Retry-After seconds",
    503: "The database or the broker cannot be reached",
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entries of an operation for these error statuses."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {
            "description": _DESCRIPTIONS[status],
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": PROBLEM_SCHEMA_REF}}},
        }
        if status == 429:
            entry["headers"] = {"Retry-After": {"description": "Seconds to wait",
                                                "schema": {"type": "integer"}}}
        if status == 401:
            entry["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
        out[status] = entry
    return out
