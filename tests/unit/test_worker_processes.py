"""Worker node names and where the embedded worker writes its output (no I/O but a tmp
config file)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from llmbatch.cli.embedded import LOG_NAME, default_log_file
from llmbatch.config import DEFAULT_DATA_DIR
from llmbatch.worker.naming import node_name


def test_default_node_names_are_unique_per_process_start() -> None:
    names = {node_name() for _ in range(50)}
    assert len(names) == 50
    assert all(re.fullmatch(r"llmbatch-\d+-[0-9a-f]{8}@%h", n) for n in names)


def test_an_explicit_node_name_wins() -> None:
    assert node_name("ops-1@%h") == "ops-1@%h"
    assert node_name("") != ""  # an empty option is no name: a unique one is made


@pytest.mark.parametrize("database", ["sqlite-in-data-dir", "postgresql"])
def test_embedded_worker_log_lives_in_the_project_home(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database: str) -> None:
    """One place for the worker's output whatever the database: the home's ``logs/``, beside
    the embedded database and broker (``llmbatch info`` names it)."""
    monkeypatch.delenv("LLMBATCH_HOME", raising=False)
    (tmp_path / "data").mkdir()
    url = (f"sqlite:///{tmp_path / 'data' / 'llmbatch.db'}" if database != "postgresql"
           else "postgresql+psycopg://u@h/db")
    config = tmp_path / "llm_config.yaml"
    config.write_text(f"database:\n  url: {url}\n", encoding="utf-8")
    assert default_log_file(config) == tmp_path / ".llmbatch" / "logs" / LOG_NAME


def test_embedded_worker_log_falls_back_to_the_data_dir_without_a_readable_config(
        tmp_path: Path) -> None:
    assert default_log_file(tmp_path / "missing.yaml") == DEFAULT_DATA_DIR / LOG_NAME
