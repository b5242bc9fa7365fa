"""The one place where the ``openai`` SDK's exceptions become ``llmbatch.errors``.

| SDK exception                                   | llmbatch error                  |
|-------------------------------------------------|---------------------------------|
| APIConnectionError, APITimeoutError, transport  | TransientProviderError          |
| status 408, 409, >= 500                         | TransientProviderError          |
| APIResponseValidationError (2xx, unreadable)    | TransientProviderError          |
| RateLimitError (429)                            | RateLimitedError + retry_after  |
| 429 with code ``insufficient_quota``            | PermanentProviderError          |
| 401, 403                                        | AuthenticationError             |
| other 4xx                                       | PermanentProviderError          |
| any other OpenAIError                           | PermanentProviderError          |

``insufficient_quota`` is a billing state, not a burst: retrying it with backoff only delays
the clear failure a user needs to see. Every error carries ``provider="openai"``, the HTTP
status and OpenAI's error ``code``, and names the operation that failed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import openai

from llmbatch.providers.retry_after import parse_retry_after
from llmbatch.providers.stainless_errors import StainlessErrors

__all__ = ["PROVIDER", "SDK_ERRORS", "calling", "parse_retry_after", "translate_error"]

PROVIDER: Final = "openai"


def _describe(exc: openai.APIStatusError) -> tuple[str | None, str | None]:
    """OpenAI's ``code`` (read by the SDK) and the body's ``message``."""
    message = exc.body.get("message") if isinstance(exc.body, Mapping) else None
    return exc.code, message if isinstance(message, str) else None


def _permanent(status: int, code: str | None) -> bool:
    """``insufficient_quota`` arrives as a 429 but is a billing state, not a burst."""
    return status == 429 and code == "insufficient_quota"


_ERRORS: Final = StainlessErrors(PROVIDER, openai, openai.OpenAIError, _describe, _permanent)
SDK_ERRORS: Final = _ERRORS.sdk_errors
translate_error = _ERRORS.translate_error
calling = _ERRORS.calling
