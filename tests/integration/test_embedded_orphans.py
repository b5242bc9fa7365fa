"""``llmbatch submit --wait`` on the embedded default starts a worker (with its beat); when
the submit process is SIGKILLed, what it started must go too, not run on detached with its
output sent nowhere. The child learns of the death through the lifeline pipe
(``llmbatch.cli.embedded``) and stops; its output is in the project home's log file."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from llmbatch.cli.embedded import default_log_file
from llmbatch.emulator.server import EmulatorServer
from llmbatch.emulator.settings import load_profile

from .support import MODEL, child_env, llmbatch_cmd, write_config, write_prompts

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

GONE_CAP_S = 60.0  # generous: the worker's warm shutdown is given 10 s, then its group killed


@pytest.fixture
def slow_emulator() -> Iterator[EmulatorServer]:
    """Batches that take minutes, so the job is still running when submit is killed."""
    with EmulatorServer(load_profile("fast", timing={"run_base_s": 300.0})) as server:
        yield server


def alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_for(what: str, check: object, cap_s: float) -> None:
    deadline = time.monotonic() + cap_s
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {cap_s:.0f}s", pytrace=False)
        time.sleep(0.1)


def test_children_of_a_killed_submit_wait_end_and_leave_a_log(
        slow_emulator: EmulatorServer, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()  # a database path names an existing directory (only the home is created)
    config_path = write_config(tmp_path / "llm_config.yaml",
                               database_url=f"sqlite:///{data_dir / 'llmbatch.db'}",
                               broker_url=f"sqla+sqlite:///{data_dir / 'broker.db'}",
                               emulator_url=slow_emulator.url)
    prompts = write_prompts(tmp_path / "prompts.jsonl", 5, prefix="orphan")
    out = (tmp_path / "submit.log").open("wb")
    submit = subprocess.Popen(
        llmbatch_cmd("submit", str(prompts), "--provider", "openai", "--model", MODEL,
                     "--wait", "--config", str(config_path)),
        stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=tmp_path,
        env=child_env(), start_new_session=True)
    parent = psutil.Process(submit.pid)
    started: list[psutil.Process] = []
    try:
        # The worker is up and has taken the job to the provider: a batch was created.
        wait_for("no batch created at the emulator",
                 lambda: slow_emulator.runtime.stats.snapshot()["batches_created"].get(
                     "openai", 0) > 0, 60)
        started = parent.children(recursive=True)
        assert started, "submit --wait started no process"
        assert any("llmbatch.cli.embedded" in " ".join(p.cmdline()) for p in started)
        os.kill(submit.pid, signal.SIGKILL)
        submit.wait(timeout=10)
        t0 = time.monotonic()
        wait_for(f"children still running after the submit was killed: "
                 f"{[p.pid for p in started if alive(p)]}",
                 lambda: not any(alive(p) for p in started), GONE_CAP_S)
        gone_s = time.monotonic() - t0
    finally:
        out.close()
        for proc in [*started, parent]:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        submit.wait(timeout=10)  # reaped whatever happened, so nothing outlives the test
    log = default_log_file(config_path)
    figures = {"children": len(started), "gone_after_s": round(gone_s, 1),
               "log_bytes": log.stat().st_size if log.exists() else None}
    with capsys.disabled():
        print(f"\nembedded-orphans figures: {json.dumps(figures)}")
    assert log.exists() and log.stat().st_size > 0, "the worker's output went nowhere"
