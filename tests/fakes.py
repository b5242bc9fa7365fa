"""Moved to ``llmbatch.testing.fake_provider`` (the test kit ships with the package); this
shim keeps ``from fakes import ...`` working for existing tests and other branches."""

from llmbatch.testing.fake_provider import (
    FakeBatch,
    FakeProvider,
    ItemOutcome,
    WorkerCrashed,
)

__all__ = ["FakeBatch", "FakeProvider", "ItemOutcome", "WorkerCrashed"]
