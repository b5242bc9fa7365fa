"""``webhooks:`` in the configuration (its own module: config.py only names it)."""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field, SecretStr

__all__ = ["WebhooksConfig"]


class WebhooksConfig(BaseModel):
    """Where job notifications may go and how they are delivered (``docs/webhooks.md``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allowed_hosts: tuple[str, ...] = Field(
        (), description="Host names a webhook_url may name (``*.example.com`` for a domain); "
                        "empty: no webhooks")
    allow_private_addresses: bool = Field(
        False, description="Allow hosts that resolve to loopback, private or link-local "
                           "addresses (refused by default: SSRF)")
    secret: SecretStr | None = Field(
        None, description="Signing secret, ``whsec_`` + base64 (Standard Webhooks)")
    secret_env: str | None = Field("LLMBATCH_WEBHOOK_SECRET",
                                   description="Environment variable holding the secret")
    timeout_s: float = Field(10.0, gt=0, le=60)
    base_delay_s: float = Field(5.0, gt=0)
    max_delay_s: float = Field(3600.0, gt=0)
    give_up_after_s: float = Field(
        86400.0, gt=0, le=7 * 86400,
        description="A delivery failing this long after its event is given up (logged)")
    batch_events: bool = Field(False, description="Also notify when each provider batch ends")

    def resolved_secret(self) -> str | None:
        if self.secret_env and os.environ.get(self.secret_env):
            return os.environ[self.secret_env]
        return self.secret.get_secret_value() if self.secret else None
