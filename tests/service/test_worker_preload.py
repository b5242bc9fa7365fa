"""A worker imports the SDKs of the providers it may call once it is set up, before it
freezes its heap and before a prefork pool forks (``ProviderRegistry.preload``), so the pool
children share one copy; a provider that is disabled or not configured is not loaded. Checked
in a fresh interpreter, since this test process has imported everything."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import json, sys
from llmbatch.config import load_config
from llmbatch.providers.registry import ProviderRegistry

SDKS = ("openai", "anthropic", "google.genai")
registry = ProviderRegistry(load_config(sys.argv[1], env={}))
before = [m for m in SDKS if m in sys.modules]
registry.preload()
print(json.dumps({"before": before, "after": [m for m in SDKS if m in sys.modules]}))
"""


def test_preload_imports_the_sdks_of_enabled_providers_only(tmp_path: Path) -> None:
    config = tmp_path / "cfg.yaml"
    config.write_text("""
providers:
  openai: {api_key: sk-test, allow_unlisted_models: true}
  gemini: {api_key: k, enabled: false, allow_unlisted_models: true}
""", encoding="utf-8")

    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(config)], capture_output=True, text=True,
        timeout=120, cwd=tmp_path, check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("LLMBATCH_")})

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == {"before": [], "after": ["openai"]}
