"""The progress bar as a user sees it in a real terminal (a pty): ``llmbatch submit --wait``
with the embedded default against the emulator, whose batch takes seconds and reports live
counts. Before any result is fetched the bar already moves with the provider's counts (marked
"done at provider"); at the end it prints the cost and the next command."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from .support import API_KEY, MODEL, child_env, write_prompts

if TYPE_CHECKING:
    from llmbatch.emulator.server import EmulatorServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
PROVIDER_SIDE = re.compile(r"(\d+)/(\d+) done at provider · (\d+) fetched")


@pytest.fixture(scope="module")
def slow_emulator() -> Iterator[EmulatorServer]:
    """The emulator with a batch running ~6 s, its counters growing all along."""
    from llmbatch.emulator.server import EmulatorServer
    from llmbatch.emulator.settings import load_profile

    settings = load_profile("fast", timing={"validate_s": 0.2, "run_base_s": 6.0,
                                            "run_per_item_s": 0.0, "finalize_s": 0.2})
    with EmulatorServer(settings) as server:
        yield server


def in_a_terminal(args: list[str], cwd: Path, timeout_s: float = 150) -> tuple[int, str]:
    """Run ``llmbatch ARGS`` on a pseudo-terminal; its exit code and everything it drew."""
    master, slave = pty.openpty()
    env = {**child_env(), "COLUMNS": "100", "LINES": "30", "TERM": "xterm-256color",
           "LLMBATCH_CEILING_DIRECTORIES": str(cwd)}
    env.pop("LLMBATCH_HOME", None)
    proc = subprocess.Popen([sys.executable, "-m", "llmbatch", *args], cwd=cwd, env=env,
                            stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()
        os.close(master)
    return code, ANSI.sub("", b"".join(chunks).decode("utf-8", "replace"))


def test_the_bar_moves_with_provider_counts_and_ends_with_cost_and_next_step(
        slow_emulator: EmulatorServer, tmp_path: Path) -> None:
    config = {
        "broker": {"polling_interval_s": 0.1},
        "worker": {"tick_interval_s": 0.3, "lease_s": 30},
        "polling": {"strategy": "fixed", "interval_s": 0.3},
        "providers": {"openai": {
            "base_url": f"{slow_emulator.url}/openai/v1", "api_key": API_KEY,
            "models": [{"name": MODEL, "input_usd_per_mtok": 0.15,
                        "output_usd_per_mtok": 0.60}]}},
    }
    (tmp_path / "llm_config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    write_prompts(tmp_path / "prompts.jsonl", 40, prefix="pty")

    code, screen = in_a_terminal(["submit", "prompts.jsonl", "--provider", "openai",
                                  "--model", MODEL, "--wait"], tmp_path)

    frames = [m.groups() for m in PROVIDER_SIDE.finditer(screen)]
    before_fetch = [int(done) for done, total, fetched in frames
                    if fetched == "0" and total == "40" and 0 < int(done) < 40]
    assert code == 0, screen[-2000:]
    assert before_fetch, screen[-2000:]
    assert before_fetch == sorted(before_fetch)  # the provider's count only grows
    final = screen[screen.rindex("succeeded:"):]
    assert "40 succeeded" in final and re.search(r"cost \$0\.\d{4}", final)
    assert re.search(r"next: llmbatch results job_\w+ -o job_\w+\.jsonl", final)
    # Files live in the project's home; the beat schedule is gone with its worker.
    home = tmp_path / ".llmbatch"
    assert (home / "llmbatch.db").exists() and (home / "logs" / "worker.log").exists()
    assert not list(home.glob("beat-schedule*"))


# ``wait --timeout``: first short, then doubled while the bar has not shown the failing call
# yet (the worker ``wait`` starts must come up and fail a call first; a busy machine is slow
# at that). Each try gives up the way the test needs (exit 1, "run `llmbatch wait` again"),
# so the same behaviour is proven without waiting a fixed 40 s.
WAIT_TIMEOUTS_S = (8, 16, 32, 64)
FAILING_SHOWN = ("provider unreachable", "waiting:", "provider call failing", "Connection")


@pytest.mark.filterwarnings(  # publishing to the SQLite broker in process (see test_embedded)
    "ignore:The ``noload`` loader strategy is deprecated:sqlalchemy.exc.SADeprecationWarning")
def test_an_unreachable_provider_is_said_in_the_bar_and_by_status(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json
    import socket

    from door_support import run_cli

    with socket.socket() as probe:  # a port nobody listens on once this closes
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = {
        "broker": {"polling_interval_s": 0.1},
        "worker": {"tick_interval_s": 0.3, "lease_s": 30},
        "retry": {"base_delay_s": 0.2, "max_delay_s": 1.0},
        "providers": {"openai": {"base_url": f"http://127.0.0.1:{port}/openai/v1",
                                 "api_key": API_KEY, "models": [{"name": MODEL}]}},
    }
    (tmp_path / "llm_config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    write_prompts(tmp_path / "prompts.jsonl", 5, prefix="down")
    # The short commands run in process (door_support.run_cli), as the child would see it.
    monkeypatch.chdir(tmp_path)
    for name in set(os.environ) - set(child_env()):
        monkeypatch.delenv(name)
    monkeypatch.delenv("LLMBATCH_HOME", raising=False)
    monkeypatch.setenv("LLMBATCH_CEILING_DIRECTORIES", str(tmp_path))

    def llmbatch(*args: str) -> str:
        done = run_cli(*args)
        assert done.code == 0, done.text
        return done.out

    job_id = llmbatch("submit", "prompts.jsonl", "--provider", "openai", "--model", MODEL)
    job_id = job_id.split()[-1]
    for timeout_s in WAIT_TIMEOUTS_S:  # the job goes on between tries, as it would for a user
        code, screen = in_a_terminal(["wait", job_id, "--timeout", str(timeout_s)], tmp_path)
        if code != 1 or all(text in screen for text in FAILING_SHOWN):
            break
    status = json.loads(llmbatch("status", job_id, "--json"))
    llmbatch("cancel", job_id)

    assert code == 1
    assert "provider unreachable" in screen and "waiting:" in screen
    assert "provider call failing" in screen and "Connection" in screen
    assert f"llmbatch wait {job_id}" in screen
    assert [w["kind"] for w in status["waiting"]] == ["provider_failing"]
