"""Running a worker (with its beat) as a child process for the embedded mode.

``llmbatch demo`` and ``llmbatch submit --wait`` on the embedded default start one so that a
user needs no server and no second terminal. It is stopped when the command ends, and also
when the command dies without ending it (SIGKILL, a crash, a closed terminal): the child
holds the read end of a pipe whose only write end is in the command ("the lifeline"). The
kernel closes that end when the command dies however it dies, so the child reads EOF, shuts
down warmly and, if that takes too long, kills its own process group (any pool children
with it; the beat is a thread of the worker, ``worker/beat_thread.py``). A pipe works wherever
``os.pipe`` does and needs no polling.

The child runs ``python -m llmbatch.cli.embedded_child worker ...``, which starts the
lifeline watch, then hands the arguments to the ordinary ``llmbatch`` command (a module of its
own: the commands import this one to start a worker, so it cannot import them back).
Its output goes to a log file (``logs/worker.log`` in the project's home by default), not
to nowhere.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from llmbatch.service_layer import tasks

if TYPE_CHECKING:
    from llmbatch.service_layer.unit_of_work import Publisher

__all__ = ["LIFELINE_ENV", "EmbeddedWorker", "default_log_file", "stop_wake", "watch_lifeline"]

LIFELINE_ENV = "LLMBATCH_LIFELINE_FD"
LOG_NAME = "worker.log"
# After the parent died: how long a warm shutdown may take before the group is killed.
SHUTDOWN_GRACE_S = 10.0


def default_log_file(config_path: Path | None) -> Path:
    """Where the child's output goes: ``logs/worker.log`` in the project's home (where the
    embedded database and broker live too; ``llmbatch info`` names it)."""
    from llmbatch.cli.runtime import project_config

    try:
        _, project = project_config(config_path)
    except Exception:  # the child reports a bad config itself, in the log
        from llmbatch.config import DEFAULT_DATA_DIR

        return DEFAULT_DATA_DIR / LOG_NAME
    project.ensure_home()
    return project.logs / LOG_NAME


class EmbeddedWorker:
    """``with EmbeddedWorker(config_path): ...`` - a ``llmbatch worker --beat`` child that
    ends with the block, or with this process if it dies first.

    ``wake`` (optional) sends the worker any message right after it was told to stop: Celery
    notices a stop between two reads of the broker, and on the embedded (polled) broker an
    idle read lasts up to 2 s; a message ends it at once, so the command exits that much
    sooner. The message must be one a worker may run or leave queued (a tick)."""

    def __init__(self, config_path: Path | None, *, concurrency: int = 4,
                 log_file: Path | None = None, env: dict[str, str] | None = None,
                 wake: Callable[[], None] | None = None) -> None:
        self._config_path = config_path
        self._wake = wake
        self._concurrency = concurrency
        self.log_file = log_file or default_log_file(config_path)
        self._env = env
        self._proc: subprocess.Popen[bytes] | None = None
        self._lifeline: int | None = None

    def __enter__(self) -> EmbeddedWorker:
        cmd = [sys.executable, "-m", "llmbatch.cli.embedded_child", "worker", "--beat",
               "--pool", "threads", "--concurrency", str(self._concurrency)]
        if self._config_path is not None:
            cmd += ["--config", str(self._config_path)]
        read_end, write_end = os.pipe()  # both non-inheritable: only pass_fds crosses
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self.log_file.open("ab") as out:
                # Its own session: a Ctrl-C at the terminal reaches this process only, which
                # then stops the child in order (``__exit__``).
                self._proc = subprocess.Popen(
                    cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    env={**os.environ, **(self._env or {}), LIFELINE_ENV: str(read_end)},
                    pass_fds=(read_end,), start_new_session=True)
        except BaseException:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
        self._lifeline = write_end
        return self

    def detach(self) -> None:
        """Tell the worker to stop and do not wait for it (a ``submit --wait`` whose file was
        refused should not make its user wait for a worker that booted for nothing). It stops
        warmly on its own; its lifeline, closed here, bounds that by ``SHUTDOWN_GRACE_S``."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            _signal_group(self._proc.pid, signal.SIGTERM)
        if self._lifeline is not None:
            os.close(self._lifeline)
            self._lifeline = None
        self._proc = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._proc is None:
            return
        try:
            if self._proc.poll() is None:
                _signal_group(self._proc.pid, signal.SIGTERM)
                if self._wake is not None:
                    with contextlib.suppress(Exception):  # only sooner: never needed
                        self._wake()
                try:
                    self._proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    _signal_group(self._proc.pid, signal.SIGKILL)
                    self._proc.wait(timeout=5)
            # Pool or beat children that outlived the worker share its group.
            _signal_group(self._proc.pid, signal.SIGKILL)
        finally:
            if self._lifeline is not None:
                os.close(self._lifeline)
                self._lifeline = None
            self._proc = None


def stop_wake(publisher: Publisher) -> Callable[[], None]:
    """The ``wake`` of an ``EmbeddedWorker`` whose broker ``publisher`` sends to: two ticks.
    Celery reads the broker once more after it noticed the stop (its loop's ``finally``), so
    the first message ends the read it was in and the second the last one; a tick left over
    is run by the next worker, a no-op when nothing is due (messages are only wake-up calls).
    Measured on the embedded broker: the worker exits in ~1-1.5 s instead of ~4-5 s."""

    def wake() -> None:
        publisher.publish_many([(tasks.TICK, (), None), (tasks.TICK, (), None)])

    return wake


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def watch_lifeline(fd: int, *, grace_s: float = SHUTDOWN_GRACE_S) -> threading.Thread:
    """In the child: a daemon thread that blocks on the lifeline and, at EOF (the parent
    died), asks this process to stop (SIGTERM: Celery's warm shutdown), then kills the whole
    process group if it is still there after ``grace_s``."""

    def watch() -> None:
        with contextlib.suppress(OSError):
            while os.read(fd, 4096):
                pass  # nothing is ever written; only EOF matters
        os.kill(os.getpid(), signal.SIGTERM)
        threading.Event().wait(grace_s)
        os.killpg(os.getpgid(0), signal.SIGKILL)

    thread = threading.Thread(target=watch, name="llmbatch-lifeline", daemon=True)
    thread.start()
    return thread

