"""Anthropic Message Batches adapter (``llmbatch[anthropic]``).

- ``provider``: ``AnthropicProvider``, the calls (create, retrieve, list, cancel, results);
- ``translate``: the neutral (OpenAI chat) body as Anthropic Messages params;
- ``wire``: batch items, batch objects and result lines as pure functions;
- ``errors``: the one translation of SDK exceptions into ``llmbatch.errors``;
- ``journal``: what the adapter remembers of its submissions (adoption without tags).

The ``anthropic`` SDK is imported in this package only, and only when a call needs it.
"""

from llmbatch.providers.anthropic.errors import parse_retry_after, translate_error
from llmbatch.providers.anthropic.provider import AnthropicProvider

__all__ = ["AnthropicProvider", "parse_retry_after", "translate_error"]
