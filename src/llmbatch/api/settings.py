"""The REST API's settings: the ``api`` section of ``llm_config.yaml``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ApiConfig"]


class ApiConfig(BaseModel):
    """How ``llmbatch api`` listens and what it accepts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    max_body_bytes: int = Field(
        1 << 30, gt=0, description="Largest request body (a JSONL upload included); 413 above")
    rate_limit_per_s: float = Field(
        50.0, gt=0, description="Sustained requests per second per API key (429 above)")
    rate_limit_burst: int = Field(200, gt=0, description="Requests a key may make at once")
    auth: bool = Field(
        True, description="Require 'Authorization: Bearer <key>'; off, every caller is the "
                          "local user of the default tenant (only for a private loopback port)")
    upload_dir: str | None = Field(
        None, description="Where uploads are spooled before validation (default: the system's "
                          "temporary directory); needs room for the largest upload")
    public_url: str | None = Field(
        None, pattern=r"^https?://[^\s/]+",
        description="Where providers reach this API from outside (https://host[:port]); "
                    "provider webhooks are registered at "
                    "<public_url>/v1/provider-webhooks/<provider> (docs/webhooks.md)")
    sse_poll_s: float = Field(0.5, gt=0, description="How often a live event stream looks")
    sse_keepalive_s: float = Field(15.0, gt=0, description="Comment line sent when idle")
