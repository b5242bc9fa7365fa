"""Configuration: defaults, strict validation with paths, environment overrides, and the
``llmbatch config validate`` command."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from llmbatch.cli.main import app
from llmbatch.config import AppConfig, ModelConfig, ProviderConfig, load_config
from llmbatch.errors import ConfigError

BAD_CONFIG = """\
providers:
  openai:
    api_key_env: OPENAI_API_KEY
    models:
      - name: gpt-4o-mini
      - name: gpt-4o
      - name: gpt-4.1
        max_requests: 0
    colour: blue
polling:
  strategy: sometimes
  min_s: 5
surprise: true
"""
BAD_PROBLEMS = [
    "providers.openai.models[2].max_requests: Input should be greater than 0",
    "providers.openai.colour: unknown key",
    "polling.strategy: Input should be 'adaptive' or 'fixed'",
    "surprise: unknown key",
]


@pytest.fixture(autouse=True)
def _no_ambient_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts in an empty directory with no config-related environment."""
    monkeypatch.chdir(tmp_path)
    for var in ("LLMBATCH_CONFIG", "LLMBATCH_DATABASE_URL", "LLMBATCH_BROKER_URL"):
        monkeypatch.delenv(var, raising=False)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(text: str, tmp_path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path / "c.yaml", text), env={})
    return caught.value.problems


def test_without_a_file_the_defaults_load() -> None:
    config = load_config(env={})

    assert config == AppConfig()
    assert config.database.url == "sqlite:///.llmbatch/llmbatch.db"
    assert config.broker.url.startswith("sqla+sqlite:///")
    assert (config.polling.strategy, config.retry.max_attempts) == ("adaptive", 5)
    assert config.providers == {}


@pytest.mark.parametrize("text", ["", "# only a comment\n", "{}\n"])
def test_an_empty_file_means_the_defaults(tmp_path: Path, text: str) -> None:
    assert load_config(write(tmp_path / "c.yaml", text), env={}) == AppConfig()


def test_the_file_comes_from_llmbatch_config_then_the_working_directory(tmp_path: Path) -> None:
    named = write(tmp_path / "named.yaml", "worker: {lease_s: 11}\n")
    write(tmp_path / "llm_config.yaml", "worker: {lease_s: 22}\n")

    assert load_config(env={"LLMBATCH_CONFIG": str(named)}).worker.lease_s == 11
    assert load_config(env={}).worker.lease_s == 22
    assert load_config(named, env={}).worker.lease_s == 11


def test_a_full_provider_section_loads(tmp_path: Path) -> None:
    config = load_config(write(tmp_path / "c.yaml", """\
providers:
  openai:
    base_url: http://127.0.0.1:8765/openai/v1
    api_key_env: MY_OPENAI_KEY
    limits: {max_requests: 1000, max_bytes: 1000000}
    models:
      - {name: gpt-4o-mini, max_requests: 500, input_usd_per_mtok: 0.075}
polling: {strategy: fixed, interval_s: 10}
"""), env={})

    openai = config.provider("openai")
    assert openai.limits.max_requests == 1000
    assert openai.model("gpt-4o-mini") == ModelConfig(name="gpt-4o-mini", max_requests=500,
                                                      input_usd_per_mtok=0.075)
    assert openai.model("gpt-5") is None
    assert config.polling.interval_s == 10
    assert config.provider("anthropic") == ProviderConfig()  # absent: defaults


def test_every_problem_is_reported_with_its_path(tmp_path: Path) -> None:
    assert sorted(problems_of(BAD_CONFIG, tmp_path)) == sorted(BAD_PROBLEMS)


@pytest.mark.parametrize(("text", "problem"), [
    ('database: {url: "sqlite:///x.db", pool: 3}\n', "database.pool: unknown key"),
    ("providers: {openai: {limits: {max_files: 1}}}\n",
     "providers.openai.limits.max_files: unknown key"),
    ("providers: {openai: {models: [{name: a, colour: red}]}}\n",
     "providers.openai.models[0].colour: unknown key"),
    ("providers: {openai: {models: [{name: a}, {name: a}]}}\n",
     "providers.openai: model listed twice: a"),
    ("providers: {openai: {models: [{name: ''}]}}\n",
     "providers.openai.models[0].name: String should have at least 1 character"),
    ("polling: {min_s: 10, max_s: 5}\n", "polling: min_s must be <= max_s"),
    ("retry: {max_attempts: 0}\n", "retry.max_attempts: Input should be greater than 0"),
    ("worker: {lease_s: soon}\n",
     "worker.lease_s: Input should be a valid number, unable to parse string as a number"),
])
def test_a_bad_value_is_reported_with_its_path(tmp_path: Path, text: str, problem: str) -> None:
    assert problems_of(text, tmp_path) == [problem]


