"""``llmbatch info``: which config, home, database, broker and emulator a command run here
would use, found the way every command finds them."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from llmbatch.cli import main as cli
from llmbatch.emulator.server import EmulatorServer
from llmbatch.emulator.settings import load_profile


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_info_names_the_files_and_which_endpoints_are_the_emulator(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMBATCH_CEILING_DIRECTORIES", str(tmp_path))
    for var in ("LLMBATCH_HOME", "LLMBATCH_CONFIG", "LLMBATCH_DATABASE_URL",
                "LLMBATCH_BROKER_URL"):
        monkeypatch.delenv(var, raising=False)
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    with EmulatorServer(load_profile("fast")) as emulator:
        config = {"providers": {
            "openai": {"base_url": f"{emulator.url}/openai/v1", "api_key": "k"},
            "anthropic": {"base_url": f"http://127.0.0.1:{closed_port()}/anthropic"},
            "gemini": {"base_url": "https://generativelanguage.example.invalid"},
        }}
        (tmp_path / "llm_config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
        result = CliRunner().invoke(cli.app, ["info", "--json"])

    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["config_file"] == str(tmp_path / "llm_config.yaml")
    assert (data["home"], data["home_source"], data["home_exists"]) == (
        str(tmp_path / ".llmbatch"), "found", False)
    assert data["database"] == {"url": f"sqlite:///{tmp_path}/.llmbatch/llmbatch.db",
                                "file": f"{tmp_path}/.llmbatch/llmbatch.db", "exists": False}
    assert data["broker"]["embedded"] is True
    providers = data["providers"]
    assert [providers[p]["emulator"] for p in ("openai", "anthropic", "gemini")] == [
        True, False, None]
    assert [providers[p]["api_key"] for p in ("openai", "anthropic")] == ["set", "missing"]
    assert not (tmp_path / ".llmbatch").exists()  # info creates nothing
