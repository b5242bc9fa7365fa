"""Gemini's error shape (google.rpc.Status inside ``{"error": ...}``) and standard messages.

Body: ``{"error": {"code": <HTTP status>, "message", "status": <canonical name>, "details"?}}``.
A 429 carries ``google.rpc.RetryInfo`` (``retryDelay: "1.5s"``) in ``details``, the way Google
services say how long to wait; the runtime adds ``Retry-After`` headers on top.
"""

from __future__ import annotations

from typing import Any

from llmbatch.emulator.runtime import EmulatorHTTPError

__all__ = ["PROVIDER", "STATUS_NAMES", "bad_request", "fault_error", "rpc_error", "status_body"]

PROVIDER = "gemini"
STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                404: "NOT_FOUND", 408: "DEADLINE_EXCEEDED", 409: "ABORTED",
                413: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED",
                500: "INTERNAL", 501: "NOT_IMPLEMENTED", 502: "UNAVAILABLE",
                503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
_FAULT_TEXT = {
    429: "Resource has been exhausted (e.g. check quota).",
    500: "An internal error has occurred. Please retry or report in "
         "https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
}


def status_body(code: int, message: str, details: list[dict[str, Any]] | None = None
                ) -> dict[str, Any]:
    """A google.rpc.Status with the HTTP code and canonical status name."""
    status: dict[str, Any] = {"code": code, "message": message,
                              "status": STATUS_NAMES.get(code, "UNKNOWN")}
    if details:
        status["details"] = details
    return status


def rpc_error(code: int, message: str, *, reason: str | None = None,
              retry_after_s: float | None = None) -> EmulatorHTTPError:
    """An HTTP error in Gemini's shape (ErrorInfo when ``reason`` is given)."""
    details: list[dict[str, Any]] = []
    if reason is not None:
        details.append({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
                        "domain": "googleapis.com",
                        "metadata": {"service": "generativelanguage.googleapis.com"}})
    if retry_after_s is not None:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo",
                        "retryDelay": f"{retry_after_s:g}s"})
    return EmulatorHTTPError(code, {"error": status_body(code, message, details)})


def bad_request(message: str, field: str) -> EmulatorHTTPError:
    """400 INVALID_ARGUMENT for a refused field, with the ``google.rpc.BadRequest`` detail
    Google adds (``fieldViolations``: the field path and the same text)."""
    details = [{"@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": field, "description": message}]}]
    return EmulatorHTTPError(400, {"error": status_body(400, message, details)})


def fault_error(status: int, message: str | None, retry_after_s: float | None = None
                ) -> EmulatorHTTPError:
    """The error an injected HTTP fault answers with."""
    text = message or _FAULT_TEXT.get(status, f"Injected error {status}.")
    return rpc_error(status, text, retry_after_s=retry_after_s if status == 429 else None)
