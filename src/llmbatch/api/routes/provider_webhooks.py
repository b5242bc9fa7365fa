"""``POST /v1/provider-webhooks/{provider}``: batch webhooks from the providers, an early
wake-up for the poller.

Register ``{api.public_url}/v1/provider-webhooks/<name>`` at the provider (how, per provider:
docs/webhooks.md) and put its signing secret in
``providers.<name>.webhook_secret_env``. No API key: the vendor's signature is the
authentication, checked by the provider's adapter (``read_webhook``) with the vendor's scheme.
A forged delivery is a 401, a stale or malformed one a 400 (both problem details; the vendor
retries them, harmlessly); a provider without a configured secret is a 404. A valid one makes
the batch it names due for a poll at once (``service_layer.provider_webhooks``): polling stays
the source of truth, so a lost webhook only delays. A repeat of a delivery already acted on
(same ``webhook-id``) is a 200 ``duplicate`` that wakes nothing.
"""

from __future__ import annotations

from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from llmbatch.api.auth import caller
from llmbatch.api.problems import (
    PROBLEM_MEDIA_TYPE,
    PROBLEM_SCHEMA_REF,
    ApiProblem,
    problem_responses,
)
from llmbatch.api.state import api_state
from llmbatch.bootstrap import Runtime
from llmbatch.errors import ConfigError, InputError
from llmbatch.providers.webhooks import WebhookRejected, WebhooksUnsupported
from llmbatch.service_layer.api_keys import Principal
from llmbatch.service_layer.provider_webhooks import read_and_wake

__all__ = ["MAX_BODY_BYTES", "router"]

log = structlog.get_logger("llmbatch.api.provider_webhooks")
router = APIRouter(prefix="/v1", tags=["provider webhooks"])
MAX_BODY_BYTES = 256 * 1024  # batch events are a few hundred bytes


class WebhookAck(BaseModel):
    """What the provider gets back: accepted, and how many of our batches it woke."""

    status: str = Field(description="'accepted'; 'ignored' for an event about no batch; "
                                    "'duplicate' for a delivery already acted on (same "
                                    "webhook-id): nothing done again")
    batches: int = Field(0, description="Our batches made due for a poll")


class WebhookEndpointOut(BaseModel):
    """What to register at one provider so that its batch events reach this API."""

    provider: str
    url: str | None = Field(description="The URL to register (null without api.public_url)")
    events: list[str] = Field(description="The events to subscribe to")


def _problem(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": PROBLEM_SCHEMA_REF}}}}


def _receive(rt: Runtime, provider: str, body: bytes, headers: dict[str, str]) -> WebhookAck:
    secret = rt.config.provider(provider).resolved_webhook_secret()
    if not secret:
        raise ApiProblem(404, f"webhooks from {provider!r} are not enabled (set "
                              f"providers.{provider}.webhook_secret_env)")
    try:
        received = read_and_wake(rt, provider, secret, body, headers)
    except (WebhooksUnsupported, InputError, ConfigError) as exc:
        raise ApiProblem(404, f"{provider!r} sends no webhooks llmbatch reads") from exc
    except WebhookRejected as exc:
        log.warning("llmbatch.provider_webhook.refused", provider=provider, reason=exc.reason,
                    stale=exc.stale)
        raise ApiProblem(401 if exc.forged else 400, f"webhook refused: {exc.reason}") from exc
    return WebhookAck(status=received.status, batches=len(received.batches))


@router.post(
    "/provider-webhooks/{provider}", response_model=WebhookAck,
    summary="Receive a provider's batch webhook (signed by the provider, no API key)",
    responses={400: _problem("Stale timestamp, or a body or headers that cannot be read"),
               401: _problem("The signature does not match the configured secret"),
               404: _problem("No webhook secret configured for this provider, or it sends "
                             "no webhooks"),
               413: _problem("The body is over the size cap")},
    openapi_extra={"security": []})
async def receive_provider_webhook(provider: str, request: Request) -> WebhookAck:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ApiProblem(413, f"a webhook body is at most {MAX_BODY_BYTES} bytes")
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise ApiProblem(413, f"a webhook body is at most {MAX_BODY_BYTES} bytes")
    state = api_state(request)
    ack: WebhookAck = await run_in_threadpool(_receive, state.runtime, provider, body,
                                              dict(request.headers))
    return ack


def _endpoints(rt: Runtime, public_url: str | None) -> list[WebhookEndpointOut]:
    out = []
    for name in sorted(rt.config.providers):
        if not rt.config.provider(name).resolved_webhook_secret():
            continue
        try:
            events = sorted(rt.registry.get(name).webhook_events)
        except (InputError, ConfigError):  # configured but not installed: nothing to say
            continue
        if events:
            base = public_url.rstrip("/") if public_url else None
            out.append(WebhookEndpointOut(
                provider=name, events=events,
                url=f"{base}/v1/provider-webhooks/{name}" if base else None))
    return out


@router.get("/provider-webhooks", response_model=list[WebhookEndpointOut],
            summary="The provider webhook endpoints to register, for providers with a secret",
            responses=problem_responses(401, 429))
async def list_provider_webhooks(request: Request,
                                 _: Annotated[Principal, Depends(caller)]
                                 ) -> list[WebhookEndpointOut]:
    state = api_state(request)
    found: list[WebhookEndpointOut] = await run_in_threadpool(
        _endpoints, state.runtime, state.config.public_url)
    return found
