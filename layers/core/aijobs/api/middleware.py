"""The request's context, as pure ASGI middleware (nothing buffered, so streamed bodies and responses pass through).

For each HTTP request: its id (API Gateway's when there is one) in ``request.state``, in every log line written
while it runs, and in ``X-Request-Id``; the body limit, on ``Content-Length`` and on the bytes that actually
arrive; and the last resort that turns an error nobody handled into the typed 500.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aijobs.api.errors import error_response, unexpected
from aijobs.errors import AijobsError, PayloadTooLarge
from aijobs.observability import log_context


def _request_id(scope: Scope) -> str:
    event = scope.get("aws.event") or {}
    return str((event.get("requestContext") or {}).get("requestId") or uuid.uuid4().hex)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the request body is over {limit} bytes", code="body_too_large")


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
        started = answered = False
        received = 0

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if answered:  # the 413 went out while the body arrived: what the app says after is dropped
                return
            if message["type"] == "http.response.start":
                started = True
                MutableHeaders(scope=message).append("X-Request-Id", request_id)
            await send(message)

        async def answer(error: AijobsError) -> None:
            await error_response(error, request_id)(scope, receive, send_with_id)

        async def receive_within_limit() -> Message:
            nonlocal received, answered
            message = await receive()
            if message["type"] == "http.request" and not answered:
                received += len(message.get("body", b""))
                if received > limit:
                    await answer(_too_large(limit))
                    answered = True
                    return {"type": "http.disconnect"}  # the app stops reading; it has nothing more to say
            return message

        with log_context(request_id=request_id):
            length = dict(scope["headers"]).get(b"content-length", b"")
            if length.isdigit() and int(length) > limit:
                await answer(_too_large(limit))
                return
            try:
                await self.app(scope, receive_within_limit, send_with_id)
            except Exception as exc:
                if started:  # the answer is on its way: nothing to add
                    raise
                await answer(exc if isinstance(exc, AijobsError) else unexpected(exc))
