"""The README's example input file is real: the lines in its "Input" section are the file the
package ships (``examples/prompts.jsonl``), which ``llmbatch demo`` (``make demo``) runs on
every provider, and it passes the door unchanged on all three with the demo's models."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from door_support import run_cli
from llmbatch.cli.demo import DEMO_PROVIDERS, example_prompts, write_config

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def readme_example() -> list[str]:
    """The first ```json block of the README's "### Input" section."""
    section = README.read_text(encoding="utf-8").split("### Input", 1)[1]
    block = re.search(r"```json\n(.*?)```", section, flags=re.DOTALL)
    assert block is not None
    return block.group(1).splitlines()


def test_the_readme_example_is_the_file_the_demo_runs() -> None:
    shipped = example_prompts().splitlines()

    assert readme_example() == shipped
    assert [json.loads(line)["custom_id"] for line in shipped] == ["q-1", "q-2", "q-3"]


@pytest.mark.parametrize("config", ["demo", "example"])
@pytest.mark.parametrize("provider", sorted(DEMO_PROVIDERS))
def test_the_readme_example_passes_the_door_on_every_provider(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, provider: str, config: str) -> None:
    """With the demo's configuration and with llm_config.example.yaml (what the README tells
    a user to copy), on the demo's model of each provider."""
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(example_prompts(), encoding="utf-8")
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.setenv(name, "k")
    path = (write_config(tmp_path, "http://127.0.0.1:9") if config == "demo"
            else ROOT / "llm_config.example.yaml")
    model = DEMO_PROVIDERS[provider][0]

    checked = run_cli("validate", str(prompts), "--provider", provider, "--model", model,
                      "-c", str(path))

    assert checked.code == 0, checked
    assert "3 request" in checked.text, checked
