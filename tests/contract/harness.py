"""Moved to ``llmbatch.testing.contract`` (``harness``: the harness; ``builtin``: the three
built-in providers on the emulator); this shim keeps the old imports working."""

from llmbatch.testing.contract.builtin import (
    BATCH_FAILURE_PROVIDERS,
    BUILDERS,
    EMBEDDINGS_PROVIDERS,
)
from llmbatch.testing.contract.harness import (
    TEST_API_KEY,
    CountingTransport,
    ProviderHarness,
    TagHeader,
    running_harness,
)

__all__ = ["BATCH_FAILURE_PROVIDERS", "BUILDERS", "EMBEDDINGS_PROVIDERS", "TEST_API_KEY",
           "CountingTransport", "ProviderHarness", "TagHeader", "running_harness"]
