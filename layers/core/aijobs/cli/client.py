"""The CLI's HTTP client of the aijobs API: one error type, bounded waits on 429/503, SSE streams that resume."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse import ServerSentEvent, connect_sse

FINAL_EVENTS = frozenset({"completed", "failed", "cancelled"})
FINISHED = frozenset({"completed", "failed", "cancelled"})

# 429 (rates), 503 (overloaded) and 409 (the same idempotency key still in flight) carry Retry-After: wait and
# try again, at most this many times and never longer than MAX_WAIT_S at once (a daily budget's wait until
# midnight is an error, not a wait).
WAIT_STATUSES = frozenset({409, 429, 503})
# A request told to come back (429, 503, or 409 while the same Idempotency-Key's first try still runs: a chunk of
# 100 jobs can take the server several seconds) waits as told, each wait at most MAX_WAIT_S, all of them at most
# MAX_WAITED_S; past that its error is the answer.
MAX_WAIT_S = 65.0
MAX_WAITED_S = 180.0
TRANSPORT_RETRIES = 3
STREAM_RECONNECTS = 8


@dataclass
class ApiError(Exception):
    """An error answered by the API (its error body), or an API that could not be reached."""

    type: str
    code: str | None
    message: str
    request_id: str | None = None
    status: int | None = None

    def line(self) -> str:
        code = f" {self.code}" if self.code else ""
        request = f" (request {self.request_id})" if self.request_id else ""
        return f"error: {self.type}{code}: {self.message}{request}"

    def __str__(self) -> str:
        return self.line()


def error_from(response: httpx.Response) -> ApiError:
    """The API's error body as an ApiError; a body that is not one (a proxy's page) keeps the HTTP status."""
    request_id = response.headers.get("x-request-id")
    try:
        error = response.json().get("error")
    except ValueError:
        error = None
    if not isinstance(error, dict):
        return ApiError("http_error", str(response.status_code), response.reason_phrase or "unexpected answer",
                        request_id, response.status_code)
    return ApiError(str(error.get("type", "error")), error.get("code"), str(error.get("message", "")),
                    error.get("request_id") or request_id, response.status_code)


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


Notify = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


class ApiClient:
    """A thin client of the aijobs API for the CLI. ``notify`` hears about waits and reconnections."""

    def __init__(self, url: str, key: str, *, http: httpx.Client | None = None, notify: Notify = _quiet,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.url = url.rstrip("/")
        self.http = http or httpx.Client(base_url=self.url, timeout=httpx.Timeout(60, connect=10))
        self.http.headers["Authorization"] = f"Bearer {key}"
        self.notify = notify
        self.sleep = sleep

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
                headers: dict[str, str] | None = None, safe: bool | None = None) -> Any:
        """One API call; its JSON answer (None for 204), or ApiError. ``safe`` requests (GET, keyed POSTs) are
        sent again after a transport error."""
        safe = method == "GET" or bool(headers and "Idempotency-Key" in headers) if safe is None else safe
        waited, failures = 0.0, 0
        while True:
            try:
                response = self.http.request(method, path, json=json, params=params, headers=headers)
            except httpx.TransportError as exc:
                failures += 1
                # nothing listening is an answer at once; a dropped connection is worth another try
                if not safe or failures > TRANSPORT_RETRIES or isinstance(exc, httpx.ConnectError):
                    raise self.unreachable(exc) from None
                self.notify(f"connection failed ({type(exc).__name__}); trying again")
                self.sleep(0.5 * 2 ** failures)
                continue
            delay = retry_after(response)
            if response.status_code in WAIT_STATUSES and delay is not None and delay <= MAX_WAIT_S \
                    and waited + delay <= MAX_WAITED_S:
                waited += delay
                reason = error_from(response)
                self.notify(f"{reason.type} {reason.code or ''}".strip() + f": waiting {delay:g} s")
                self.sleep(delay)
                continue
            if response.status_code >= 400:
                raise error_from(response)
            return response.json() if response.content else None

    def unreachable(self, exc: Exception) -> ApiError:
        return ApiError("connection", "unreachable", f"cannot reach {self.url}: {exc or type(exc).__name__}")

    def events(self, job_id: str, *, last_event_id: str | None = None) -> Iterator[ServerSentEvent]:
        """The job's server-sent events up to the final one; a dropped connection (or a stream the server closed
        at its time limit) is resumed with ``Last-Event-ID``, so no event is seen twice or lost."""
        failures = 0
        while True:
            headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
            try:
                with connect_sse(self.http, "GET", f"/v1/jobs/{job_id}/stream", headers=headers,
                                 timeout=httpx.Timeout(60, connect=10)) as source:
                    if source.response.status_code >= 400:
                        source.response.read()
                        raise error_from(source.response)
                    for event in source.iter_sse():
                        failures = 0
                        if event.id:
                            last_event_id = event.id
                        if not event.data:  # a `retry:` line alone is no event (the HTML standard's rule)
                            continue
                        yield event
                        if event.event in FINAL_EVENTS:
                            return
                # closed before the final event (the server's time limit): reconnect, as the server asks
                failure: Exception = httpx.RemoteProtocolError("the stream ended before the job did")
            except httpx.TransportError as exc:
                failure = exc
            failures += 1
            if failures > STREAM_RECONNECTS:
                raise self.unreachable(failure) from None
            self.notify(f"stream dropped; resuming after event {last_event_id or 'none'}")
            self.sleep(min(0.25 * 2 ** failures, 5.0))
