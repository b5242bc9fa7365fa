"""``/healthz`` (the process answers) and ``/readyz`` (its database and broker answer): what a
load balancer or an orchestrator probes. Neither needs a key."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import text

from llmbatch.api.problems import ApiProblem, problem_responses
from llmbatch.api.state import ApiState, api_state

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive",
            responses={200: {"content": {"application/json": {"example": {"status": "ok"}}}}})
def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _check(state: ApiState) -> dict[str, Any]:
    problems = []
    try:
        with state.runtime.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to reach the database
        problems.append(f"database: {type(exc).__name__}")
    if state.broker_ping is not None:
        try:
            state.broker_ping()
        except Exception as exc:  # any failure to reach the broker
            problems.append(f"broker: {type(exc).__name__}")
    if problems:
        raise ApiProblem(503, "not ready: " + "; ".join(problems))
    return {"status": "ready", "database": "ok",
            "broker": "ok" if state.broker_ping is not None else "none"}


@router.get("/readyz", summary="The database and the broker can be reached",
            responses={200: {"content": {"application/json": {"example": {
                "status": "ready", "database": "ok", "broker": "ok"}}}},
                       **problem_responses(503)})
async def readyz(request: Request) -> dict[str, Any]:
    result: dict[str, Any] = await run_in_threadpool(_check, api_state(request))
    return result
