"""The request's context, as pure ASGI middleware (nothing buffered, so streamed bodies and responses pass through).

For each HTTP request: its id (API Gateway's or the function URL's when there is one) in ``request.state``, in every
log line written while it runs, and in ``X-Request-Id``; the caller's address; the headers every answer carries; the
body limit, for any framing; the last resort that turns an error nobody handled into the typed 500; and one access
log line when it is over (method, path, status, duration, address, id: never a header, a query string or a body).

In AWS the request context (id, address) comes from API Gateway's event (Mangum) or, behind the streaming front,
from the Lambda Web Adapter, which sends the function URL's context in ``x-amzn-request-context`` and replaces any
header of that name a caller sent. There the TCP peer is the adapter, and ``X-Forwarded-For`` is no address to trust
(a function URL keeps only its leftmost value, which the caller chooses), so the context's address becomes the
request's ``client``, which the failed-authentication bound counts by. Served on this machine (``make run``), a caller
could send that header itself and pick its own id and address: nothing there needs them bounded.

The body limit is applied when the app reads the body, so only routes that take one can answer 413: at the first
read when ``Content-Length`` already says too much, else as soon as the bytes that arrived pass it (a chunked body
has no length to trust), and the rest is never read.
"""

from __future__ import annotations

import ipaddress
import json
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aijobs import __version__
from aijobs.api.errors import error_response, unexpected
from aijobs.errors import AijobsError, PayloadTooLarge
from aijobs.observability import log_context, logger

# On every answer, errors included. Answers are per tenant and change (a job's status, a secret): no cache, shared
# or private, may keep one. nosniff: a client reads JSON as JSON, never as whatever the bytes look like.
SECURITY_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
# Every answer names the aijobs that made it (the API's version is the path's /v1).
VERSION_HEADERS = {"x-aijobs-version": __version__}


ADAPTER_CONTEXT_HEADER = b"x-amzn-request-context"
_PRINTABLE_ID = re.compile(r"[!-~]{1,128}")  # an id as AWS writes one: it goes into a header and every log line
LOGGED_PATH_CHARS = 512  # a request line can be kilobytes of garbage; a route's path is far shorter


def _aws_request_context(scope: Scope) -> dict[str, Any]:
    """API Gateway's request context (Mangum's event), else the function URL's (the Lambda Web Adapter's header)."""
    if (event := scope.get("aws.event")) is not None:
        context = event.get("requestContext")
    else:
        try:
            context = json.loads(dict(scope["headers"]).get(ADAPTER_CONTEXT_HEADER, b"null"))
        except ValueError:
            context = None
    return context if isinstance(context, dict) else {}


def _request_id(context: dict[str, Any]) -> str:
    request_id = context.get("requestId")
    return request_id if isinstance(request_id, str) and _PRINTABLE_ID.fullmatch(request_id) else uuid.uuid4().hex


def _source_ip(context: dict[str, Any]) -> str | None:
    """The caller's address: ``http.sourceIp`` (HTTP API, function URL), or ``identity.sourceIp`` (REST API)."""
    for part in ("http", "identity"):
        section = context.get(part)
        address = section.get("sourceIp") if isinstance(section, dict) else None
        if isinstance(address, str):
            try:
                return str(ipaddress.ip_address(address))
            except ValueError:
                return None
    return None


def _log_access(scope: Scope, status: int | None, started: float) -> None:
    """The request's access log line; its id (and tenant, once authenticated) come from the log context."""
    client = scope.get("client")
    logger.info("request", extra={
        "method": scope["method"], "path": scope["path"][:LOGGED_PATH_CHARS], "status": status,
        "duration_ms": round((time.monotonic() - started) * 1000, 1), "source_ip": client[0] if client else None})


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the request body is over {limit} bytes", code="body_too_large")


def _declared_length(scope: Scope) -> int | None:
    length = dict(scope["headers"]).get(b"content-length", b"")
    if not length.isdigit():
        return None
    return int(length) if len(length) <= 18 else 10**18  # int() of thousands of digits is slow: over any limit


class RequestContext:
    def __init__(self, app: ASGIApp, *, body_limit: Callable[[str], int]) -> None:
        self.app = app
        self.body_limit = body_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started_at = time.monotonic()
        context = _aws_request_context(scope)
        request_id = _request_id(context)
        scope.setdefault("state", {})["request_id"] = request_id
        if address := _source_ip(context):
            scope["client"] = (address, 0)
        limit = self.body_limit(scope["path"])
        declared = _declared_length(scope)
        started = answered = False
        received = 0
        status: int | None = None  # none if the caller left before any answer began

        async def send_with_id(message: Message) -> None:
            nonlocal started, status
            if answered:  # the 413 went out while the body arrived: what the app says after is dropped
                return
            if message["type"] == "http.response.start":
                started, status = True, message["status"]
                headers = MutableHeaders(scope=message)
                headers.append("X-Request-Id", request_id)
                headers.update(SECURITY_HEADERS)
                headers.update(VERSION_HEADERS)
                # The caller's rate window, once the request was authenticated and counted (api/deps.py); a
                # stream's start goes through here too, so its headers go out before its first byte.
                headers.update(scope["state"].get("rate_headers") or {})
            await send(message)

        async def answer(error: AijobsError) -> None:
            await error_response(error, request_id)(scope, receive, send_with_id)

        async def refuse() -> Message:
            nonlocal answered
            if not started:  # a response under way (a stream reading for a disconnect) cannot become a 413
                await answer(_too_large(limit))
                answered = True
            return {"type": "http.disconnect"}  # the app stops reading; it has nothing more to say

        async def receive_within_limit() -> Message:
            nonlocal received
            if answered:
                return {"type": "http.disconnect"}
            if received == 0 and declared is not None and declared > limit:
                return await refuse()  # nothing of the body is read
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    return await refuse()
            return message

        with log_context(request_id=request_id):
            try:
                await self.app(scope, receive_within_limit, send_with_id)
            except Exception as exc:
                if started:  # the answer is on its way: nothing to add
                    raise
                await answer(exc if isinstance(exc, AijobsError) else unexpected(exc))
            finally:
                _log_access(scope, status, started_at)
