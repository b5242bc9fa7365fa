"""Running the emulator: in a background thread for tests, or in the foreground for the CLI.

``EmulatorServer`` starts uvicorn on a loopback port chosen by the OS (port 0), waits until it
accepts connections, and stops it cleanly; its helpers act on the in-process runtime directly
(the HTTP control endpoint does the same for other processes). ``serve`` is what
``llmbatch emulator --host H --port P [--profile FILE]`` calls.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import uvicorn

from llmbatch.emulator.app import create_app
from llmbatch.emulator.clock import Clock
from llmbatch.emulator.runtime import EmulatorRuntime
from llmbatch.emulator.settings import EmulatorSettings, load_profile

__all__ = ["EmulatorServer", "serve"]

STARTUP_TIMEOUT_S = 10.0


def _config(app: Any, log_level: str) -> uvicorn.Config:
    # No websockets/h2 or the auto loop: fewer imports, and nothing that warns on import
    # (tests run with warnings as errors, and a warning in the server thread would kill it).
    return uvicorn.Config(app, loop="asyncio", http="h11", ws="none", lifespan="on",
                          log_level=log_level, access_log=False, timeout_graceful_shutdown=2)


class EmulatorServer:
    """The emulator on ``127.0.0.1`` in a daemon thread; use as a context manager.

    ``url`` is the server root (``http://127.0.0.1:54321``); ``openai_base_url`` is what to
    give the OpenAI SDK. A server runs once: stopping it deletes its files, so make a new
    one to start again.
    """

    def __init__(
        self,
        settings: EmulatorSettings | None = None,
        *,
        clock: Clock | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
    ) -> None:
        self.runtime = EmulatorRuntime.build(settings or EmulatorSettings(), clock)
        self.app = create_app(runtime=self.runtime)
        self._host, self._port, self._log_level = host, port, log_level
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._url: str | None = None
        self._stopped = False

    @property
    def url(self) -> str:
        """``http://host:port`` of the running server."""
        if self._url is None:
            raise RuntimeError("the emulator is not running; call start() first")
        return self._url

    @property
    def openai_base_url(self) -> str:
        """Base URL for ``openai.OpenAI(base_url=...)``."""
        return f"{self.url}/openai/v1"

    def start(self) -> EmulatorServer:
        """Bind, start serving in a thread, and wait until the server is up."""
        if self._thread is not None or self._stopped:
            raise RuntimeError("an EmulatorServer runs once; create a new one to restart")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._port))
        port = sock.getsockname()[1]
        server = uvicorn.Server(_config(self.app, self._log_level))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                                  name=f"llmbatch-emulator-{port}", daemon=True)
        thread.start()
        started = threading.Event()
        while not started.wait(0.01):
            if server.started:
                started.set()
            elif not thread.is_alive():
                sock.close()
                raise RuntimeError("the emulator server failed to start (see log)")
        self._server, self._thread, self._socket = server, thread, sock
        self._url = f"http://{self._host}:{port}"
        return self

    def stop(self) -> None:
        """Stop serving, wait for the thread, remove the blob directory."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=STARTUP_TIMEOUT_S)
            if self._thread.is_alive():
                self._server.force_exit = True
                self._thread.join(timeout=STARTUP_TIMEOUT_S)
        if self._socket is not None:
            self._socket.close()
        self._server, self._thread, self._socket = None, None, None
        self._url = None
        self._stopped = True
        self.runtime.close()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- control, in process -------------------------------------------------------------

    def set_faults(
        self, rules: Iterable[Any], *, mode: Literal["replace", "append"] = "replace"
    ) -> None:
        """Install fault rules (dicts or ``faults`` models)."""
        self.runtime.faults.set_rules(rules, mode=mode)

    def clear_faults(self) -> None:
        """Remove every fault rule (the profile's too; ``reset`` brings those back)."""
        self.runtime.faults.set_rules([], mode="replace")

    def stats(self) -> dict[str, Any]:
        """The same counters as ``GET /_emulator/stats``."""
        return self.runtime.stats.snapshot()

    def settings(self) -> dict[str, Any]:
        """The settings as ``GET /_emulator/settings`` shows them (JSON values)."""
        return self.runtime.settings.model_dump(mode="json")

    def reset(self, *, faults: bool = True, stats: bool = True, state: bool = False) -> None:
        """Profile faults back, stats zeroed, optionally every file and batch dropped."""
        self.runtime.reset(faults=faults, stats=stats, state=state)

    def advance_clock(self, seconds: float) -> float:
        """Skip the emulator's clock ahead (e.g. past a batch's 24 h deadline)."""
        return self.runtime.advance_clock(seconds)


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    profile_path: str | Path | None = None,
    *,
    settings: EmulatorSettings | None = None,
    log_level: str = "info",
) -> None:
    """Serve in the foreground until interrupted (Ctrl-C). For ``llmbatch emulator``.

    ``profile_path`` is a YAML profile or a bundled profile name (``fast``, ``chaos``, ...);
    ``settings`` wins over it when both are given. Raises ``ConfigError`` on a bad profile.
    """
    chosen = settings or load_profile(profile_path)
    app = create_app(chosen)
    config = _config(app, log_level)
    config.host, config.port = host, port
    uvicorn.Server(config).run()
