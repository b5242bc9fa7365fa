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

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Final

import openai

from llmbatch.errors import (
    AuthenticationError,
    PermanentProviderError,
    ProviderError,
    RateLimitedError,
    TransientProviderError,
)
from llmbatch.providers.retry_after import parse_retry_after

try:  # the SDK's transport: httpx2 in openai 3.x, httpx before
    from httpx2 import HTTPError as _TransportError
except ImportError:  # pragma: no cover - openai 2.x
    from httpx import HTTPError as _TransportError  # type: ignore[assignment]

__all__ = ["PROVIDER", "calling", "parse_retry_after", "translate_error"]

PROVIDER: Final = "openai"
# Errors that can escape the SDK: its own, and the transport's while a streamed body is read
# (the SDK wraps transport errors only while it sends the request, not during iteration).
SDK_ERRORS: Final = (openai.OpenAIError, _TransportError)


def translate_error(exc: BaseException, *, operation: str) -> ProviderError:
    """The ``llmbatch.errors`` equivalent of an SDK or transport exception (raise it ``from``)."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, openai.APITimeoutError):
        return TransientProviderError(f"{operation}: request timed out", provider=PROVIDER,
                                      code="timeout")
    if isinstance(exc, openai.APIConnectionError):
        cause = f" ({exc.__cause__})" if exc.__cause__ else ""
        return TransientProviderError(f"{operation}: {exc.message}{cause}", provider=PROVIDER,
                                      code="connection_error")
    if isinstance(exc, openai.APIStatusError):
        return _from_status(exc, operation)
    if isinstance(exc, openai.APIResponseValidationError):
        return TransientProviderError(f"{operation}: unreadable response: {exc.message}",
                                      provider=PROVIDER, status_code=exc.status_code,
                                      code="invalid_response")
    if isinstance(exc, _TransportError):
        return TransientProviderError(f"{operation}: connection broke: {exc!r}",
                                      provider=PROVIDER, code="connection_error")
    return PermanentProviderError(f"{operation}: {exc}", provider=PROVIDER)


def _from_status(exc: openai.APIStatusError, operation: str) -> ProviderError:
    status, code = exc.status_code, exc.code
    body_message = exc.body.get("message") if isinstance(exc.body, Mapping) else None
    message = f"{operation}: {body_message if isinstance(body_message, str) else exc.message}"
    if status == 429 and code != "insufficient_quota":
        return RateLimitedError(message, provider=PROVIDER, status_code=status, code=code,
                                retry_after=parse_retry_after(exc.response.headers))
    if status in (401, 403):
        return AuthenticationError(message, provider=PROVIDER, status_code=status, code=code)
    if status in (408, 409) or status >= 500:
        return TransientProviderError(message, provider=PROVIDER, status_code=status, code=code)
    return PermanentProviderError(message, provider=PROVIDER, status_code=status, code=code)


@contextmanager
def calling(operation: str) -> Iterator[None]:
    """Run SDK calls, translating what they raise into ``llmbatch.errors`` (``from`` the cause)."""
    try:
        yield
    except SDK_ERRORS as exc:
        raise translate_error(exc, operation=operation) from exc
