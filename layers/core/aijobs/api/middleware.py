"""The request's context, as pure ASGI middleware (nothing buffered, so streamed bodies and responses pass through).

For each HTTP request: its id (API Gateway's when there is one) in ``request.state``, in every log line written
while it runs, and in ``X-Request-Id``; the headers every answer carries; the body limit, for any framing; and the
last resort that turns an error nobody handled into the typed 500.

The body limit is applied when the app reads the body, so only routes that take one can answer 413: at the first
read when ``Content-Length`` already says too much, else as soon as the bytes that arrived pass it (a chunked body
has no length to trust), and the rest is never read.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aijobs.api.errors import error_response, unexpected
from aijobs.errors import AijobsError, PayloadTooLarge
from aijobs.observability import log_context

# On every answer, errors included. Answers are per tenant and change (a job's status, a secret): no cache, shared
# or private, may keep one. nosniff: a client reads JSON as JSON, never as whatever the bytes look like.
SECURITY_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def _request_id(scope: Scope) -> str:
    event = scope.get("aws.event") or {}
    return str((event.get("requestContext") or {}).get("requestId") or uuid.uuid4().hex)


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
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        limit = self.body_limit(scope["path"])
        declared = _declared_length(scope)
        started = answered = False
        received = 0

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if answered:  # the 413 went out while the body arrived: what the app says after is dropped
                return
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                headers.append("X-Request-Id", request_id)
                headers.update(SECURITY_HEADERS)
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
