"""What a short-lived runtime or client holds is released by its ``close``, not left to the
garbage collector: a socket it finalizes still open warns (``ResourceWarning``, an error in
this suite) in whatever test happens to run then, far from the code that leaked it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

from llmbatch.bootstrap import build_runtime
from llmbatch.client.aio import AsyncJob
from llmbatch.config import AppConfig
from llmbatch.testing.fake_provider import FakeProvider

SDK_PROVIDERS = ("openai", "anthropic")  # adapters whose SDK client says whether it is closed


def config() -> AppConfig:
    return AppConfig.model_validate({
        "database": {"url": "sqlite://"},
        "providers": {name: {"api_key": "sk-test", "base_url": "http://127.0.0.1:9"}
                      for name in SDK_PROVIDERS}})


def test_closing_the_runtime_closes_the_sdk_clients_its_registry_built() -> None:
    rt = build_runtime(config())
    adapters = {name: rt.registry.get(name) for name in SDK_PROVIDERS}
    clients = {name: adapter.client for name, adapter in adapters.items()}  # type: ignore[attr-defined]
    assert not any(client.is_closed() for client in clients.values())

    rt.close()

    assert all(client.is_closed() for client in clients.values())
    # The runtime stays usable: the next use builds a new adapter with an open client.
    again = rt.registry.get("openai")
    assert again is not adapters["openai"]
    assert not again.client.is_closed()  # type: ignore[attr-defined]
    rt.close()


class ClosingFake(FakeProvider):
    def __init__(self) -> None:
        super().__init__()
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


def test_an_adapter_passed_to_register_is_left_to_whoever_passed_it() -> None:
    rt = build_runtime(config())
    injected = ClosingFake()
    rt.registry.register("fake", injected)
    built = rt.registry.get("openai")
    client = built.client  # type: ignore[attr-defined]

    rt.close()

    assert injected.closed == 0 and client.is_closed()
    assert rt.registry.get("fake") is injected


def test_the_registry_closes_every_adapter_even_when_one_fails_and_raises_after() -> None:
    rt = build_runtime(config())
    first = rt.registry.get("anthropic")
    client = first.client  # type: ignore[attr-defined]
    broken = rt.registry.get("openai")

    def refuse() -> None:
        raise RuntimeError("close failed")

    broken.close = refuse  # type: ignore[method-assign]
    try:
        rt.registry.close()
    except RuntimeError as exc:
        assert str(exc) == "close failed"
    else:
        raise AssertionError("the failure was swallowed")
    assert client.is_closed()
    rt.engine.dispose()


def async_job_over(closed: list[str], n: int, made: list[Iterator[int]]) -> AsyncJob:
    """An ``AsyncJob`` over a job whose results are a generator that notes being closed. The
    generator is also kept in ``made`` (as a backend may keep what it hands out), so only an
    explicit ``close`` ends it, not the async iterator letting go of it."""

    def generate() -> Iterator[int]:
        try:
            yield from range(n)
        finally:
            closed.append("closed")

    def results() -> Iterator[int]:
        made.append(generate())
        return made[-1]

    job: Any = SimpleNamespace(id="job-1", created=True, results=results)
    return AsyncJob(job)


def test_leaving_async_results_early_closes_the_results_underneath() -> None:
    closed: list[str] = []
    made: list[Iterator[int]] = []

    async def read_three() -> tuple[list[int], list[str]]:
        results = async_job_over(closed, 5000, made).results()
        taken = []
        async for item in results:
            taken.append(item)
            if len(taken) == 3:
                break
        await results.aclose()  # type: ignore[attr-defined]
        return taken, list(closed)  # while ``results`` is still referenced

    assert asyncio.run(read_three()) == ([0, 1, 2], ["closed"])


def test_abandoned_async_results_are_closed_when_the_loop_finalizes_them() -> None:
    closed: list[str] = []
    made: list[Iterator[int]] = []
    kept: list[Any] = []  # still referenced: only the loop's shutdown can close it

    async def read_one() -> int:
        results = async_job_over(closed, 5000, made).results()
        kept.append(results)
        return await results.__anext__()

    assert asyncio.run(read_one()) == 0
    assert closed == ["closed"]


def test_async_results_read_to_the_end_close_the_results_underneath_once() -> None:
    closed: list[str] = []
    made: list[Iterator[int]] = []

    async def read_all() -> list[int]:
        return [item async for item in async_job_over(closed, 2500, made).results()]

    assert asyncio.run(read_all()) == list(range(2500))
    assert closed == ["closed"]


def test_a_command_closes_what_it_opened_last_first_and_nothing_outside_a_command() -> None:
    from llmbatch.cli.runtime import close_when_done, closing_at_the_end

    closed: list[str] = []
    close_when_done(lambda: closed.append("outside"))  # a library caller owns its own

    def failing() -> None:
        closed.append("failing")
        raise RuntimeError("close failed")

    with closing_at_the_end():
        close_when_done(lambda: closed.append("first"))
        close_when_done(failing)
        close_when_done(lambda: closed.append("last"))
    assert closed == ["last", "failing", "first"]
