"""OpenAI's error shapes: the HTTP error body and the standard messages the emulator uses.

Body: ``{"error": {"message", "type", "param", "code"}}`` (spec ``ErrorResponse``). Where the
real message text is known it is copied; otherwise the text is ours and says so in tests.
"""

from __future__ import annotations

from typing import Any

from llmbatch.emulator.runtime import EmulatorHTTPError

__all__ = [
    "PROVIDER",
    "error_body",
    "fault_error",
    "invalid_value",
    "missing_parameter",
    "no_such_file",
    "openai_error",
]

PROVIDER = "openai"

_TYPE_FOR_STATUS = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}
_FAULT_TEXT = {
    408: ("Request timed out.", "timeout", None),
    429: ("Rate limit reached for requests. Please try again in a moment.", "requests",
          "rate_limit_exceeded"),
    500: ("The server had an error while processing your request. Sorry about that!",
          "server_error", None),
    502: ("Bad gateway.", "server_error", None),
    503: ("The server is overloaded or not ready yet.", "server_error", None),
    504: ("Gateway timeout.", "server_error", None),
}


def error_body(
    message: str, *, type: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """``{"error": {...}}`` with all four keys present, as the spec requires."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def openai_error(
    status: int,
    message: str,
    *,
    type: str | None = None,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> EmulatorHTTPError:
    """An HTTP error in OpenAI's shape; ``type`` defaults from the status."""
    kind = type or _TYPE_FOR_STATUS.get(status, "server_error" if status >= 500 else
                                        "invalid_request_error")
    return EmulatorHTTPError(status, error_body(message, type=kind, param=param, code=code),
                             headers)


def fault_error(status: int, message: str | None) -> EmulatorHTTPError:
    """The error an injected HTTP fault answers with."""
    text, kind, code = _FAULT_TEXT.get(status, (f"Injected error {status}.", "", None))
    return openai_error(status, message or text, type=kind or None, code=code)


def no_such_file(file_id: str, param: str = "id") -> EmulatorHTTPError:
    """404 for an unknown (or deleted, or expired) file."""
    return openai_error(404, f"No such File object: {file_id}", param=param)


def missing_parameter(param: str) -> EmulatorHTTPError:
    """400 for an absent required parameter."""
    return openai_error(400, f"Missing required parameter: '{param}'.", param=param,
                        code="missing_required_parameter")


def invalid_value(param: str, detail: str) -> EmulatorHTTPError:
    """400 for a parameter with a bad value."""
    return openai_error(400, f"Invalid value for '{param}': {detail}", param=param,
                        code="invalid_value")
