"""The one place where the ``anthropic`` SDK's exceptions become ``llmbatch.errors``.

| SDK exception                                      | llmbatch error                  |
|----------------------------------------------------|---------------------------------|
| APIConnectionError, APITimeoutError, transport     | TransientProviderError          |
| status 408, 409, >= 500 (incl. 529 overloaded)     | TransientProviderError          |
| APIResponseValidationError (2xx, unreadable)       | TransientProviderError          |
| RateLimitError (429)                               | RateLimitedError + retry_after  |
| AuthenticationError (401), PermissionDenied (403)  | AuthenticationError             |
| other 4xx (400, 402 billing, 404, 413, ...)        | PermanentProviderError          |
| any other AnthropicError                           | PermanentProviderError          |

``code`` is Anthropic's ``error.type`` (``overloaded_error``, ``not_found_error``...), so
operators see the provider's own word. Every error carries ``provider="anthropic"`` and the
operation that failed. ``parse_retry_after`` is shared with the OpenAI adapter's reading of
the headers (both SDKs honour ``retry-after-ms`` before ``retry-after``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

import anthropic

from llmbatch.errors import (
    AuthenticationError,
    PermanentProviderError,
    ProviderError,
    RateLimitedError,
    TransientProviderError,
)
from llmbatch.providers.retry_after import parse_retry_after

try:  # the SDK's transport: httpx2 in anthropic 1.x/2.x, httpx before
    from httpx2 import HTTPError as _TransportError
except ImportError:  # pragma: no cover - anthropic 0.x
    from httpx import HTTPError as _TransportError  # type: ignore[assignment]

__all__ = ["PROVIDER", "SDK_ERRORS", "calling", "parse_retry_after", "translate_error"]

PROVIDER: Final = "anthropic"
# Errors that can escape the SDK: its own, and the transport's while a streamed body is read.
SDK_ERRORS: Final = (anthropic.AnthropicError, _TransportError)


def translate_error(exc: BaseException, *, operation: str) -> ProviderError:
    """The ``llmbatch.errors`` equivalent of an SDK or transport exception (raise it ``from``)."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, anthropic.APITimeoutError):
        return TransientProviderError(f"{operation}: request timed out", provider=PROVIDER,
                                      code="timeout")
    if isinstance(exc, anthropic.APIConnectionError):
        cause = f" ({exc.__cause__})" if exc.__cause__ else ""
        return TransientProviderError(f"{operation}: {exc.message}{cause}", provider=PROVIDER,
                                      code="connection_error")
    if isinstance(exc, anthropic.APIStatusError):
        return _from_status(exc, operation)
    if isinstance(exc, anthropic.APIResponseValidationError):
        return TransientProviderError(f"{operation}: unreadable response: {exc.message}",
                                      provider=PROVIDER, status_code=exc.status_code,
                                      code="invalid_response")
    if isinstance(exc, _TransportError):
        return TransientProviderError(f"{operation}: connection broke: {exc!r}",
                                      provider=PROVIDER, code="connection_error")
    return PermanentProviderError(f"{operation}: {exc}", provider=PROVIDER)


def _error_object(body: Any) -> Mapping[str, Any]:
    """``error`` of the envelope ``{"type": "error", "error": {type, message}}``; the SDK
    hands over either the envelope or (some versions) the inner object."""
    if isinstance(body, Mapping):
        inner = body.get("error")
        return inner if isinstance(inner, Mapping) else body
    return {}


def _from_status(exc: anthropic.APIStatusError, operation: str) -> ProviderError:
    status = exc.status_code
    error = _error_object(exc.body)
    code = error.get("type") if isinstance(error.get("type"), str) else None
    text = error.get("message")
    message = f"{operation}: {text if isinstance(text, str) else exc.message}"
    if status == 429:
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