@pytest.mark.parametrize(("text", "words"), [
    ("- a\n- b\n", "top level must be a mapping"),
    ("providers: [\n", "not valid YAML"),
])
def test_a_file_that_is_not_a_mapping_is_refused(tmp_path: Path, text: str, words: str) -> None:
    path = write(tmp_path / "c.yaml", text)
    with pytest.raises(ConfigError, match=words) as caught:
        load_config(path, env={})
    assert str(path) in str(caught.value)


def test_a_missing_file_is_refused_with_its_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"absent\.yaml: cannot read config"):
        load_config(tmp_path / "absent.yaml", env={})


def test_the_configuration_is_frozen() -> None:
    config = AppConfig()
    with pytest.raises(ValidationError):
        config.database.url = "postgresql://elsewhere"


def test_environment_overrides_database_and_broker_urls(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "database: {url: 'sqlite:///file.db', echo: true}\n"
                                      "broker: {url: 'sqla+sqlite:///b.db'}\n")
    env = {"LLMBATCH_DATABASE_URL": "postgresql+psycopg://db/llmbatch",
           "LLMBATCH_BROKER_URL": "redis://cache:6379/0"}

    config = load_config(path, env=env)

    assert config.database.url == "postgresql+psycopg://db/llmbatch"
    assert config.database.echo is True  # the rest of the section is kept
    assert config.broker.url == "redis://cache:6379/0"
    assert load_config(path, env={"LLMBATCH_DATABASE_URL": ""}).database.url == (
        "sqlite:///file.db")  # empty means unset


def test_environment_overrides_work_without_the_section_or_with_an_empty_one(
        tmp_path: Path) -> None:
    env = {"LLMBATCH_DATABASE_URL": "sqlite:///env.db", "LLMBATCH_BROKER_URL": "redis://r"}
    empty = write(tmp_path / "c.yaml", "database:\n  # url: commented out\nbroker:\n")

    for config in (load_config(env=env), load_config(empty, env=env)):
        assert (config.database.url, config.broker.url) == ("sqlite:///env.db", "redis://r")


def test_the_process_environment_is_read_when_no_mapping_is_given(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMBATCH_DATABASE_URL", "sqlite:///from-env.db")
    assert load_config().database.url == "sqlite:///from-env.db"


def test_the_api_key_comes_from_the_named_environment_variable(
        monkeypatch: pytest.MonkeyPatch) -> None:
    provider = ProviderConfig(api_key_env="LLMBATCH_TEST_KEY", api_key="sk-literal")

    monkeypatch.setenv("LLMBATCH_TEST_KEY", "sk-from-env")
    assert provider.resolved_api_key() == "sk-from-env"
    monkeypatch.setenv("LLMBATCH_TEST_KEY", "")
    assert provider.resolved_api_key() == "sk-literal"
    monkeypatch.delenv("LLMBATCH_TEST_KEY")
    assert provider.resolved_api_key() == "sk-literal"
    assert ProviderConfig(api_key_env="LLMBATCH_TEST_KEY").resolved_api_key() is None


def test_a_literal_api_key_never_shows_in_the_config_repr(tmp_path: Path) -> None:
    config = load_config(write(tmp_path / "c.yaml",
                               "providers: {openai: {api_key: sk-very-secret}}\n"), env={})
    assert "sk-very-secret" not in repr(config) + str(config)
    assert config.provider("openai").resolved_api_key() == "sk-very-secret"


# ---- llmbatch config validate ------------------------------------------------------------
def test_config_validate_prints_each_problem_with_its_path_and_fails(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.yaml", BAD_CONFIG)

    result = CliRunner().invoke(app, ["config", "validate", str(path)])

    assert result.exit_code == 2
    lines = result.output.splitlines()
    assert lines[0] == f"error: {path}: invalid configuration"
    assert sorted(lines[1:]) == sorted(BAD_PROBLEMS)
    assert result.stdout == ""  # problems go to stderr


def test_config_validate_reports_an_unreadable_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["config", "validate", str(tmp_path / "absent.yaml")])

    assert result.exit_code == 2
    assert "absent.yaml: cannot read config" in result.output


def test_config_validate_accepts_a_good_file(tmp_path: Path) -> None:
    path = write(tmp_path / "good.yaml", "providers:\n  openai: {enabled: true}\n"
                                         "  anthropic: {enabled: false}\n")

    result = CliRunner().invoke(app, ["config", "validate", str(path)])

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "ok: 2 provider(s): openai, anthropic"
