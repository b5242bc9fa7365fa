"""Anthropic's error shape: ``{"type": "error", "error": {"type", "message"}, "request_id"}``.

Types by status as documented (PROVIDER_APIS.md B.5); ``request_id`` is required (nullable) by
the spec's ``ErrorResponse``.
"""

from __future__ import annotations

import uuid
from typing import Any

from llmbatch.emulator.runtime import EmulatorHTTPError

__all__ = ["PROVIDER", "anthropic_error", "error_envelope", "fault_error", "invalid_request"]

PROVIDER = "anthropic"

TYPE_FOR_STATUS = {
    400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
    403: "permission_error", 404: "not_found_error", 413: "request_too_large",
    429: "rate_limit_error", 500: "api_error", 504: "timeout_error", 529: "overloaded_error",
}
_FAULT_TEXT = {
    429: "Number of request tokens has exceeded your per-minute rate limit.",
    500: "Internal server error",
    529: "Overloaded",
}


def error_envelope(kind: str, message: str, request_id: str | None = None) -> dict[str, Any]:
    """The standard error object (also the ``error`` of an ``errored`` result)."""
    return {"type": "error", "error": {"type": kind, "message": message},
            "request_id": request_id or f"req_{uuid.uuid4().hex[:24]}"}


def anthropic_error(status: int, message: str, *, kind: str | None = None,
                    headers: dict[str, str] | None = None) -> EmulatorHTTPError:
    """An HTTP error in Anthropic's shape; ``kind`` defaults from the status."""
    kind = kind or TYPE_FOR_STATUS.get(status, "api_error" if status >= 500 else
                                       "invalid_request_error")
    return EmulatorHTTPError(status, error_envelope(kind, message), headers)


def invalid_request(message: str) -> EmulatorHTTPError:
    """400 ``invalid_request_error``."""
    return anthropic_error(400, message)


def fault_error(status: int, message: str | None) -> EmulatorHTTPError:
    """The error an injected HTTP fault answers with."""
    return anthropic_error(status, message or _FAULT_TEXT.get(status, f"Injected error {status}"))
