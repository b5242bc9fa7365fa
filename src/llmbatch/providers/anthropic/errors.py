"""The one place where the ``anthropic`` SDK's exceptions become ``llmbatch.errors``.

| SDK exception                                      | llmbatch error                  |
|----------------------------------------------------|---------------------------------|
| APIConnectionError, APITimeoutError, transport     | TransientProviderError          |
| status 408, 409, >= 500 (incl. 529 overloaded)     | TransientProviderError          |
| APIResponseValidationError (2xx, unreadable)       | TransientProviderError          |
| RateLimitError (429)                               | RateLimitedError + retry_after  |
| AuthenticationError (401), PermissionDenied (403)  | AuthenticationError             |
| NotFoundError (404): batch unknown or deleted      | ResourceGoneError               |
| results of a batch with no ``results_url`` (SDK)   | ResourceGoneError               |
| other 4xx (400, 402 billing, 413, ...)             | PermanentProviderError          |
| any other AnthropicError                           | PermanentProviderError          |

The SDK refuses ``results`` itself (a plain ``AnthropicError``, no HTTP status) for a batch
without a ``results_url``. The adapter asks for results only of batches that ended, and
Anthropic keeps results 29 days after creation (then ``archived_at`` is set and the batch
stays listable without them): so that refusal means the results are gone.

``code`` is Anthropic's ``error.type`` (``overloaded_error``, ``not_found_error``...), so
operators see the provider's own word. Every error carries ``provider="anthropic"`` and the
operation that failed. ``parse_retry_after`` is shared with the OpenAI adapter's reading of
the headers (both SDKs honour ``retry-after-ms`` before ``retry-after``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from llmbatch.errors import ProviderError, ResourceGoneError
from llmbatch.providers.retry_after import parse_retry_after
from llmbatch.providers.stainless_errors import StainlessErrors

if TYPE_CHECKING:  # the SDK is imported when an error is translated (stainless_errors)
    import anthropic

__all__ = ["PROVIDER", "RESULTS", "calling", "parse_retry_after", "translate_error"]

PROVIDER: Final = "anthropic"
RESULTS: Final = "messages.batches.results"  # the operation name of a results download


def _error_object(body: Any) -> Mapping[str, Any]:
    """``error`` of the envelope ``{"type": "error", "error": {type, message}}``; the SDK
    hands over either the envelope or (some versions) the inner object."""
    if isinstance(body, Mapping):
        inner = body.get("error")
        return inner if isinstance(inner, Mapping) else body
    return {}


def _describe(exc: anthropic.APIStatusError) -> tuple[str | None, str | None]:
    """Anthropic's ``error.type`` and ``error.message`` from the envelope."""
    error = _error_object(exc.body)
    code, message = error.get("type"), error.get("message")
    return (code if isinstance(code, str) else None,
            message if isinstance(message, str) else None)


def _classify(status: int | None, code: str | None, operation: str) -> type[ProviderError] | None:
    """Gone: a 404, or the SDK's own refusal to read results (see above). 529 overloaded is
    >= 500, so transient like any server error under the common mapping."""
    if status == 404 or (status is None and operation == RESULTS):
        return ResourceGoneError
    return None


_ERRORS: Final = StainlessErrors(PROVIDER, "anthropic", "AnthropicError", _describe,
                                 _classify)
translate_error = _ERRORS.translate_error
calling = _ERRORS.calling
