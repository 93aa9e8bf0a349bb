"""/v1/responses: OpenAI's Responses API (background mode, streaming with resume, cancel) over the same jobs.

One submit path, one worker, one store: a response is a job made with ``surface="responses"``, and ``resp_X`` and
``job_X`` name the same record. The official ``openai`` SDK is the client this face is tested with.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, ClassVar

import anyio
from fastapi import APIRouter, Depends, Path, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sse_starlette import EventSourceResponse, ServerSentEvent

from aijobs.api.deps import MAX_ID_CHARS, IdempotentDep, JobsDep, ServicesDep, TenantDep, WaitsDep, cost_header
from aijobs.api.routes.streams import job_events
from aijobs.errors import AijobsError, InvalidRequest, NotFound
from aijobs.jobs import JobService
from aijobs.models.jobs import Job, JobRequest
from aijobs.models.responses import OpenAIErrorResponse, ResponseCreate, job_id_of, response_id_of
from aijobs.responses import input_items, response_events, to_response
from aijobs.streams import JobEvents

_ERRORS = {status: {"model": OpenAIErrorResponse} for status in (400, 401, 404, 429, 500)}
router = APIRouter(prefix="/v1/responses", tags=["responses"], responses=_ERRORS)  # type: ignore[arg-type]
ResponseId = Annotated[str, Path(max_length=MAX_ID_CHARS, description="A response's id (resp_...; job_... too)")]
_JSON = {"application/json": {"schema": {"type": "object"}}}
# One server-sent event: `event: response.<kind>`, its data the event's JSON (type, sequence_number, ...).
_EVENTS = {"text/event-stream": {"schema": {"type": "object", "required": ["event", "data"], "properties": {
    "event": {"type": "string", "pattern": "^response\\."},
    "data": {"type": "string", "description": "JSON: {type, sequence_number, ...} as OpenAI's stream events"}}}}}
_RESPONSE_SCHEMA: dict[str, Any] = {"description": "A Response, as OpenAI's Responses API answers it", "content": _JSON}
# POST with stream: true, and GET with stream=true: OpenAI's response.* events, each with a sequence_number
_RESPONSE_OR_EVENTS: dict[str, Any] = {"description": "A Response, or its response.* server-sent events",
                                       "content": _JSON | _EVENTS}


class ResponseTimeout(AijobsError):
    """A response waited for (background: false) that did not end within the front's wait: it runs on."""

    type = "timeout"
    status = 504
    # The SDK retries a 5xx twice unless told not to, and each retry would start another model run.
    headers: ClassVar[dict[str, str]] = {"x-should-retry": "false"}


def _job_request(body: ResponseCreate) -> JobRequest:
    """The job the response asks for; its validation errors are the request's (400, naming the field)."""
    if body.input is None and body.prompt is None:
        raise RequestValidationError([{"type": "missing", "loc": ("body", "input"), "msg": "Field required",
                                       "input": None}])
    return job_request_of(body.job_fields())


