"""Errors to HTTP, in one place: every error, whatever raised it, answers the same typed body.

``{"error": {type, code, message, retryable, request_id}}``, with ``Retry-After`` when the error says when,
``WWW-Authenticate`` on 401 and ``Allow`` on 405. Anything unexpected is logged and answers a bare 500.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from aijobs.errors import (
    AijobsError,
    AuthenticationError,
    MalformedRequest,
    MethodNotAllowed,
    NotFound,
    from_validation_errors,
)
from aijobs.models.common import ErrorBody, ErrorResponse
from aijobs.observability import logger

INTERNAL = AijobsError("internal error", code="internal")


def _error_headers(error: AijobsError, headers: dict[str, str] | None) -> dict[str, str]:
    """The headers every error answer carries, whatever its body's shape: the error's own, ``Retry-After`` when it
    says when, ``WWW-Authenticate`` on 401."""
    headers = {**error.headers, **(headers or {})}
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    if error.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return headers


def error_response(error: AijobsError, request_id: str | None, headers: dict[str, str] | None = None) -> JSONResponse:
    body = ErrorResponse(error=ErrorBody(**error.detail().model_dump(), request_id=request_id)).model_dump()
    return JSONResponse(body, status_code=error.status, headers=_error_headers(error, headers))


# OpenAI's error types, by status: its SDKs raise their exceptions by status, and show the type.
_OPENAI_TYPES = {401: "invalid_request_error", 429: "rate_limit_error"}


def openai_error_response(error: AijobsError, request_id: str | None, headers: dict[str, str] | None = None,
                          *, param: str | None = None) -> JSONResponse:
    """An error on ``/v1/responses``, in OpenAI's shape: ``{"error": {message, type, param, code}, request_id}``;
    a bad request is a 400 there, not a 422."""
    status = 400 if error.status == 422 else error.status
    kind = ("insufficient_quota" if error.type == "quota_exceeded" else "server_error" if status >= 500
            else _OPENAI_TYPES.get(status, "invalid_request_error"))
    body = {"error": {"message": error.message, "type": kind, "param": param, "code": error.code},
            "request_id": request_id}
    return JSONResponse(body, status_code=status, headers=_error_headers(error, headers))


def is_openai_path(path: str) -> bool:
    """The routes of OpenAI's face (/v1/responses, /v1/models, /v1/embeddings), whose errors are in OpenAI's shape."""
    return path.startswith(("/v1/responses", "/v1/models", "/v1/embeddings"))


def is_openai_face(request: Request) -> bool:
    return is_openai_path(request.url.path)


def unexpected(exc: BaseException) -> AijobsError:
    """The public face of an error nobody planned for: logged here, a bare 500 for the client."""
    logger.exception("unhandled error", exc_info=exc)
    return INTERNAL


def _allowed_methods(request: Request) -> str:
    """Every method some route of this path answers (Starlette's 405 names only the first route of the path)."""
    routes: list[APIRoute] = request.app.state.api_routes
    return ", ".join(sorted({method for route in routes if route.path_regex.match(request.scope["path"])
                             for method in route.methods or ()}))


def _from_http(request: Request, exc: HTTPException) -> tuple[AijobsError, dict[str, str]]:
    if exc.status_code == 404:
        return NotFound("no such route", code="route_not_found"), {}
    if exc.status_code == 405:
        return (MethodNotAllowed(f"{request.method} is not allowed on this route", code="method_not_allowed"),
                {"Allow": _allowed_methods(request)})
    if exc.status_code == 401:
        return AuthenticationError(str(exc.detail)), {}
    if exc.status_code == 400:  # FastAPI's own, for a body json.loads raised on with more than a syntax error
        return MalformedRequest("the request body is not JSON that can be read (not UTF-8, nested too deep, or a "
                                "number with too many digits)", code="invalid_json"), {}
    return MalformedRequest(str(exc.detail), code=f"http_{exc.status_code}"), {}


def install_error_handlers(app: FastAPI) -> None:
    def request_id(request: Request) -> str | None:
        return getattr(request.state, "request_id", None)

    def answer(request: Request, error: AijobsError, headers: dict[str, str] | None = None,
               param: str | None = None) -> JSONResponse:
        if is_openai_face(request):
            return openai_error_response(error, request_id(request), headers, param=param)
        return error_response(error, request_id(request), headers)

    async def on_domain(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AijobsError)
        return answer(request, exc)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = exc.errors()
        first = [str(part) for part in (errors[0].get("loc") or ()) if part != "body"] if errors else []
        return answer(request, from_validation_errors(errors), param=".".join(first) or None)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        error, headers = _from_http(request, exc)
        return answer(request, error, headers)

    app.add_exception_handler(AijobsError, on_domain)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)
