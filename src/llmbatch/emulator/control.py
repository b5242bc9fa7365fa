"""The control endpoint, ``/_emulator/...``: how tests and operators steer a running emulator.

    GET    /_emulator/health             {"status": "ok"}
    GET    /_emulator/stats              counters (see ``stats.Stats.snapshot``)
    GET    /_emulator/faults             {"seed": int, "rules": [rule + remaining + fired]}
    POST   /_emulator/faults             {"rules": [rule, ...], "mode": "replace"|"append",
                                          "seed": int | null}  -> same as GET
    DELETE /_emulator/faults             remove every rule
    POST   /_emulator/reset              {"faults": true, "stats": true, "state": false}
    GET    /_emulator/clock              {"now": unix seconds}
    POST   /_emulator/clock              {"advance_s": seconds}  -> {"now": ...}
    GET    /_emulator/settings           the settings the emulator started with
    POST   /_emulator/webhooks           {"provider": "openai"|"gemini", "url": str | null,
                                          "secret": "whsec_..."}  -> {"status": "ok"}
    POST   /_emulator/webhooks/flush     send batch-end webhooks now -> {"sent", "failed"}

Rules are the models of ``faults`` (``kind``: http | delay | item_errors | fail_batch |
expire | stuck); a malformed body gets FastAPI's 422 with the offending field. It needs no
API key: the emulator listens on loopback for tests.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from llmbatch.emulator.faults import FaultRule
from llmbatch.emulator.runtime import EmulatorRuntime
from llmbatch.emulator.settings import WebhookTarget

__all__ = ["build_control_router"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SetFaults(_Body):
    """Body of ``POST /_emulator/faults``."""

    rules: list[FaultRule] = Field(default_factory=list)
    mode: Literal["replace", "append"] = "replace"
    seed: int | None = None


class Reset(_Body):
    """Body of ``POST /_emulator/reset``."""

    faults: bool = True
    stats: bool = True
    state: bool = False


class AdvanceClock(_Body):
    """Body of ``POST /_emulator/clock``."""

    advance_s: float = Field(ge=0)


class SetWebhook(_Body):
    """Body of ``POST /_emulator/webhooks``: a provider's batch-end webhook target."""

    provider: Literal["openai", "gemini"]
    url: str | None = None
    secret: SecretStr | None = None


def build_control_router(runtime: EmulatorRuntime) -> APIRouter:
    """Routes bound to one runtime."""
    router = APIRouter()

    def faults_view() -> dict[str, Any]:
        return {"seed": runtime.settings.faults.seed, "rules": runtime.faults.describe()}

    @router.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/stats")
    def stats() -> dict[str, Any]:
        return runtime.stats.snapshot()

    @router.get("/faults")
    def get_faults() -> dict[str, Any]:
        return faults_view()

    @router.post("/faults")
    def set_faults(body: SetFaults) -> dict[str, Any]:
        runtime.faults.set_rules(body.rules, mode=body.mode)
        if body.seed is not None:
            runtime.faults.reseed(body.seed)
        return faults_view()

    @router.delete("/faults")
    def clear_faults() -> dict[str, Any]:
        runtime.faults.set_rules([], mode="replace")
        return faults_view()

    @router.post("/reset")
    def reset(body: Reset | None = None) -> dict[str, str]:
        body = body or Reset()
        runtime.reset(faults=body.faults, stats=body.stats, state=body.state)
        return {"status": "ok"}

    @router.get("/clock")
    def get_clock() -> dict[str, float]:
        return {"now": runtime.clock.now()}

    @router.post("/clock", response_model=None)
    def advance_clock(body: AdvanceClock) -> dict[str, float] | JSONResponse:
        try:
            return {"now": runtime.advance_clock(body.advance_s)}
        except TypeError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=409)

    @router.post("/webhooks", response_model=None)
    def set_webhook(body: SetWebhook) -> dict[str, str] | JSONResponse:
        if (body.url is None) != (body.secret is None):
            return JSONResponse({"detail": "give both url and secret, or neither"},
                                status_code=422)
        target = None if body.url is None or body.secret is None else WebhookTarget(
            url=body.url, secret=body.secret)
        runtime.webhooks.configure(body.provider, target)
        return {"status": "ok"}

    @router.post("/webhooks/flush")
    def flush_webhooks() -> dict[str, int]:
        return runtime.webhooks.flush()

    @router.get("/settings")
    def settings() -> dict[str, Any]:
        return runtime.settings.model_dump(mode="json")

    return router
