"""The llmbatch test kit: what a provider package (or an application) needs to test against
llmbatch, shipped with the package.

- ``llmbatch.testing.fake_provider``: ``FakeProvider``, an in-memory provider for service
  tests (decide per item and attempt what the provider answers, fail calls, crash a worker).
- ``llmbatch.testing.contract``: the contract scenarios every provider adapter must pass
  (``scenarios``), the harness they run on (``harness.ProviderHarness``), and the built-in
  providers' harnesses on the emulator (``builtin``, needs ``llmbatch[emulator]``).
- ``llmbatch.testing.control``: ``EmulatorControl``, a client of a running emulator's control
  API (faults, stats, clock), over HTTP.

The contract scenarios are pytest tests: install ``llmbatch[testing]`` (pytest) to run them.
``docs/testing.md`` shows how a provider package runs them against its own server.
"""

from llmbatch.testing.control import EmulatorControl
from llmbatch.testing.fake_provider import FakeBatch, FakeProvider, ItemOutcome, WorkerCrashed

__all__ = ["EmulatorControl", "FakeBatch", "FakeProvider", "ItemOutcome", "WorkerCrashed"]
