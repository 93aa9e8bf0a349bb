"""GET /v1/jobs/{id}/stream: a job's events (aijobs/streams.py) as server-sent events, through sse-starlette."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query
from sse_starlette import EventSourceResponse, ServerSentEvent

from aijobs.api.deps import JobId, JobView, JobViewDep, ServicesDep, TenantDep
from aijobs.api.responses import errors
from aijobs.streams import WAITING_NOTE_S, JobEvent, JobEvents

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=errors(401, 429, 500))

# How long an EventSource client waits before it reconnects (it then sends Last-Event-ID).
RETRY_MS = 1000
MAX_EVENT_ID = 10**15
EventId = Annotated[int | None, Query(ge=0, le=MAX_EVENT_ID, description="resume after this event (as Last-Event-ID)")]
EventIdHeader = Annotated[int | None, Header(alias="Last-Event-ID", ge=0, le=MAX_EVENT_ID)]


# One event of the stream (comments, such as heartbeats, are not events).
_EVENT_SCHEMA = {"type": "object", "required": ["id", "event", "data"], "properties": {
    "id": {"type": "string", "pattern": "^[0-9]+$"},
    "event": {"enum": ["status", "delta", "completed", "failed", "cancelled"]},
    "data": {"type": "string", "description": "JSON: {status, attempt?}, {text}, or the whole job"},
    "retry": {"type": "integer"}}}


def job_events(svc: ServicesDep) -> JobEvents:
    return svc.job_events


def _data(value: dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def to_sse(event: JobEvent, *, view: JobView) -> ServerSentEvent:
    """One event in SSE framing: `status`, `delta`, or the final one named after the outcome (the whole job)."""
    if event.kind == "final" and event.job is not None:
        return ServerSentEvent(view(event.job).model_dump_json(), id=str(event.id),
                               event=event.status.value)
    if event.kind == "delta":
        return ServerSentEvent(_data({"text": event.text}), id=str(event.id), event="delta")
    status = {"status": event.status.value, **({"attempt": event.attempt} if event.attempt else {})}
    return ServerSentEvent(_data(status), id=str(event.id), event="status")


async def _encode(events: AsyncIterator[JobEvent], *, job_id: str, view: JobView,
                  settings_max_s: int) -> AsyncIterator[ServerSentEvent]:
    # The first bytes go out at once (a resumed stream may have nothing to send for a while).
    yield ServerSentEvent(comment=f"events of {job_id}", retry=RETRY_MS)
    ended = False
    async for event in events:
        if event.kind == "waiting":  # a note, not an event: EventSource ignores it, a raw reader sees it
            yield ServerSentEvent(comment="queued")
            continue
        ended = event.kind == "final"
        yield to_sse(event, view=view)
    if not ended:
        yield ServerSentEvent(comment=f"closed after {settings_max_s} s: reconnect with Last-Event-ID to go on")


@router.get("/{job_id}/stream", response_class=EventSourceResponse, responses={
    200: {"description": "Server-sent events: `status`, `delta`, then `completed`, `failed` or `cancelled`",
          "content": {"text/event-stream": {"schema": _EVENT_SCHEMA}}}, **errors(404, 422)})
async def stream_job(job_id: JobId, tenant: TenantDep, view: JobViewDep, svc: ServicesDep,
                     events: Annotated[JobEvents, Depends(job_events)], last_event_id: EventId = None,
                     last_event_id_header: EventIdHeader = None) -> EventSourceResponse:
    """The job's events as they happen, each with an `id:` that grows: `status` (`queued`, then `in_progress` per
    attempt), `delta` (`{"text"}`: the output as it is made), and a final event named after the outcome whose data
    is the whole job (output, usage, cost, model, duration). A comment every `AIJOBS_STREAM_HEARTBEAT_S` seconds
    keeps the connection alive, and one (`: queued`) every second while the job waits to start. Reconnect with
    `Last-Event-ID` (or `?last_event_id=`) to get exactly what follows that event; a finished job replays
    everything. Closing the stream does not cancel the job."""
    after = last_event_id_header if last_event_id_header is not None else last_event_id or 0
    job = await events.open(tenant=tenant.id, job_id=job_id)
    settings = svc.settings
    follow = events.follow(job, after=after, until=time.monotonic() + settings.stream_max_s,
                           waiting_every=WAITING_NOTE_S)
    return EventSourceResponse(
        _encode(follow, job_id=job.id, view=view, settings_max_s=settings.stream_max_s),
        ping=settings.stream_heartbeat_s, headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

