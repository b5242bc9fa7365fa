"""The one place where the ``openai`` SDK's exceptions become ``llmbatch.errors``.

| SDK exception                                   | llmbatch error                  |
|-------------------------------------------------|---------------------------------|
| APIConnectionError, APITimeoutError, transport  | TransientProviderError          |
| status 408, 409, >= 500                         | TransientProviderError          |
| APIResponseValidationError (2xx, unreadable)    | TransientProviderError          |
| RateLimitError (429)                            | RateLimitedError + retry_after  |
| 429 with code ``insufficient_quota``            | PermanentProviderError          |
| code ``token_limit_exceeded`` (any status)      | QuotaExceededError              |
| 401, 403                                        | AuthenticationError             |
| 404 (batch or file unknown, deleted, expired)   | ResourceGoneError               |
| other 4xx                                       | PermanentProviderError          |
| any other OpenAIError                           | PermanentProviderError          |

``insufficient_quota`` is a billing state, not a burst: retrying it with backoff only delays
the clear failure a user needs to see. ``token_limit_exceeded`` at create (some accounts get
the enqueued-token refusal synchronously rather than as a failed batch) created nothing: the
batch waits for room like one that failed for quota. Every error carries
``provider="openai"``, the HTTP status and OpenAI's error ``code``, and names the operation
that failed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

from llmbatch.errors import (
    PermanentProviderError,
    ProviderError,
    QuotaExceededError,
    ResourceGoneError,
)
from llmbatch.providers.openai.wire import TOKEN_LIMIT_CODE
from llmbatch.providers.retry_after import parse_retry_after
from llmbatch.providers.stainless_errors import StainlessErrors

if TYPE_CHECKING:  # the SDK is imported when an error is translated (stainless_errors)
    import openai

__all__ = ["PROVIDER", "calling", "parse_retry_after", "translate_error"]

PROVIDER: Final = "openai"


def _describe(exc: openai.APIStatusError) -> tuple[str | None, str | None]:
    """OpenAI's ``code`` (read by the SDK) and the body's ``message``."""
    message = exc.body.get("message") if isinstance(exc.body, Mapping) else None
    return exc.code, message if isinstance(message, str) else None


def _classify(status: int | None, code: str | None, operation: str) -> type[ProviderError] | None:
    """OpenAI's own rules (see the table above); ``None`` leaves the common mapping."""
    if code == TOKEN_LIMIT_CODE:
        return QuotaExceededError
    if status == 429 and code == "insufficient_quota":
        return PermanentProviderError
    if status == 404:
        return ResourceGoneError
    return None


_ERRORS: Final = StainlessErrors(PROVIDER, "openai", "OpenAIError", _describe, _classify)
translate_error = _ERRORS.translate_error
calling = _ERRORS.calling
