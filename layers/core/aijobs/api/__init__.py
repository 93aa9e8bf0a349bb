"""The FastAPI application, served by Mangum on Lambda and by uvicorn in the local stack."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from aijobs import console
from aijobs.api.errors import install_error_handlers, is_openai_path
from aijobs.api.middleware import RequestContext
from aijobs.api.routes import (
    admin,
    batches,
    collections,
    embeddings,
    health,
    jobs,
    models,
    prompts,
    responses,
    schedules,
    streams,
    usage,
    webhooks,
)

# API Gateway takes up to 10 MB; a job is far smaller. Batches of 100 get the larger bound.
MAX_BODY_BYTES = 256 * 1024
MAX_BATCH_BODY_BYTES = 4 * 1024 * 1024


def body_limit(path: str) -> int:
    return MAX_BATCH_BODY_BYTES if path.endswith("/batch") else MAX_BODY_BYTES


def create_app() -> FastAPI:
    app = FastAPI(title="aijobs", version="1", summary="Asynchronous AI-inference jobs")
    install_error_handlers(app)
    routers = (health.router, jobs.router, streams.router, responses.router, models.router, embeddings.router,
               schedules.router, prompts.router, batches.router, collections.router,
               webhooks.secrets_router, webhooks.endpoints_router, webhooks.deliveries_router, usage.router,
               admin.router)
    for router in routers:
        app.include_router(router)
    app.include_router(console.router)  # the web console: pages that call the API above (not in its schema)
    app.state.api_routes = [route for router in (*routers, console.router) for route in router.routes
                            if isinstance(route, APIRoute)]
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    app.add_middleware(RequestContext, body_limit=body_limit)
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, without the 422 it adds to routes that never send one: OpenAI's face answers a bad request
    with a 400 in OpenAI's shape (api/errors.py), and FastAPI's validation body is never sent."""
    if app.openapi_schema is None:
        document = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
        for path, operations in document["paths"].items():
            if is_openai_path(path):
                for operation in operations.values():
                    operation["responses"].pop("422", None)
        schemas = document.get("components", {}).get("schemas", {})
        if "HTTPValidationError" not in json.dumps(document["paths"]):
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
        app.openapi_schema = document
    return app.openapi_schema
