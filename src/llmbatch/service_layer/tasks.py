"""Names of the lifecycle tasks. Services publish these; ``worker/`` binds them to Celery."""

from __future__ import annotations

__all__ = ["CLEANUP", "FETCH", "FINALIZE", "PLAN", "POLL", "SUBMIT", "TICK", "WEBHOOKS"]

PLAN = "llmbatch.plan"
SUBMIT = "llmbatch.submit"
POLL = "llmbatch.poll"
FETCH = "llmbatch.fetch"
FINALIZE = "llmbatch.finalize"
CLEANUP = "llmbatch.cleanup"  # delete a fetched batch's data at the provider
TICK = "llmbatch.tick"
WEBHOOKS = "llmbatch.webhooks.deliver"
