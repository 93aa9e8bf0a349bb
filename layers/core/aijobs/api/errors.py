"""Errors to HTTP, in one place: every error answers the same typed body."""

from __future__ import annotations

from aws_lambda_powertools import Logger
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from aijobs.errors import AijobsError, AuthenticationError, MalformedRequest, NotFound
from aijobs.jobs import error_from_validation

logger = Logger(service="aijobs")


def error_response(request: Request, error: AijobsError) -> JSONResponse:
    body = {"error": {**error.to_dict(), "request_id": getattr(request.state, "request_id", None)}}
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else {}
    if error.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(body, status_code=error.status, headers=headers)


def _from_http(exc: HTTPException) -> AijobsError:
    if exc.status_code == 404:
        return NotFound("no such route", code="route_not_found")
    if exc.status_code == 405:
        return MalformedRequest("method not allowed on this route", code="method_not_allowed")
    if exc.status_code == 401:
        return AuthenticationError(str(exc.detail))
    return MalformedRequest(str(exc.detail), code=f"http_{exc.status_code}")


def install_error_handlers(app: FastAPI) -> None:
    async def on_domain(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AijobsError)
        return error_response(request, exc)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(request, error_from_validation(exc.errors()))

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return error_response(request, _from_http(exc))

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error")
        return error_response(request, AijobsError("internal error", code="internal"))

    app.add_exception_handler(AijobsError, on_domain)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
