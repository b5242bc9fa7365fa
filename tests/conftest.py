"""Shared fixtures: a running provider emulator and clients pointed at it.

``emulator`` is one server for the whole session (fast timing: a batch completes in about a
second) so tests pay the start-up once; ``emu`` is the same server with faults and counters
reset around each test, which is what most tests want. State (files, batches) is kept across
tests: tests look at their own ids, never at totals. A test that needs its own settings or a
fake clock starts its own ``EmulatorServer``.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from llmbatch.emulator import EmulatorServer, load_profile

# --- hypothesis profiles (docs/testing.md) ------------------------------------------------------
# ``ci`` (under CI=true, or HYPOTHESIS_PROFILE=ci): the same cases on every run, no example
# database, no deadline (a loaded machine is not a failing test). ``dev`` (the default
# elsewhere): random cases, and fewer of them where a test takes its count by profile
# (``door_support.FUZZ_CASES``), so a developer's run on the shared machine stays short; CI
# runs them all.
settings.register_profile("ci", deadline=None, derandomize=True, database=None,
                          print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE")
                      or ("ci" if os.environ.get("CI", "").lower() == "true" else "dev"))
TERMINAL = ("completed", "failed", "expired", "cancelled")
TEST_API_KEY = "sk-emulator-test"


@pytest.fixture(scope="session")
def emulator() -> Iterator[EmulatorServer]:
    """The session's emulator: bundled ``fast`` profile, any non-empty API key accepted."""
    with EmulatorServer(load_profile("fast")) as server:
        yield server


@pytest.fixture
def emu(emulator: EmulatorServer) -> Iterator[EmulatorServer]:
    """The session emulator with its faults back to the profile and its stats zeroed."""
    emulator.reset(faults=True, stats=True)
    yield emulator
    emulator.reset(faults=True, stats=True)


@pytest.fixture
def openai_client(emu: EmulatorServer) -> Iterator[Any]:
    """An official ``openai.OpenAI`` client on the emulator (SDK retries left at default)."""
    import openai

    client = openai.OpenAI(base_url=emu.openai_base_url, api_key=TEST_API_KEY, timeout=30)
    yield client
    client.close()


def _chat_lines(
    n: int,
    *,
    model: str = "gpt-4o-mini",
    prefix: str = "req",
    max_tokens: int | None = 64,
    url: str = "/v1/chat/completions",
) -> list[dict[str, Any]]:
    lines = []
    for i in range(n):
        body: dict[str, Any] = {
            "model": model,
            "messages": [{"role": "user", "content": f"Question {i}: what is {i} + {i}?"}],
        }
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        lines.append({"custom_id": f"{prefix}-{i}", "method": "POST", "url": url, "body": body})
    return lines


def _to_jsonl(lines: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


@pytest.fixture
def chat_lines() -> Callable[..., list[dict[str, Any]]]:
    """``chat_lines(n, model=..., prefix=..., max_tokens=..., url=...)``: batch input lines."""
    return _chat_lines


@pytest.fixture
def to_jsonl() -> Callable[[list[dict[str, Any]]], bytes]:
    """``to_jsonl(lines)``: JSONL bytes, one object per line, each ending in a newline."""
    return _to_jsonl


@pytest.fixture
def submit_batch(openai_client: Any) -> Callable[..., Any]:
    """``submit_batch(lines, endpoint=..., metadata=...)``: upload through the SDK, create."""

    def submit(
        lines: list[dict[str, Any]],
        *,
        endpoint: str = "/v1/chat/completions",
        metadata: dict[str, str] | None = None,
    ) -> Any:
        uploaded = openai_client.files.create(file=("input.jsonl", _to_jsonl(lines)),
                                              purpose="batch")
        return openai_client.batches.create(input_file_id=uploaded.id, endpoint=endpoint,
                                            completion_window="24h", metadata=metadata)

    return submit


@pytest.fixture
def wait_for_batch(openai_client: Any) -> Callable[..., Any]:
    """``wait_for_batch(batch_id, until=TERMINAL, timeout=10)``: poll until a status is hit."""

    def wait(batch_id: str, until: tuple[str, ...] = TERMINAL, timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            batch = openai_client.batches.retrieve(batch_id)
            if batch.status in until:
                return batch
            if time.monotonic() > deadline:
                raise AssertionError(f"batch {batch_id} still {batch.status} after {timeout}s")
            time.sleep(0.05)

    return wait


# --- test tiers (docs/testing.md) ---------------------------------------------------------------

_TIER_OF_DIRECTORY = {"unit": "unit", "service": "service", "contract": "contract",
                      "plugin_provider": "contract", "integration": "integration"}
_EMULATOR_FIXTURES = frozenset({"emulator", "emu", "openai_client", "submit_batch",
                                "wait_for_batch"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test with its tier, from its directory: a test under ``tests/unit`` that
    runs the emulator over loopback HTTP (an emulator fixture, or a module that starts an
    ``EmulatorServer``) is ``contract``, not ``unit``. ``-m unit`` is then pure code."""
    root = Path(__file__).resolve().parent
    for item in items:
        path = Path(str(item.path)).resolve()
        try:
            top = path.relative_to(root).parts[0]
        except ValueError:
            continue
        tier = _TIER_OF_DIRECTORY.get(top)
        if tier == "unit" and (_EMULATOR_FIXTURES & set(getattr(item, "fixturenames", ()))
                               or "EmulatorServer" in _module_source(path)):
            tier = "contract"
        if tier is not None and item.get_closest_marker(tier) is None:
            item.add_marker(getattr(pytest.mark, tier))


@functools.cache
def _module_source(path: Path) -> str:
    return path.read_text(encoding="utf-8")