def job_request_of(fields: dict[str, Any]) -> JobRequest:
    """The job an OpenAI-shaped request asks for; its validation errors are the request's (400, naming the field)."""
    try:
        return JobRequest.model_validate(fields)
    except ValidationError as exc:
        raise RequestValidationError([{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]) from None


def _job(jobs: JobService, tenant: str, response_id: str) -> Job:
    """The response's job; a deleted response (its content deleted) is not found, as OpenAI's is."""
    job_id = job_id_of(response_id)
    job = jobs.read_job(tenant=tenant, job_id=job_id) if job_id is not None else None
    if job is None or job.content_deleted_at is not None:
        raise NotFound("no such response", code="response_not_found")
    return job


def _sse(event: dict[str, Any]) -> ServerSentEvent:
    return ServerSentEvent(json.dumps(event, ensure_ascii=False, separators=(",", ":")), event=event["type"])


async def _stream(svc: Any, events: JobEvents, job: Job, *, starting_after: int,
                  cancel_on_close: bool) -> AsyncIterator[ServerSentEvent]:
    """The response's events; a non-background response whose client goes away is cancelled (as OpenAI's are)."""
    ended = False
    try:
        follow = events.follow(job, until=time.monotonic() + svc.settings.stream_max_s)
        async for event in response_events(follow, job, starting_after=starting_after):
            ended = event["type"] in ("response.completed", "response.incomplete", "response.failed",
                                      "response.cancelled")
            yield _sse(event)
    finally:
        if cancel_on_close and not ended:
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(_cancel_quietly, svc.jobs, job)


def _cancel_quietly(jobs: JobService, job: Job) -> None:
    with contextlib.suppress(AijobsError):  # it ended meanwhile: nothing to stop
        jobs.cancel_job(tenant=job.tenant, job_id=job.id)


def _event_stream(svc: Any, events: JobEvents, job: Job, *, starting_after: int = -1,
                  cancel_on_close: bool = False) -> EventSourceResponse:
    return EventSourceResponse(_stream(svc, events, job, starting_after=starting_after,
                                       cancel_on_close=cancel_on_close),
                               ping=svc.settings.stream_heartbeat_s,
                               headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.post("", responses={200: _RESPONSE_OR_EVENTS, **{status: {"model": OpenAIErrorResponse}
                                                            for status in (403, 409, 413, 503, 504)}})
async def create_response(body: ResponseCreate, tenant: TenantDep, jobs: JobsDep, waits: WaitsDep,
                          svc: ServicesDep, idempotent: IdempotentDep,
                          events: Annotated[JobEvents, Depends(job_events)]) -> Any:
    """Create a response. `background: true` answers at once (`queued`); `stream: true` answers OpenAI's event
    stream; otherwise the request waits for the response (up to `AIJOBS_SYNC_WAIT_S`, then a 504 with
    `x-should-retry: false`: the response runs on, fetch it by its id or use background mode)."""
    request = _job_request(body)
    # The answer is the response as submitted (queued): a worker may claim it before a read could see it so.
    result = await run_in_threadpool(
        idempotent.run, "create_response", body=body.model_dump(mode="json", exclude_unset=True),
        create=lambda key: to_response(jobs.submit_job(tenant=tenant.id, request=request, key=key,
                                                       surface="responses", background=body.background)))
    if body.background and not body.stream:
        return JSONResponse(result.answer, headers={"Idempotent-Replayed": "true"} if result.replayed else {})
    job_id = str(job_id_of(result.answer["id"]))
    if body.stream:
        job = await run_in_threadpool(jobs.get_job, tenant=tenant.id, job_id=job_id, consistent=True)
        return _event_stream(svc, events, job, cancel_on_close=not body.background)
    job = await waits.wait(tenant=tenant.id, job_id=job_id, timeout_s=svc.settings.sync_wait_s)
    if not job.status.is_terminal:
        raise ResponseTimeout(f"the response {response_id_of(job.id)} did not finish within "
                              f"{svc.settings.sync_wait_s} s and runs on: retrieve it with GET /v1/responses/"
                              f"{response_id_of(job.id)}, or create responses with background: true",
                              code="response_timeout")
    return JSONResponse(to_response(job), headers=cost_header(job))


@router.get("/{response_id}", responses={200: _RESPONSE_OR_EVENTS})
async def get_response(response_id: ResponseId, tenant: TenantDep, jobs: JobsDep, svc: ServicesDep,
                       events: Annotated[JobEvents, Depends(job_events)], stream: bool = False,
                       starting_after: Annotated[int | None, Query(ge=-1, le=10**9)] = None,
                       include: Annotated[list[str] | None, Query()] = None,
                       include_obfuscation: bool | None = None) -> Any:
    """A response; with `stream=true`, its event stream from `response.created` (a finished one replayed from the
    store), or only the events after sequence number `starting_after`. `include` is accepted and has no effect
    (there is nothing more to include)."""
    job = await run_in_threadpool(_job, jobs, tenant.id, response_id)
    if stream:
        return _event_stream(svc, events, job, starting_after=-1 if starting_after is None else starting_after)
    return JSONResponse(to_response(job), headers=cost_header(job))


@router.post("/{response_id}/cancel", responses={200: _RESPONSE_SCHEMA, 409: {"model": OpenAIErrorResponse}})
def cancel_response(response_id: ResponseId, tenant: TenantDep, jobs: JobsDep) -> JSONResponse:
    """Cancel a background response (idempotent: a finished one answers as it ended); a response made without
    `background: true` cannot be cancelled (400), as OpenAI's cannot."""
    job = _job(jobs, tenant.id, response_id)
    if not job.background:
        raise InvalidRequest("only a response created with background: true can be cancelled",
                             code="not_background")
    if not job.status.is_terminal:
        _cancel_quietly(jobs, job)
        job = _job(jobs, tenant.id, response_id)
    return JSONResponse(to_response(job))


@router.get("/{response_id}/input_items", responses={200: {"description": "The response's input, as items"}})
def list_input_items(response_id: ResponseId, tenant: TenantDep, jobs: JobsDep) -> dict[str, Any]:
    """The messages the response was made from."""
    items = input_items(_job(jobs, tenant.id, response_id))
    return {"object": "list", "data": items, "first_id": items[0]["id"] if items else None,
            "last_id": items[-1]["id"] if items else None, "has_more": False}


@router.delete("/{response_id}", responses={200: {"description": "`{id, object: \"response\", deleted: true}`"},
                                             409: {"model": OpenAIErrorResponse}})
def delete_response(response_id: ResponseId, tenant: TenantDep, jobs: JobsDep) -> dict[str, Any]:
    """Delete a response: cancelled first if it runs, then its input and output are deleted (as
    `DELETE /v1/jobs/{id}/content`); it is then not found here, and its job shows `content_deleted_at`."""
    job = _job(jobs, tenant.id, response_id)
    jobs.delete_content(tenant=tenant.id, job_id=job.id)
    return {"id": response_id_of(job.id), "object": "response", "deleted": True}
