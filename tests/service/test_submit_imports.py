"""``llmbatch submit`` only checks and stores a job: it must not load the provider SDKs (the
worker's business, ~13 MB for OpenAI's alone), nor ``jsonschema`` for a clean file (it only
explains a refused body), and loads Celery only to publish the wake-up once the job is
committed, so that the file is read in a process without them (issue 13: submit's peak
memory). Checked in a fresh interpreter, since this test process has imported everything."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SDKS = ("openai", "anthropic", "google.genai")

SCRIPT = """
import json, sys
from llmbatch.cli import runtime
from llmbatch.cli.main import main

SDKS = {sdks!r}
seen = {{}}
build = runtime._celery_publisher

def celery_publisher(cfg):
    seen["celery_before_publish"] = "celery" in sys.modules
    seen["sdks_before_publish"] = [m for m in SDKS if m in sys.modules]
    return build(cfg)

runtime._celery_publisher = celery_publisher
sys.argv = ["llmbatch", *sys.argv[1:]]
try:
    main()
except SystemExit as exc:
    seen["exit"] = exc.code
seen["sdks"] = [m for m in SDKS if m in sys.modules]
seen["explainer"] = "jsonschema" in sys.modules
print(json.dumps(seen))
"""


def test_submit_loads_no_provider_sdk_and_celery_only_to_publish(tmp_path: Path) -> None:
    config = tmp_path / "cfg.yaml"
    # Every provider configured: the submit checks the whole configuration (check_limits).
    config.write_text(f"""
database: {{url: "sqlite:///{tmp_path / 'llmbatch.db'}"}}
broker: {{url: "sqla+sqlite:///{tmp_path / 'broker.db'}"}}
providers:
  openai: {{api_key: sk-test, allow_unlisted_models: true}}
  anthropic: {{api_key: k, allow_unlisted_models: true}}
  gemini: {{api_key: k, allow_unlisted_models: true}}
""", encoding="utf-8")
    lines = tmp_path / "in.jsonl"
    lines.write_text("".join(json.dumps({"custom_id": f"q-{i}", "body": {"messages": [
        {"role": "user", "content": "Hi"}]}}) + "\n" for i in range(3)), encoding="utf-8")

    done = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(sdks=SDKS), "submit", str(lines),
         "--provider", "openai", "--model", "gpt-4o-mini", "-c", str(config)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("LLMBATCH_")},
             "LLMBATCH_HOME": str(tmp_path / "home")})

    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen.get("exit") in (None, 0), done.stderr
    assert seen["sdks"] == []
    # Every line was clean: the schema errors' explainer (``jsonschema``, ~8 MB) never loaded.
    assert seen["explainer"] is False
    # The wake-up was published (the job is stored), and Celery was loaded only for it.
    assert seen["celery_before_publish"] is False
    assert seen["sdks_before_publish"] == []
