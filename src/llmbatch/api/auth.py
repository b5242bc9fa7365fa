"""Who is calling: ``Authorization: Bearer <key>`` resolved to a tenant, and the per-key rate
limit (its buckets: ``api/rate_limit.py``).
"""

from __future__ import annotations

import math

from fastapi import Request

from llmbatch.api.problems import ApiProblem
from llmbatch.api.state import api_state
from llmbatch.service_layer.api_keys import Principal, authenticate

__all__ = ["caller"]

LOCAL_USER = Principal(tenant="default", admin=True)


def caller(request: Request) -> Principal:
    """The dependency every job route takes: the authenticated, rate-limited caller."""
    state = api_state(request)
    if not state.config.auth:
        return LOCAL_USER
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    principal = authenticate(state.runtime, key.strip()) if scheme.lower() == "bearer" else None
    if principal is None:
        raise ApiProblem(401, "a valid API key is required: 'Authorization: Bearer <key>' "
                              "(create one with: llmbatch keys create --tenant T)",
                         headers={"WWW-Authenticate": 'Bearer realm="llmbatch"'})
    wait = state.buckets.take(principal.key_id or principal.tenant)
    if wait > 0:
        raise ApiProblem(429, "rate limit exceeded for this API key",
                         headers={"Retry-After": str(max(1, math.ceil(wait)))})
    return principal
