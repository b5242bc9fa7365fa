"""The app factory: ``create_app(runtime)`` builds the FastAPI app over one ``Runtime``.

Extra routers (``/metrics`` and the like) are mounted through ``extra_routers``: each one is
included as it is, after the job and health routes, and so appears in ``/openapi.json`` unless
it says ``include_in_schema=False``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi

from llmbatch.api.cost_models import EstimateJson
from llmbatch.api.models import CreateJobJson, ProblemOut, Result
from llmbatch.api.problems import install_problem_handlers
from llmbatch.api.rate_limit import TokenBuckets
from llmbatch.api.routes import costs, health, jobs, provider_webhooks, validations
from llmbatch.api.settings import ApiConfig
from llmbatch.api.state import ApiState
from llmbatch.bootstrap import Runtime
from llmbatch.service_layer.wakeups import TolerantPublisher
from llmbatch.version import __version__

__all__ = ["create_app"]

DESCRIPTION = """Create and follow bulk LLM jobs run through the providers' native batch APIs.

Authenticate with `Authorization: Bearer <key>` (`llmbatch keys create --tenant T`). Every
job belongs to the key's tenant; another tenant's job answers 404. Errors are RFC 9457
problem details."""


def create_app(rt: Runtime, config: ApiConfig | None = None, *,
               broker_ping: Callable[[], None] | None = None,
               extra_routers: Sequence[APIRouter] = ()) -> FastAPI:
    """The API app over ``rt`` (its publisher is how new work reaches the workers).

    ``rt``'s publisher is made tolerant (``service_layer.wakeups``): once a job, a cancel or a
    retry is committed, a broker that cannot be told is logged, not answered with a 500 (a
    client that resubmits a stored job pays twice); the scheduler tick picks the work up."""
    if not isinstance(rt.publisher, TolerantPublisher):
        rt.publisher = TolerantPublisher(rt.publisher)
    config = config or rt.config.api
    app = FastAPI(title="llmbatch", version=__version__, description=DESCRIPTION,
                  docs_url="/docs", redoc_url=None)
    app.state.llmbatch = ApiState(runtime=rt, config=config,
                                  buckets=TokenBuckets(config.rate_limit_per_s,
                                                       config.rate_limit_burst),
                                  broker_ping=broker_ping)
    install_problem_handlers(app)
    app.include_router(health.router)
    app.include_router(jobs.router)
    app.include_router(costs.router)
    app.include_router(validations.router)
    app.include_router(provider_webhooks.router)
    for router in extra_routers:
        app.include_router(router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's description, plus the schemas only named by hand (the create body, the
    results line, problems) and the bearer scheme on every ``/v1`` operation."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description,
                         routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (CreateJobJson, EstimateJson, Result, ProblemOut):
        found = model.model_json_schema(ref_template="#/components/schemas/{model}",
                                        mode="validation" if model in (CreateJobJson,
                                                                       EstimateJson)
                                        else "serialization")
        components.update(found.pop("$defs", {}))
        components[model.__name__] = found
    schema["components"]["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer",
                   "description": "An API key from `llmbatch keys create`"}}
    for path, operations in schema["paths"].items():
        if path.startswith("/v1/"):
            for operation in operations.values():
                # An operation that states its own (provider webhooks: none) keeps it.
                operation.setdefault("security", [{"bearer": []}])
                # FastAPI's own 422 entry names its HTTPValidationError; ours is a problem.
                if "422" in operation["responses"]:
                    operation["responses"]["422"] = {
                        "description": "Invalid input: where (file, line, field) and why",
                        "content": {"application/problem+json": {
                            "schema": {"$ref": "#/components/schemas/ProblemOut"}}}}
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    app.openapi_schema = schema
    return schema
