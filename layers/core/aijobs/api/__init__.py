"""The FastAPI application, served by Mangum on Lambda and by uvicorn in the local stack."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from aws_lambda_powertools import Logger
from fastapi import FastAPI, Request, Response

from aijobs.api.errors import error_response, install_error_handlers
from aijobs.api.routes import health, jobs, schedules, webhooks
from aijobs.errors import AijobsError, PayloadTooLarge

logger = Logger(service="aijobs")

# API Gateway takes up to 10 MB; a job is far smaller. Batches of 100 get the larger bound.
MAX_BODY_BYTES = 256 * 1024
MAX_BATCH_BODY_BYTES = 4 * 1024 * 1024


def _request_id(request: Request) -> str:
    event = request.scope.get("aws.event") or {}
    return str((event.get("requestContext") or {}).get("requestId") or uuid.uuid4().hex)


def _body_limit(request: Request) -> int:
    return MAX_BATCH_BODY_BYTES if request.url.path.endswith("/batch") else MAX_BODY_BYTES


def create_app() -> FastAPI:
    app = FastAPI(title="aijobs", version="1", summary="Asynchronous AI-inference jobs")
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(jobs.router)
    app.include_router(schedules.router)
    app.include_router(webhooks.secrets_router)
    app.include_router(webhooks.deliveries_router)

    @app.middleware("http")
    async def request_context(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        request.state.request_id = _request_id(request)
        logger.append_keys(request_id=request.state.request_id)
        length = request.headers.get("content-length", "")
        try:
            if length.isdigit() and int(length) > _body_limit(request):
                raise PayloadTooLarge(f"the request body is over {_body_limit(request)} bytes",
                                      code="body_too_large")
            response = await call_next(request)
        except AijobsError as exc:
            response = error_response(request, exc)
        except Exception:
            logger.exception("unhandled error")
            response = error_response(request, AijobsError("internal error", code="internal"))
        response.headers["X-Request-Id"] = request.state.request_id
        logger.remove_keys(["request_id", "tenant"])
        return response

    return app
