"""A client of a running emulator's control API (``/_emulator``), over HTTP.

``EmulatorServer`` steers an emulator in the same process; this steers one anywhere (started
with ``llmbatch emulator``, in another container, on a CI service), which is what
``llmbatch emulator faults`` and a provider package testing against its own server use. It
needs only httpx (a core dependency), not the ``llmbatch[emulator]`` extra.

Errors are llmbatch's own: an emulator that cannot be reached is ``InfrastructureError``
(exit 3 in the CLI), a rule the emulator refuses is ``InputError`` naming the field (exit 2).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, Literal, Protocol

import httpx

from llmbatch.errors import InfrastructureError, InputError

__all__ = ["DEFAULT_URL", "URL_ENV", "EmulatorControl", "EmulatorHandle"]

URL_ENV = "LLMBATCH_EMULATOR_URL"
DEFAULT_URL = "http://127.0.0.1:8765"


class EmulatorHandle(Protocol):
    """What the contract harness needs of an emulator: its control API, in process
    (``llmbatch.emulator.EmulatorServer``) or over HTTP (``EmulatorControl``)."""

    def set_faults(self, rules: Iterable[Any], *,
                   mode: Literal["replace", "append"] = ...) -> object: ...

    def clear_faults(self) -> object: ...

    def stats(self) -> dict[str, Any]: ...

    def reset(self, *, faults: bool = True, stats: bool = True,
              state: bool = False) -> None: ...

    def advance_clock(self, seconds: float) -> float: ...

    def settings(self) -> dict[str, Any]: ...


class EmulatorControl:
    """The control API of the emulator at ``url`` (default ``$LLMBATCH_EMULATOR_URL``, else
    ``http://127.0.0.1:8765``, where ``llmbatch emulator`` listens)."""

    def __init__(self, url: str | None = None, *, timeout_s: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.url = (url or os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/")
        self._http = httpx.Client(base_url=f"{self.url}/_emulator", timeout=timeout_s,
                                  transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> EmulatorControl:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            response = self._http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise InfrastructureError(f"no emulator answers at {self.url} ({exc}); start one "
                                      "with `llmbatch emulator` or pass --url") from exc
        if response.status_code == 422:
            raise InputError(_validation_message(response))
        if response.status_code == 404:
            raise InfrastructureError(f"{self.url} answers, but not as an llmbatch emulator "
                                      f"(no {path} control endpoint)")
        if response.status_code >= 400:
            raise InfrastructureError(f"the emulator at {self.url} answered "
                                      f"{response.status_code}: {response.text[:200]}")
        return response.json()

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/health")
        return result

    def faults(self) -> dict[str, Any]:
        """``{"seed", "rules": [rule + remaining + fired]}``."""
        result: dict[str, Any] = self._call("GET", "/faults")
        return result

    def set_faults(self, rules: Iterable[Any], *,
                   mode: Literal["replace", "append"] = "append",
                   seed: int | None = None) -> dict[str, Any]:
        """Install rules (appended by default); returns the rule set now active."""
        result: dict[str, Any] = self._call("POST", "/faults", {
            "rules": [r.model_dump(mode="json") if hasattr(r, "model_dump") else dict(r)
                      for r in rules], "mode": mode, "seed": seed})
        return result

    def clear_faults(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("DELETE", "/faults")
        return result

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/stats")
        return result

    def reset(self, *, faults: bool = True, stats: bool = True, state: bool = False) -> None:
        self._call("POST", "/reset", {"faults": faults, "stats": stats, "state": state})

    def advance_clock(self, seconds: float) -> float:
        """Move the emulator's clock on; returns the new time (unix seconds)."""
        now: float = self._call("POST", "/clock", {"advance_s": seconds})["now"]
        return now

    def settings(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/settings")
        return result


def _validation_message(response: httpx.Response) -> str:
    """FastAPI's 422 as one line per problem: ``rules.0.http.status: ...``."""
    try:
        detail = response.json().get("detail")
    except ValueError:
        return f"the emulator refused the request: {response.text[:200]}"
    if not isinstance(detail, list):
        return f"the emulator refused the request: {detail}"
    problems = []
    for item in detail[:5]:
        where = ".".join(str(p) for p in item.get("loc", [])[1:])
        problems.append(f"{where}: {item.get('msg')}")
    return "invalid fault rule: " + "; ".join(problems)
