"""Delivering the outbox: signed per Standard Webhooks (the ``standardwebhooks`` package),
at least once, with backoff, for at most ``webhooks.give_up_after_s``.

Every attempt of an event sends the same body under the same ``webhook-id`` (the outbox id),
so a receiver deduplicates on it; ``webhook-timestamp`` and ``webhook-signature`` are made
fresh for each attempt (receivers refuse stale timestamps). A 2xx answer delivers the event;
anything else, or no answer, is retried after ``base_delay_s`` doubling up to
``max_delay_s`` (with jitter) until the event is ``give_up_after_s`` old, then it is marked
failed and logged (``llmbatch webhooks replay`` sends it again). Redirects are not followed,
the URL is checked again before each attempt (``webhooks.urls``), and the attempt connects to
an address that check accepted, not to what the name resolves to afterwards
(``webhooks.pinning``). Proxies from the environment are not used (they would connect by
name).
"""

from __future__ import annotations

import json
import random
import time
from datetime import datetime, timedelta

import httpx
import structlog
from standardwebhooks import Webhook

from llmbatch.bootstrap import Runtime
from llmbatch.observability.redaction import redact
from llmbatch.webhooks.outbox import DELIVERED, FAILED, PENDING, OutboxEntry, WebhookOutbox
from llmbatch.webhooks.pinning import PinnedTransport
from llmbatch.webhooks.settings import WebhooksConfig
from llmbatch.webhooks.urls import Resolver, WebhookRefused, check_webhook_target

__all__ = ["deliver_due", "retry_delay"]

log = structlog.get_logger("llmbatch.webhooks")


def retry_delay(config: WebhooksConfig, attempt: int, rng: random.Random) -> float:
    """Seconds before attempt ``attempt + 1``: doubling from ``base_delay_s``, capped, ±20%."""
    delay = min(config.base_delay_s * 2 ** max(attempt - 1, 0), config.max_delay_s)
    return float(delay * rng.uniform(0.8, 1.2))


def deliver_due(rt: Runtime, limit: int = 100, *, resolve: Resolver | None = None) -> int:
    """Attempt every due event once; returns how many were delivered now. ``resolve``: how
    host names are resolved for the SSRF check (the system resolver by default)."""
    config = rt.config.webhooks
    secret = config.resolved_secret()
    with rt.engine.begin() as conn:
        due = WebhookOutbox(conn).due(rt.clock(), limit)
    if not due:
        return 0
    if secret is None:
        log.error("llmbatch.webhooks.no_secret", due=len(due))
        return 0
    signer = Webhook(secret)
    transport = PinnedTransport()
    delivered = 0
    with httpx.Client(timeout=config.timeout_s, follow_redirects=False, trust_env=False,
                      transport=transport) as http:
        for event_id in due:
            with rt.engine.begin() as conn:
                entry = WebhookOutbox(conn).claim(event_id, rt.clock(),
                                                  lease_s=config.timeout_s * 3)
            if entry is not None and _attempt(rt, http, transport, signer, entry, resolve):
                delivered += 1
    return delivered


def _attempt(rt: Runtime, http: httpx.Client, transport: PinnedTransport, signer: Webhook,
             entry: OutboxEntry, resolve: Resolver | None) -> bool:
    config = rt.config.webhooks
    body = json.dumps(entry.payload, separators=(",", ":"), ensure_ascii=False)
    sent_at = rt.clock()
    started = time.perf_counter()
    status: int | None = None
    error: str | None = None
    try:
        transport.pin(check_webhook_target(config, entry.url, resolve))
        headers = {"content-type": "application/json", "user-agent": "llmbatch-webhooks",
                   "webhook-id": entry.id,
                   "webhook-timestamp": str(int(sent_at.timestamp())),
                   "webhook-signature": signer.sign(entry.id, sent_at, body)}
        response = http.post(entry.url, content=body.encode(), headers=headers)
        status = response.status_code
        if not 200 <= status < 300:
            error = f"HTTP {status}"
    except WebhookRefused as exc:
        error = exc.message
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {redact(str(exc))}"[:500]
    took_ms = int((time.perf_counter() - started) * 1000)
    now = rt.clock()
    outcome, next_at = DELIVERED, None
    if error is not None:
        age = now - _aware(entry.created_at, now)
        gone = status == 410  # the receiver says the endpoint is gone for good
        if gone or age >= timedelta(seconds=config.give_up_after_s):
            outcome = FAILED
        else:
            outcome = PENDING
            next_at = now + timedelta(seconds=retry_delay(config, entry.attempts + 1,
                                                          random.Random()))
    with rt.engine.begin() as conn:
        WebhookOutbox(conn).record(entry, at=now, status_code=status, error=error,
                                   duration_ms=took_ms, outcome=outcome,
                                   next_attempt_at=next_at)
    if outcome == FAILED:
        log.error("llmbatch.webhooks.given_up", event_id=entry.id, job_id=entry.job_id,
                  attempts=entry.attempts + 1, error=error)
    elif outcome == PENDING:
        log.info("llmbatch.webhooks.retry", event_id=entry.id, job_id=entry.job_id,
                 attempt=entry.attempts + 1, error=error)
    return outcome == DELIVERED


def _aware(moment: datetime, like: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=like.tzinfo)
