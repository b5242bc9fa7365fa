"""OpenAI Batch API adapter (``llmbatch[openai]``).

- ``provider``: ``OpenAIProvider``, the calls (upload, create, list, retrieve, download, cancel);
- ``wire``: the batch line and result formats as pure functions;
- ``errors``: the one translation of SDK exceptions into ``llmbatch.errors``.

The ``openai`` SDK is imported in this package only, and only when a call needs it.
"""

from llmbatch.providers.openai.errors import parse_retry_after, translate_error
from llmbatch.providers.openai.provider import OpenAIProvider

__all__ = ["OpenAIProvider", "parse_retry_after", "translate_error"]
