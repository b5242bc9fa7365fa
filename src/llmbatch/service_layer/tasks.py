"""Names of the lifecycle tasks. Services publish these; ``worker/`` binds them to Celery."""

from __future__ import annotations

__all__ = ["FETCH", "FINALIZE", "PLAN", "POLL", "SUBMIT", "TICK", "WEBHOOKS"]

PLAN = "llmbatch.plan"
SUBMIT = "llmbatch.submit"
POLL = "llmbatch.poll"
FETCH = "llmbatch.fetch"
FINALIZE = "llmbatch.finalize"
TICK = "llmbatch.tick"
WEBHOOKS = "llmbatch.webhooks.deliver"
