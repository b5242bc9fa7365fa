"""``AnthropicProvider`` built from config against a private emulator: auth, API version,
limits, and adoption after a create whose outcome the adapter never saw."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import update

from llmbatch.config import DatabaseConfig, ProviderConfig
from llmbatch.db.engine import make_engine
from llmbatch.db.journal import DatabaseJournal
from llmbatch.db.migrate import upgrade
from llmbatch.db.tables import submit_journal
from llmbatch.domain.journal import SubmitJournal
from llmbatch.domain.models import Endpoint, RequestLine
from llmbatch.emulator import EmulatorServer, load_profile
from llmbatch.errors import InputError, PermanentProviderError, TransientProviderError
from llmbatch.providers.anthropic import AnthropicProvider
from llmbatch.providers.registry import available_providers


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer(load_profile("fast")) as emulator:
        yield emulator


def make(server: EmulatorServer, journal: SubmitJournal | None = None,
         api_version: str | None = None, **config: object) -> AnthropicProvider:
    options = {"api_version": api_version} if api_version else {}
    return AnthropicProvider(ProviderConfig(**{
        "base_url": f"{server.url}/anthropic", "api_key": SecretStr("sk-ant-unit"),
        "timeout_s": 10.0, "options": options, **config}), journal=journal)


def requests(n: int, prefix: str = "u") -> list[RequestLine]:
    return [RequestLine(i, f"{prefix}-{i}", {"messages": [{"role": "user", "content": f"{i}"}]})
            for i in range(n)]


def submit(adapter: AnthropicProvider, reqs: list[RequestLine], tag: str) -> str:
    lines = (adapter.encode(r, endpoint=Endpoint.CHAT, model="claude-x").data for r in reqs)
    return adapter.submit(lines, tag=tag, endpoint=Endpoint.CHAT,
                          model="claude-x").provider_batch_id


def test_the_entry_point_is_registered() -> None:
    assert available_providers()["anthropic"] == \
        "llmbatch.providers.anthropic:AnthropicProvider"


@pytest.mark.parametrize("version", [None, "2023-06-01"])
def test_a_config_built_client_runs_a_batch(server: EmulatorServer, version: str | None) -> None:
    adapter = make(server, api_version=version)
    try:
        batch_id = submit(adapter, requests(3), "t-config")
        server.advance_clock(5)
        progress = adapter.poll(batch_id)
        results = list(adapter.iter_results(batch_id, progress))
        assert sorted(r.provider_key for r in results) == ["u-0", "u-1", "u-2"]
        assert sorted(r.line or 0 for r in results) == [1, 2, 3]
        assert adapter.api_version == (version or "2026-10-21")
    finally:
        adapter.close()


def test_an_unknown_api_version_is_refused_by_the_emulator(server: EmulatorServer) -> None:
    adapter = make(server, api_version="2020-01-01")
    try:
        with pytest.raises(PermanentProviderError) as err:
            adapter.poll("msgbatch_x")
        assert err.value.status_code == 400 and "anthropic-version" in str(err.value)
    finally:
        adapter.close()


def test_embeddings_and_oversized_requests_are_input_errors(server: EmulatorServer) -> None:
    adapter = make(server, limits={"max_bytes": 200})
    big = RequestLine(0, "b", {"messages": [{"role": "user", "content": "x" * 300}]})
    with pytest.raises(InputError):
        adapter.encode(big, endpoint=Endpoint.CHAT, model="m")
    with pytest.raises(InputError):
        adapter.encode(requests(1)[0], endpoint=Endpoint.EMBEDDINGS, model="m")


def test_an_unseen_create_is_adopted_only_once_it_is_proven() -> None:
    # A fresh emulator: its clock must agree with ours, as Anthropic's does (the adoption
    # window is the create call's, give or take ADOPT_SKEW_S).
    with EmulatorServer(load_profile("fast")) as server:
        _adopt_after_timeout(server)


def _adopt_after_timeout(server: EmulatorServer) -> None:
    adapter = make(server, timeout_s=0.3)
    server.set_faults([{"kind": "delay", "provider": "anthropic", "operation": "batches.create",
                        "delay_s": 0.8, "times": 1}], mode="append")
    try:
        with pytest.raises(TransientProviderError):
            submit(adapter, requests(4, "adopt"), "t-adopt")
        # The emulator created the batch after the client gave up; it is still running.
        time.sleep(1.0)
        with pytest.raises(TransientProviderError) as pending:  # unproven: "not yet", so
            adapter.find_by_tag("t-adopt")  # the submission neither guesses nor sends again
        assert pending.value.code == "adoption_pending"
        server.advance_clock(10)
        found = adapter.find_by_tag("t-adopt")
        assert found is not None
        again = adapter.find_by_tag("t-adopt")  # now journalled: no second scan
        assert again is not None and again.provider_batch_id == found.provider_batch_id
        assert adapter.find_by_tag("t-other") is None
    finally:
        adapter.close()
        server.clear_faults()


def test_a_worker_that_died_inside_create_is_covered_by_the_durable_journal(
        tmp_path: Path) -> None:
    engine = make_engine(DatabaseConfig(url=f"sqlite:///{tmp_path / 'journal.db'}"))
    upgrade(engine)
    with EmulatorServer(load_profile("fast")) as server:
        first = make(server, journal=DatabaseJournal(engine))
        created = submit(first, requests(3, "dead"), "t-dead")
        first.close()
        # As if the worker died between the provider's answer and recording it: the journal
        # holds a begun, never finished create.
        with engine.begin() as conn:
            conn.execute(update(submit_journal).values(batch_id=None))
        second = make(server, journal=DatabaseJournal(engine))  # another process
        try:
            with pytest.raises(TransientProviderError):
                second.find_by_tag("t-dead")  # the candidate still runs: wait, do not resend
            server.advance_clock(10)
            found = second.find_by_tag("t-dead")
            assert found is not None and found.provider_batch_id == created
        finally:
            second.close()


def test_a_refused_create_leaves_nothing_to_adopt(server: EmulatorServer) -> None:
    adapter = make(server)
    server.set_faults([{"kind": "http", "provider": "anthropic", "operation": "batches.create",
                        "status": 400, "times": 1}], mode="append")
    try:
        with pytest.raises(PermanentProviderError):
            submit(adapter, requests(2, "refused"), "t-refused")
        assert adapter.find_by_tag("t-refused") is None
        assert adapter.journal.get("t-refused") is None
    finally:
        adapter.close()
        server.clear_faults()
