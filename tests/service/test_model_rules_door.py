"""Model rules and per-job betas at the door: ``submit``, ``validate`` and ``create_job`` refuse
a job the provider would refuse line by line (exit 2, one line naming file, line and field,
nothing stored), and a job's betas are stored with it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from door_support import run_cli, sqlite_counts
from llmbatch.bootstrap import build_runtime
from llmbatch.cli import runtime as cli_runtime
from llmbatch.config import load_config
from llmbatch.errors import InputError
from llmbatch.service_layer.jobs import create_job

HI = [{"role": "user", "content": "Hi"}]


class Setup:
    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path
        self.db = tmp_path / "llmbatch.db"
        self.config = tmp_path / "cfg.yaml"
        self.config.write_text(f"""
database: {{url: "sqlite:///{self.db}"}}
broker: {{url: "memory://"}}
providers:
  openai:
    api_key: sk-test
    allow_unlisted_models: true
    models: [{{name: gpt-4o-mini, context_window: 1000}}]
  anthropic: {{api_key: k, allow_unlisted_models: true, options: {{api_version: "2023-06-01"}}}}
""", encoding="utf-8")

    def file(self, bodies: list[dict[str, Any]]) -> Path:
        path = self.dir / "prompts.jsonl"
        path.write_text("".join(json.dumps({"custom_id": f"q-{i}", "body": {
            "messages": HI, **body}}) + "\n" for i, body in enumerate(bodies)),
            encoding="utf-8")
        return path

    def run(self, command: str, path: Path, *extra: str, provider: str = "openai",
            model: str = "o3") -> Any:
        return run_cli(command, str(path), "--provider", provider, "--model", model,
                       "-c", str(self.config), *extra)


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return Setup(tmp_path)


@pytest.mark.parametrize("command", ["submit", "validate"])
def test_a_refused_sampling_parameter_is_one_line_naming_file_line_and_field(
        setup: Setup, command: str) -> None:
    path = setup.file([{}, {"temperature": 1}, {"temperature": 0.2}])
    result = setup.run(command, path)
    assert result.code == 2 and "Traceback" not in result.text
    # submit says "error: " first, validate prints the verdict as it is.
    assert [line.removeprefix("error: ") for line in result.err.splitlines()] == [
        f"{path}:3: field 'body.temperature': model o3 does not accept temperature (only 1)"]
    assert not setup.db.exists() or sqlite_counts(setup.db)["jobs"] == 0


def test_dry_run_refuses_alike_and_a_model_without_rules_is_accepted(setup: Setup) -> None:
    path = setup.file([{"temperature": 0.2}])
    assert setup.run("submit", path, "--dry-run").code == 2
    assert setup.run("submit", path, "--dry-run", model="gpt-4.1").code == 0


def test_a_line_over_the_context_window_is_refused(setup: Setup) -> None:
    # gpt-4o-mini's window is lowered to 1,000 tokens in config; 4,000 characters hold at
    # least 400 tokens, so 700 output tokens more cannot fit; 500 can.
    path = setup.file([{"max_completion_tokens": 500,
                        "messages": [{"role": "user", "content": "x" * 4000}]},
                       {"max_completion_tokens": 700,
                        "messages": [{"role": "user", "content": "x" * 4000}]}])
    result = setup.run("validate", path, model="gpt-4o-mini")
    assert result.code == 2
    assert result.err.splitlines() == [
        f"{path}:2: field 'body': does not fit the 1,000-token context window of "
        "gpt-4o-mini: the prompt holds at least 402 tokens plus 700 output tokens asked"]


def test_an_unknown_beta_is_refused_and_a_known_one_allows_300k_output(setup: Setup) -> None:
    path = setup.file([{"max_tokens": 200_000}])
    plain = setup.run("validate", path, provider="anthropic", model="claude-opus-4-8")
    assert plain.code == 2 and "writes at most 128,000 output tokens" in plain.err
    unknown = setup.run("submit", path, "--beta", "no-such-beta", provider="anthropic",
                        model="claude-opus-4-8")
    assert unknown.code == 2 and len(unknown.err.splitlines()) == 1
    assert unknown.err.startswith("error: field 'betas': beta 'no-such-beta' is not known "
                                  "to work in Anthropic batches")
    known = setup.run("validate", path, "--beta", "output-300k-2026-03-24",
                      provider="anthropic", model="claude-opus-4-8")
    assert known.code == 0, known.text


def test_create_job_refuses_at_service_level_and_stores_the_jobs_betas(setup: Setup) -> None:
    rt = build_runtime(load_config(setup.config))
    try:
        cli_runtime.ensure_schema(rt)
        with pytest.raises(InputError) as err:
            create_job(rt, setup.file([{"top_p": 0.3}]), provider="openai", model="o3")
        assert "body.top_p" in str(err.value) and ":1:" in str(err.value)
        job_id, _ = create_job(rt, setup.file([{"max_tokens": 200_000}]),
                               provider="anthropic", model="claude-opus-4-8",
                               job_options={"betas": ["output-300k-2026-03-24"]})
        with rt.uow() as uow:
            snapshot = uow.repo.config_snapshot(job_id)
        assert snapshot["job_options"] == {"betas": ["output-300k-2026-03-24"]}
    finally:
        rt.close()
