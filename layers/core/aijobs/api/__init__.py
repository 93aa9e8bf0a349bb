"""The FastAPI application, served by Mangum on Lambda and by uvicorn in the local stack."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.routing import APIRoute

from aijobs.api.errors import install_error_handlers
from aijobs.api.middleware import RequestContext
from aijobs.api.routes import admin, health, jobs, prompts, schedules, streams, usage, webhooks

# API Gateway takes up to 10 MB; a job is far smaller. Batches of 100 get the larger bound.
MAX_BODY_BYTES = 256 * 1024
MAX_BATCH_BODY_BYTES = 4 * 1024 * 1024


def body_limit(path: str) -> int:
    return MAX_BATCH_BODY_BYTES if path.endswith("/batch") else MAX_BODY_BYTES


def create_app() -> FastAPI:
    app = FastAPI(title="aijobs", version="1", summary="Asynchronous AI-inference jobs")
    install_error_handlers(app)
    routers = (health.router, jobs.router, streams.router, schedules.router, prompts.router, webhooks.secrets_router,
               webhooks.deliveries_router, usage.router, admin.router)
    for router in routers:
        app.include_router(router)
    app.state.api_routes = [route for router in routers for route in router.routes if isinstance(route, APIRoute)]
    app.add_middleware(RequestContext, body_limit=body_limit)
    return app
