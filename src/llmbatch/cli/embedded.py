"""Running a worker (with its beat) as a child process for the embedded mode.

``llmbatch demo`` and ``llmbatch submit --wait`` on the embedded default start one so that a
user needs no server and no second terminal. It is stopped when the command ends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from types import TracebackType

__all__ = ["EmbeddedWorker"]


class EmbeddedWorker:
    """``with EmbeddedWorker(config_path): ...`` - a ``llmbatch worker --beat`` child."""

    def __init__(self, config_path: Path | None, *, concurrency: int = 4,
                 log_file: Path | None = None, env: dict[str, str] | None = None) -> None:
        self._config_path = config_path
        self._concurrency = concurrency
        self._log_file = log_file
        self._env = env
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> EmbeddedWorker:
        cmd = [sys.executable, "-m", "llmbatch", "worker", "--beat", "--pool", "threads",
               "--concurrency", str(self._concurrency)]
        if self._config_path is not None:
            cmd += ["--config", str(self._config_path)]
        out = self._log_file.open("ab") if self._log_file else subprocess.DEVNULL
        self._proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                      env={**os.environ, **(self._env or {})},
                                      start_new_session=True)
        return self

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGTERM)
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait(timeout=5)
        self._proc = None
