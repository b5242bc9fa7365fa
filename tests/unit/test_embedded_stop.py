"""How ``submit --wait`` lets go of its embedded worker: woken as it stops, and detached
(not awaited) when the submit failed while the worker was booting."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from llmbatch.cli.embedded import EmbeddedWorker, stop_wake
from llmbatch.service_layer import tasks
from llmbatch.service_layer.unit_of_work import RecordingPublisher

pytestmark = pytest.mark.unit


def _with_child(worker: EmbeddedWorker) -> tuple[subprocess.Popen[bytes], int]:
    """A stand-in child in its own session (as the real one), and the lifeline's write end."""
    child = subprocess.Popen(["sleep", "60"], start_new_session=True)
    read_end, write_end = os.pipe()
    os.close(read_end)
    worker._proc, worker._lifeline = child, write_end
    return child, write_end


def test_the_stop_wake_is_two_ticks() -> None:
    # Celery reads the broker once more after noticing the stop: one message per read.
    publisher = RecordingPublisher()
    stop_wake(publisher)()
    assert publisher.messages == [(tasks.TICK, ()), (tasks.TICK, ())]


def test_the_worker_is_woken_after_it_was_told_to_stop(tmp_path: Path) -> None:
    seen: list[int | None] = []
    worker = EmbeddedWorker(None, log_file=tmp_path / "worker.log",
                            wake=lambda: seen.append(child.poll()))
    child, _ = _with_child(worker)
    worker.__exit__(None, None, None)
    assert child.returncode == -signal.SIGTERM
    assert len(seen) == 1  # woken once, after the signal was sent
    assert worker.pid is None


def test_a_detached_worker_is_told_to_stop_and_its_lifeline_closed(tmp_path: Path) -> None:
    worker = EmbeddedWorker(None, log_file=tmp_path / "worker.log")
    child, lifeline = _with_child(worker)
    worker.detach()
    assert child.wait(timeout=10) == -signal.SIGTERM
    with pytest.raises(OSError):
        os.fstat(lifeline)
    assert worker.pid is None
    worker.__exit__(None, None, None)  # nothing left to stop
