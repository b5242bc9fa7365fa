"""One request's fate and the result-file line that reports it.

The fate is decided twice with the same inputs: once while validating (to know how many will
fail, so live counters are right) and once while writing result files. It is a pure function
of the line, the batch id, the emulator seed and the drawn ``item_errors`` fault, so both
passes agree without storing anything per line. The batch id is part of the draw so a request
retried in a new batch gets a fresh chance, as it would for real.

Result lines (``BatchRequestOutput``): success ``{"id", "custom_id", "response": {status_code
200, request_id, body}, "error": null}``; an endpoint rejection or injected HTTP failure has
``error: null`` and ``response.status_code`` 4xx/5xx with an OpenAI error body; a non-HTTP
failure (injected, expiry, cancel) has ``response: null`` and ``error: {code, message}``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from llmbatch.emulator.faults import ItemErrorsFault
from llmbatch.emulator.openai.endpoints import Endpoint
from llmbatch.emulator.openai.errors import error_body

__all__ = ["BATCH_CANCELLED", "BATCH_EXPIRED", "LineFailure", "failure_line", "line_failure",
           "success_line"]

BATCH_EXPIRED = ("batch_expired",
                 "This request could not be executed before the completion window expired.")
BATCH_CANCELLED = ("batch_cancelled",
                   "This request was not executed because the batch was cancelled.")

_INJECTED = {
    429: ("rate_limit_exceeded", "rate_limit_error",
          "Rate limit reached for requests. Please try again in a moment."),
    400: ("invalid_request", "invalid_request_error", "Invalid request (injected fault)."),
}
_SERVER = ("server_error", "server_error",
           "The server had an error while processing your request. Sorry about that!")


@dataclass(frozen=True)
class LineFailure:
    """How a request failed, in one of the two error-line shapes."""

    shape: Literal["error", "response"]
    code: str | None
    message: str
    status: int | None = None
    body: Mapping[str, Any] | None = None


def line_failure(
    *,
    body: Mapping[str, Any],
    endpoint: Endpoint,
    batch_id: str,
    custom_id: str,
    seed: int,
    item_errors: ItemErrorsFault | None,
) -> LineFailure | None:
    """The failure of this request, or None if it succeeds."""
    rejection = endpoint.reject(body)
    if rejection is not None:
        return LineFailure(
            "response", rejection.code, rejection.message, rejection.status,
            error_body(rejection.message, type=rejection.type, param=rejection.param,
                       code=rejection.code),
        )
    if item_errors is None or item_errors.rate <= 0:
        return None
    draw = hashlib.blake2b(f"{seed}:{batch_id}:{custom_id}".encode(), digest_size=8).digest()
    if int.from_bytes(draw[:6], "big") / 2**48 >= item_errors.rate:
        return None
    shape: Literal["error", "response"]
    if item_errors.shape == "mixed":
        shape = "error" if draw[6] % 2 else "response"
    else:
        shape = item_errors.shape
    status = item_errors.status_code
    code, kind, message = _INJECTED.get(status, _SERVER if status >= 500 else
                                        ("invalid_request", "invalid_request_error",
                                         f"Request failed with status {status} (injected)."))
    code = item_errors.code or code
    message = item_errors.message or message
    if shape == "error":
        return LineFailure("error", code, message)
    return LineFailure("response", code, message, status,
                       error_body(message, type=kind, code=code))


def success_line(
    line_id: str, custom_id: str, request_id: str, body: Mapping[str, Any]
) -> dict[str, Any]:
    """An output-file line."""
    return {
        "id": line_id,
        "custom_id": custom_id,
        "response": {"status_code": 200, "request_id": request_id, "body": body},
        "error": None,
    }


def failure_line(
    line_id: str, custom_id: str, request_id: str, failure: LineFailure
) -> dict[str, Any]:
    """An error-file line in the failure's shape."""
    if failure.shape == "error":
        return {
            "id": line_id,
            "custom_id": custom_id,
            "response": None,
            "error": {"code": failure.code, "message": failure.message},
        }
    return {
        "id": line_id,
        "custom_id": custom_id,
        "response": {"status_code": failure.status, "request_id": request_id,
                     "body": failure.body},
        "error": None,
    }
