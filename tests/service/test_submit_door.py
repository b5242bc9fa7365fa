"""``submit``, ``submit --dry-run`` and ``validate`` through the real entry point: every problem
of a file listed (capped, counted) as ``file:line: field '…': reason``, exit 2 and nothing
stored; exit 3 when the database cannot be reached; exit 0 once the job is committed even when
the broker cannot be reached."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from door_support import run_cli, sqlite_counts
from llmbatch.service_layer.intake import MAX_LISTED

HI = [{"role": "user", "content": "Hi"}]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Setup:
    def __init__(self, tmp_path: Path, *, database: str | None = None,
                 broker: str = "memory://", key: str | None = "sk-test") -> None:
        self.dir = tmp_path
        self.db = tmp_path / "llmbatch.db"
        key_line = f"api_key: {key}" if key else "api_key_env: LLMBATCH_TEST_NO_SUCH_KEY"
        self.config = tmp_path / "cfg.yaml"
        self.config.write_text(f"""
database: {{url: "{database or f'sqlite:///{self.db}'}"}}
broker: {{url: "{broker}"}}
providers:
  openai: {{{key_line}, allow_unlisted_models: true}}
  anthropic: {{api_key: k, allow_unlisted_models: true, options: {{api_version: "2023-06-01"}}}}
