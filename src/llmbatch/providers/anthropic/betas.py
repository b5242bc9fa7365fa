"""``anthropic-beta`` in Message Batches: which betas are known to work in a batch, which are
known to be refused there, and what the one batch-only beta changes (PROVIDER_APIS.md B.4,
B.8; docs/providers/anthropic.md lists them with their sources).

One header on the create call applies to every request of the batch (a request item has no
headers of its own), so betas are a property of the job: from config
(``providers.anthropic.options.betas``) and per job (``submit --beta``, the API's ``betas``).
A beta outside ``BATCH_BETAS`` is refused when the job is created (the guide's "most beta
features" names no list, and how an unsupported beta fails inside a batch is unverified:
possibly every line ``errored`` hours later); ``allow_unlisted_betas`` lets one through.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

__all__ = [
    "BATCH_BETAS",
    "EXTENDED_OUTPUT_BETA",
    "EXTENDED_OUTPUT_MODELS",
    "EXTENDED_OUTPUT_TOKENS",
    "REFUSED_IN_BATCHES",
    "STANDARD_OUTPUT_CAP",
    "beta_problem",
    "max_output_tokens",
]

EXTENDED_OUTPUT_BETA: Final = "output-300k-2026-03-24"
EXTENDED_OUTPUT_TOKENS: Final = 300_000
# The highest standard max_tokens of any Claude model (64k-128k by model, B.4): above it a
# request needs the extended-output beta on a model that has it, whatever the model.
STANDARD_OUTPUT_CAP: Final = 128_000
# Models the extended-output beta covers: Opus 4.6, 4.7, 4.8 and Sonnet 4.6 (batch guide),
# Opus 5 and Sonnet 5 (models overview); ids, aliases and dated snapshots alike.
EXTENDED_OUTPUT_MODELS: Final = re.compile(
    r"^claude-(opus-4[-.][678]|sonnet-4[-.]6|opus-5|sonnet-5)(?!\d)")

# Betas documented to work in a batch (B.8), with why.
BATCH_BETAS: Final = {
    EXTENDED_OUTPUT_BETA: "batch-only extended output (max_tokens up to 300,000)",
    "message-batches-2024-09-24": "batches themselves (GA now; harmless)",
    "prompt-caching-2024-07-31": "prompt caching works in batches",
    "extended-cache-ttl-2025-04-11": "prompt caching works in batches (1-hour TTL)",
    "code-execution-2025-05-22": "server tools work in batch requests",
    "mcp-client-2025-04-04": "MCP connectors work in batch requests",
    "mcp-client-2025-11-20": "MCP connectors work in batch requests",
    "mcp-client-2026-09-15": "MCP connectors work in batch requests",
    "advisor-tool-2026-03-01": "server tools work in batch requests",
    "user-profiles-2026-03-24": "needed for the batch-level user profile header",
    "user-profiles-2026-08-18": "needed for the batch-level user profile header",
    "user-profiles-2026-09-04": "needed for the batch-level user profile header",
}
# Betas whose features the batch guide says are rejected in a batch.
REFUSED_IN_BATCHES: Final = {
    "fast-mode-2026-02-01": "fast mode (speed) is rejected in batches",
    "message-threads-2026-08-12": "threads (store, previous_thread_event_id) are rejected "
                                  "in batches",
}


def beta_problem(beta: str, *, allow_unlisted: bool) -> str | None:
    """Why ``beta`` cannot go with a batch, or None when it can."""
    if beta in REFUSED_IN_BATCHES:
        return f"beta {beta!r} cannot be used: {REFUSED_IN_BATCHES[beta]}"
    if beta in BATCH_BETAS or allow_unlisted:
        return None
    return (f"beta {beta!r} is not known to work in Anthropic batches (known: "
            f"{', '.join(sorted(BATCH_BETAS))}; set providers.anthropic.options."
            "allow_unlisted_betas to send it anyway)")


def max_output_tokens(model: str, betas: Iterable[str]) -> int:
    """The most ``max_tokens`` any request of a batch with ``betas`` may ask of ``model``
    for certain: 300,000 with the extended-output beta on a model it covers, else the
    highest standard cap (a model's own may be lower; that is not known here)."""
    if EXTENDED_OUTPUT_BETA in betas and EXTENDED_OUTPUT_MODELS.match(model):
        return EXTENDED_OUTPUT_TOKENS
    return STANDARD_OUTPUT_CAP
