"""The configuration door: URLs of a kind llmbatch cannot run on, unreadable or hostile YAML
and invalid provider options are refused by ``config validate`` in one line naming the file or
the key, exit 2, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from door_support import run_cli
from llmbatch.config import load_config
from llmbatch.errors import ConfigError


def write(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / "cfg.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


@pytest.mark.parametrize(("text", "says"), [
    ("database: {url: 'not a url'}\n", "database.url: not a URL"),
    ("database: {url: 'mysql://u@h/db'}\n", "database.url: unsupported database 'mysql'"),
    ("database: {url: 'postgresql+psycopg://u@h:notaport/db'}\n",
     "database.url: not a valid database URL"),
    ("broker: {url: 'not a url'}\n", "broker.url: not a URL"),
    ("broker: {url: 'kafka://h:9092'}\n", "broker.url: unsupported broker 'kafka'"),
    ("providers: {openai: {options: {completion_window: 48h}}}\n",
     "providers.openai.options.completion_window"),
], ids=["db-not-a-url", "db-mysql", "db-bad-port", "broker-not-a-url", "broker-kafka",
        "completion-window"])
def test_config_validate_refuses_with_the_path(tmp_path: Path, text: str, says: str) -> None:
    result = run_cli("config", "validate", str(write(tmp_path, text)))
    assert result.code == 2, result
    assert says in result.err and "Traceback" not in result.text


@pytest.mark.parametrize(("content", "says"), [
    (b"database:\n  url: \xff\xfe\n", "not valid UTF-8"),
    ("a: " + "[" * 5000 + "]" * 5000 + "\n", "nested deeper than"),
    ("a: " + "{b: " * 40 + "1" + "}" * 40 + "\n", "nested deeper than 32 levels"),
    ("a: &x [1, 2]\nb: [*x, *x]\n", "YAML aliases"),
    ("a: [unclosed\n", "not valid YAML"),
    ("[1, 2]\n", "the top level must be a mapping"),
    ("? [a, b]\n: 1\n", "a key must be a plain value"),
    ("retry: {max_attempts: " + "9" * 5000 + "}\n", "cfg.yaml"),
], ids=["invalid-utf8", "very-deep", "deep", "aliases", "unclosed", "not-a-mapping",
        "complex-key", "huge-int"])
def test_a_hostile_or_unreadable_file_is_one_line_naming_it(tmp_path: Path,
                                                            content: str | bytes,
                                                            says: str) -> None:
    path = write(tmp_path, content)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert str(path) in str(caught.value) and says in str(caught.value)

    result = run_cli("config", "validate", str(path))
    assert result.code == 2 and "Traceback" not in result.text
    assert says in result.err


def test_a_submit_with_an_unusable_database_url_stops_at_the_config(tmp_path: Path) -> None:
    path = write(tmp_path, "database: {url: 'mysql://u@h/db'}\n")
    (tmp_path / "in.jsonl").write_text('{"body": {"messages": [{"role": "user", '
                                       '"content": "hi"}]}}\n', encoding="utf-8")
    result = run_cli("submit", str(tmp_path / "in.jsonl"), "--provider", "openai",
                     "--model", "m", "-c", str(path))
    assert result.code == 2 and "database.url: unsupported database 'mysql'" in result.err


def test_the_env_override_of_a_url_is_checked_too(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, env={"LLMBATCH_DATABASE_URL": "not a url"})
    assert "database.url: not a URL" in str(caught.value)