""", encoding="utf-8")

    def file(self, lines: list[Any], name: str = "in.jsonl") -> Path:
        path = self.dir / name
        path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n"
                                for x in lines), encoding="utf-8")
        return path

    def run(self, command: str, path: Path, *extra: str, provider: str = "openai",
            model: str = "gpt-4o-mini") -> Any:
        return run_cli(command, str(path), "--provider", provider, "--model", model,
                       "-c", str(self.config), *extra)


def good(i: int, **body: Any) -> dict[str, Any]:
    return {"custom_id": f"q-{i}", "body": {"messages": HI, **body}}


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return Setup(tmp_path)


def test_every_problem_is_listed_up_to_the_cap_and_nothing_is_stored(setup: Setup) -> None:
    bad = [good(i, max_tokens=0) for i in range(MAX_LISTED + 5)]
    path = setup.file([good(100), *bad, "not json", good(100)])

    result = setup.run("submit", path)

    assert result.code == 2 and "Traceback" not in result.text
    lines = result.err.splitlines()
    total = MAX_LISTED + 5 + 2
    assert lines[0] == f"error: {path}: {total} problems"
    assert lines[1] == f"{path}:2: field 'body.max_tokens': must be from 1 to 1,000,000, got 0"
    assert len([x for x in lines if x.startswith(f"{path}:")]) == MAX_LISTED
    assert lines[-1] == f"... and {total - MAX_LISTED} more problem(s) not listed"
    assert sqlite_counts(setup.db) == {"jobs": 0, "items": 0, "events": 0}


def test_validate_and_dry_run_list_the_same_problems_and_store_nothing(setup: Setup) -> None:
    path = setup.file([good(1), {"custom_id": "[/red]", "body": {"messages": [
        {"role": ["user"], "content": "x"}]}}, good(1)])

    for command, extra in (("validate", ()), ("submit", ("--dry-run",))):
        result = setup.run(command, path, *extra)
        assert result.code == 2, result
        assert result.err.splitlines() == [
            f"{path}: 2 problems",
            f"{path}:2: field 'body.messages[0].role': must be one of \"developer\", "
            "\"system\", \"user\", \"assistant\", \"tool\", \"function\"",
            f"{path}:3: field 'custom_id': duplicate custom_id 'q-1'"]
    clean = setup.file([good(1), good(2)], name="clean.jsonl")
    for command, extra in (("validate", ()), ("submit", ("--dry-run",))):
        result = setup.run(command, clean, *extra)
        assert (result.code, result.out.strip()) == (
            0, f"ok: 2 request(s) in {clean} for openai/gpt-4o-mini")
    assert sqlite_counts(setup.db)["jobs"] == 0


def test_an_openai_batch_file_runs_on_another_provider_with_one_warning(setup: Setup) -> None:
    path = setup.file([{"custom_id": f"r-{i}", "method": "POST", "url": "/v1/chat/completions",
                        "body": {"model": "gpt-4o-mini", "messages": HI, "temperature": 0.5}}
                       for i in range(3)])

    result = setup.run("submit", path, provider="anthropic", model="claude-haiku-4-5")

    assert result.code == 0, result
    warnings = [x for x in result.err.splitlines() if x.startswith("warning:")]
    assert warnings == [f"warning: {path}:1: 3 line(s) name another model in body.model "
                        "('gpt-4o-mini'); they run on the job's model 'claude-haiku-4-5' "
                        "(--strict-model refuses them instead)"]
    assert sqlite_counts(setup.db)["items"] == 3

    strict = setup.run("submit", path, "--strict-model", provider="anthropic",
                       model="claude-haiku-4-5")
    assert strict.code == 2 and "field 'body.model'" in strict.err
    assert sqlite_counts(setup.db)["items"] == 3


def test_a_responses_file_runs_on_another_provider_or_is_refused_naming_the_field(
        setup: Setup) -> None:
    def line(i: int, **body: Any) -> dict[str, Any]:
        return {"custom_id": f"r-{i}", "method": "POST", "url": "/v1/responses",
                "body": {"model": "gpt-5.6-sol", "instructions": "One word.",
                         "input": "Capital of France?", "max_output_tokens": 64, **body}}
    ok = setup.file([line(i) for i in range(2)])
    translated = setup.run("submit", ok, "--endpoint", "responses", provider="anthropic",
                           model="claude-haiku-4-5")
    assert translated.code == 0, translated
    assert sqlite_counts(setup.db)["items"] == 2

    bad = setup.file([line(0), line(1, previous_response_id="resp_1"),
                      line(2, tools=[{"type": "web_search"}])], name="bad.jsonl")
    refused = setup.run("validate", bad, "--endpoint", "responses", provider="anthropic",
                        model="claude-haiku-4-5")
    assert refused.code == 2
    assert f"{bad}:2: field 'body.previous_response_id': " in refused.err
    assert f"{bad}:3: field 'body.tools[0]': the built-in tool type 'web_search'" in refused.err
    assert setup.run("validate", bad, "--endpoint", "responses").code == 0  # OpenAI runs all

    moderations = setup.file([{"custom_id": "m", "body": {"input": "hi"}}], name="m.jsonl")
    elsewhere = setup.run("validate", moderations, "--endpoint", "moderations",
                          provider="anthropic", model="claude-haiku-4-5")
    assert elsewhere.code == 2 and "field 'endpoint'" in elsewhere.err
    assert "has no moderations batches" in elsewhere.err
    assert setup.run("validate", moderations, "--endpoint", "moderations",
                     model="omni-moderation-latest").code == 0


def test_a_bad_native_line_is_refused_at_submit_not_in_the_provider_batch(setup: Setup) -> None:
    path = setup.file([{"custom_id": "a", "native": {"max_tokens": 5, "messages": HI}},
                       {"custom_id": "b", "native": {"messages": HI}}])

    result = setup.run("submit", path, provider="anthropic", model="claude-haiku-4-5")

    assert result.code == 2
    assert f"{path}:2: field 'native.max_tokens': is required" in result.err
    assert sqlite_counts(setup.db)["jobs"] == 0


def test_a_missing_api_key_is_refused_before_anything_is_stored(tmp_path: Path) -> None:
    setup = Setup(tmp_path, key=None)
    result = setup.run("submit", setup.file([good(1)]))
    assert result.code == 2
    assert result.err.strip() == (
        "error: no OpenAI API key: set the environment variable LLMBATCH_TEST_NO_SUCH_KEY "
        "(named by providers.openai.api_key_env)")
    assert sqlite_counts(setup.db)["jobs"] == 0


def test_an_unreachable_database_is_one_line_and_exit_3(tmp_path: Path) -> None:
    setup = Setup(tmp_path, database=f"postgresql+psycopg://u@127.0.0.1:{closed_port()}/db")
    result = setup.run("submit", setup.file([good(1)]))
    assert result.code == 3, result
    assert result.err.count("\n") == 1 and "Traceback" not in result.text
    assert result.err.startswith("error: the database at postgresql+psycopg://u@127.0.0.1:")
    assert "cannot be reached" in result.err


def test_an_unreachable_broker_after_the_commit_is_exit_0_and_says_the_job_is_stored(
        tmp_path: Path) -> None:
    setup = Setup(tmp_path, broker=f"redis://127.0.0.1:{closed_port()}/0")

    result = setup.run("submit", setup.file([good(1), good(2)]))

    assert result.code == 0, result
    job_id = result.out.split()[2]
    assert f"job {job_id} is stored, but the broker could not be reached" in result.err
    assert "scheduler tick picks the job up" in result.err
    assert sqlite_counts(setup.db) == {"jobs": 1, "items": 2, "events": 1}


def test_an_invalid_provider_option_is_refused_by_submit_before_storing(tmp_path: Path) -> None:
    setup = Setup(tmp_path)
    setup.config.write_text(setup.config.read_text(encoding="utf-8").replace(
        "openai: {api_key: sk-test,", "openai: {api_key: sk-test, options: "
        "{completion_window: 48h},"), encoding="utf-8")

    result = setup.run("submit", setup.file([good(1)]))

    assert result.code == 2
    assert "providers.openai.options.completion_window: Input should be '24h'" in result.err
    assert sqlite_counts(setup.db)["jobs"] == 0
