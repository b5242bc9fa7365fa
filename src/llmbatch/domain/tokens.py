"""A cheap estimate of the prompt tokens one request puts in a provider's queue.

Why an estimate: enqueued-token quotas (per model, at the providers that have them) are checked
by the provider against *its* tokenizer, which we neither ship nor want in the hot path of job
creation. What the planner and the submission gate need is a number that is cheap, stable
(stored once per item at create time) and errs on the high side for ordinary text.

The heuristic: every character of request *text* (message contents, system prompts, tool
definitions, embedding inputs; any string value except known non-text keys such as ``model``,
``role`` and base64/URL payloads) counts, four characters make a token (rounded up), and each
message adds a few tokens of framing. English prose runs at roughly 4 characters per token on
the common tokenizers, so this lands within ~20% for prose; code and non-Latin
scripts run denser, which is why quotas should leave some headroom.

Output tokens are *not* counted: the enqueued-token quotas count input (prompt) tokens only
(PROVIDER_APIS.md: "no output-token limit"). Images and files are not counted (their share
of a quota is small and provider-specific).
"""

from __future__ import annotations

from typing import Any

from llmbatch.domain.models import RequestLine

__all__ = ["CHARS_PER_TOKEN", "MESSAGE_OVERHEAD_TOKENS", "estimate_tokens", "tokens_for"]

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4  # role and separators of one chat message
REQUEST_OVERHEAD_TOKENS = 3  # priming of the reply

# Keys whose string values are not prompt text.
_NOT_TEXT = frozenset({
    "model", "role", "type", "custom_id", "key", "url", "image_url", "file_id", "file_uri",
    "fileUri", "mime_type", "mimeType", "data", "detail", "format", "encoding_format",
    "response_format", "reasoning_effort", "service_tier", "tool_choice", "stop", "id",
    "tool_call_id", "user", "metadata",
})
_MESSAGE_LISTS = ("messages", "contents", "requests")


def _text_chars(value: Any) -> int:
    """Characters of prompt text in ``value``: every string, except data URLs and what sits
    (at any depth) under a key of ``_NOT_TEXT``. One loop over an explicit stack: it runs for
    every line of a job at submit, where a recursive walk was a tenth of the time."""
    chars = 0
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, child in node.items():
                if key in _NOT_TEXT:
                    continue
                if isinstance(child, str):
                    if not child.startswith("data:"):
                        chars += len(child)
                elif isinstance(child, (dict, list)):
                    stack.append(child)
        elif isinstance(node, list):
            for child in node:
                if isinstance(child, str):
                    if not child.startswith("data:"):
                        chars += len(child)
                elif isinstance(child, (dict, list)):
                    stack.append(child)
        elif isinstance(node, str) and not node.startswith("data:"):
            chars += len(node)
    return chars


def _message_count(body: dict[str, Any]) -> int:
    count = 0
    for name in _MESSAGE_LISTS:
        value = body.get(name)
        if isinstance(value, list):
            count += len(value)
    return count + (1 if body.get("system") else 0)


def estimate_tokens(request: RequestLine) -> int:
    """Estimated prompt tokens of ``request`` (at least 1): see the module docstring."""
    body = request.native if request.native is not None else (request.body or {})
    return tokens_for(_text_chars(body), _message_count(body))


def tokens_for(chars: int, messages: int) -> int:
    """The estimate for ``chars`` characters of prompt text in ``messages`` messages (one
    formula, shared with the typed reader of plain chat lines, ``domain.plain_chat``)."""
    tokens = -(-chars // CHARS_PER_TOKEN)  # ceil
    tokens += MESSAGE_OVERHEAD_TOKENS * messages + REQUEST_OVERHEAD_TOKENS
    return max(tokens, 1)
