"""``llmbatch emulator`` still serves when run alone, and ``llmbatch emulator faults`` steers
that running emulator over its control API: add, list, clear; one-line errors otherwise."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from door_support import run_cli

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


def llmbatch(*args: str, url: str | None = None) -> Result:
    """``llmbatch ARGS`` in this process through the real entry point (``door_support``): a
    child interpreter per command cost 1-5 s of start-up each. The emulator it steers is a
    process of its own (``served``)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COLUMNS", "200")
        if url is not None:
            patch.setenv("LLMBATCH_EMULATOR_URL", url)
        else:
            patch.delenv("LLMBATCH_EMULATOR_URL", raising=False)
        run = run_cli(*args)
    return Result(int(run.code), run.out, run.err)


@pytest.fixture(scope="module")
def served() -> Iterator[str]:
    """``llmbatch emulator --port P --profile fast`` in its own process, stopped by pid."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "llmbatch", "emulator", "--port", str(port),
                             "--profile", "fast"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):  # generous cap: a busy machine imports slowly
            if proc.poll() is not None:
                raise AssertionError(f"the emulator exited: {proc.stderr and proc.stderr.read()}")
            try:
                if httpx.get(f"{url}/_emulator/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise AssertionError("the emulator never answered")
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def test_faults_are_added_listed_and_cleared(served: str) -> None:
    assert llmbatch("emulator", "faults", "clear", url=served).returncode == 0
    added = llmbatch("emulator", "faults", "add", "http", "operation=batches.create",
                     "status=429", "retry_after_s=0.5", "times=2", "provider=openai",
                     "match.llmbatch_batch_id=b-7", url=served)
    assert added.returncode == 0, added.stderr
    assert "1 rule(s) added; 1 active" in added.stdout
    listed = llmbatch("emulator", "faults", "list", "--json", "--url", served)
    rules = json.loads(listed.stdout)["rules"]
    assert rules == [{"kind": "http", "provider": "openai", "operation": "batches.create",
                      "status": 429, "retry_after_s": 0.5, "times": 2, "remaining": 2,
                      "fired": 0, "match": {"llmbatch_batch_id": "b-7"}, "probability": 1.0,
                      "message": None}]
    table = llmbatch("emulator", "faults", "list", url=served)
    assert "batches.create" in table.stdout and "status=429" in table.stdout
    # The rule acts on the emulator: an OpenAI create tagged b-7 gets the 429.
    refused = httpx.post(f"{served}/openai/v1/batches", headers={"authorization": "Bearer k"},
                         json={"input_file_id": "file-x", "endpoint": "/v1/chat/completions",
                               "completion_window": "24h",
                               "metadata": {"llmbatch_batch_id": "b-7"}})
    assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
    cleared = llmbatch("emulator", "faults", "clear", url=served)
    assert cleared.returncode == 0
    assert json.loads(llmbatch("emulator", "faults", "list", "--json",
                               url=served).stdout)["rules"] == []


def test_a_bad_rule_is_one_line_and_exit_2(served: str) -> None:
    for args in (("http", "status=99"), ("nope",), ("http", "no-equals")):
        result = llmbatch("emulator", "faults", "add", *args, url=served)
        assert result.returncode == 2, result
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "status" in llmbatch("emulator", "faults", "add", "http", "status=99",
                                url=served).stderr


def test_no_emulator_is_one_line_and_exit_3() -> None:
    result = llmbatch("emulator", "faults", "list", "--url", f"http://127.0.0.1:{_free_port()}")
    assert result.returncode == 3
    assert "no emulator answers at" in result.stderr and "Traceback" not in result.stderr


def test_without_the_emulator_extra_the_cli_says_what_to_install() -> None:
    """A core install (no fastapi/uvicorn) runs every other command; ``llmbatch emulator``
    names the extra in one line, exit 2."""
    script = ("import sys; sys.modules['uvicorn'] = None; sys.modules['fastapi'] = None; "
              "sys.argv = ['llmbatch', 'emulator']; from llmbatch.cli.main import main; main()")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 2, result
    assert "llmbatch[emulator]" in result.stderr and "Traceback" not in result.stderr
