"""/v1/jobs: submit, wait, read, list, batch, status."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from aijobs.api.deps import (
    BatchesDep,
    Cursor,
    IdempotentDep,
    JobId,
    JobsDep,
    JobViewDep,
    TenantDep,
    WaitsDep,
    cost_header,
    created,
)
from aijobs.api.responses import errors
from aijobs.errors import AijobsError, InvalidRequest
from aijobs.idempotency import RequestKey
from aijobs.models.jobs import (
    BatchItemResult,
    BatchRequest,
    BatchResponse,
    JobKind,
    JobList,
    JobOut,
    JobRequest,
    JobRequestOut,
    JobStatus,
    StatusRequest,
    StatusResponse,
)
from aijobs.models.prompts import ModelName
from aijobs.settings import WAIT_LIMIT_S
from aijobs.store import JobFilters

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=errors(401, 429, 500))

MAX_TIME = 10**11  # unix seconds: past any job's time, within what a ULID's 48 bits of milliseconds hold
_PREFER_WAIT = re.compile(r"(?:^|[;,\s])wait\s*=\s*(\d+)", re.IGNORECASE)


def requested_wait(prefer: str | None, wait: int | None) -> int:
    """Seconds to wait from ``Prefer: wait=N`` or ``?wait=N``, capped to fit API Gateway's timeout."""
    if wait is None and prefer and (match := _PREFER_WAIT.search(prefer)):
        digits = match.group(1).lstrip("0") or "0"
        # Past a few digits it is over the limit anyway (and int() refuses 4,300 digits and more).
        wait = int(digits) if len(digits) <= 6 else WAIT_LIMIT_S
    return min(wait or 0, WAIT_LIMIT_S)


@router.post("", status_code=202, response_model=JobOut,
             responses={200: {"model": JobOut, "description": "Finished within the requested wait"},
                        **errors(400, 403, 404, 409, 413, 422, 503)})
async def submit_job(body: JobRequest, tenant: TenantDep, jobs: JobsDep, waits: WaitsDep,
                     idempotent: IdempotentDep, view: JobViewDep, prefer: Annotated[str | None, Header()] = None,
                     wait: Annotated[int | None, Query(ge=0, le=3600)] = None) -> JSONResponse:
    """Submit a job; 202 at once, or 200 with the finished job when it ends within `Prefer: wait=N`.

    The wait holds no thread: many waiters never slow other requests (aijobs/waits.py).
    """
    result = await run_in_threadpool(
        idempotent.run, "submit_job", body=body.model_dump(mode="json", exclude_unset=True),
        create=lambda key: view(jobs.submit_job(tenant=tenant.id, request=body, key=key)).model_dump(mode="json"))
    job_id = result.answer["id"]
    if not (seconds := requested_wait(prefer, wait)):
        return created(result, status_code=202, location=f"/v1/jobs/{job_id}")
    final = await waits.wait(tenant=tenant.id, job_id=job_id, timeout_s=seconds)
    return created(replace(result, answer=view(final).model_dump(mode="json")),
                   status_code=200 if final.status.is_terminal else 202, location=f"/v1/jobs/{job_id}",
                   headers={"Preference-Applied": f"wait={seconds}", **cost_header(final)})


@router.get("", response_model=JobList, responses=errors(422))
def list_jobs(tenant: TenantDep, jobs: JobsDep, view: JobViewDep, cursor: Cursor = None,
              status: JobStatus | None = None,
              limit: Annotated[int, Query(ge=1, le=100)] = 20,
              schedule_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
              batch_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
              model: ModelName | None = None, kind: JobKind | None = None,
              created_from: Annotated[int | None, Query(ge=0, le=MAX_TIME, description=(
                  "Jobs created at or after this time (unix seconds)"))] = None,
              created_before: Annotated[int | None, Query(ge=1, le=MAX_TIME, description=(
                  "Jobs created before this time (unix seconds)"))] = None) -> JobList:
    """The caller's jobs, newest first; `schedule_id` keeps those one of its schedules created, `batch_id` those of
    one of its batches (not both): a batch's ended jobs first, the last to end first, then those not ended, newest
    first (`GET /v1/batches/{id}/results` reads its results as they end). `model`, `kind` and the time range
    (`created_from` ≤ created < `created_before`) narrow the list further.

    Every request reads a bounded number of jobs: with a `status`, `model` or `kind` filter, a page may come back
    short or even empty with a `next_cursor` (the jobs read matched too few); a time range is read as a range, not
    filtered. Follow `next_cursor` until it is null, which is the end.
    """
    if schedule_id is not None and batch_id is not None:
        raise InvalidRequest("schedule_id and batch_id cannot be given together", code="invalid_fields")
    if created_from is not None and created_before is not None and created_from >= created_before:
        raise InvalidRequest("created_from must be before created_before", code="invalid_fields")
    filters = JobFilters(model=model, kind=kind, created_from=created_from, created_before=created_before)
    page = jobs.list_jobs(tenant=tenant.id, status=status, limit=limit, cursor=cursor, schedule_id=schedule_id,
                          batch_id=batch_id, filters=filters)
    return JobList(data=[view(job) for job in page.items], next_cursor=page.next_cursor)


@router.post("/batch", status_code=202, response_model=BatchResponse,
             responses=errors(400, 404, 409, 413, 422))
def submit_batch(body: BatchRequest, tenant: TenantDep, batches: BatchesDep,
                 idempotent: IdempotentDep) -> JSONResponse:
    """Submit up to 100 jobs into a batch: a new one, or `batch_id` (a chunk of a larger submit; 404 for an unknown
    batch, 409 `batch_cancelled`); each item answers its job id and status, or its own error."""

    def create(key: RequestKey | None) -> dict[str, Any]:
        batch_id, results = batches.submit(tenant=tenant.id, items=body.jobs, batch_id=body.batch_id, key=key)
        return BatchResponse(batch_id=batch_id, data=[BatchItemResult(error=r.detail()) if isinstance(r, AijobsError)
                                   else BatchItemResult(id=r.id, status=r.status)
                                   for r in results]).model_dump(mode="json", exclude_none=True)

    # A body without batch_id keeps the key's body hash it had before batches.
    return created(idempotent.run("submit_batch", body=body.model_dump(mode="json", exclude_unset=True),
                                  create=create), status_code=202)


@router.delete("/{job_id}", response_model=JobOut, responses=errors(404, 409, 422))
def cancel_job(job_id: JobId, tenant: TenantDep, jobs: JobsDep, view: JobViewDep) -> JobOut:
    """Cancel a queued or running job: 200 with the cancelled job (again for one cancelled already); a completed or
    failed job is 409. A running job's model call is not paid back: its usage and cost stay on the job."""
    return view(jobs.cancel_job(tenant=tenant.id, job_id=job_id))


@router.delete("/{job_id}/content", response_model=JobOut, responses=errors(404, 409, 422))
def delete_job_content(job_id: JobId, tenant: TenantDep, jobs: JobsDep, view: JobViewDep) -> JobOut:
    """Delete the job's input and output before retention would (a privacy request): its request's `input` and
    `instructions`, its output and its output log. A job that has not ended is cancelled first. The job stays, with
    `content_deleted_at`, its status, usage and cost; deleting again answers it as it is."""
    return view(jobs.delete_content(tenant=tenant.id, job_id=job_id))


@router.post("/{job_id}/retry", status_code=202, response_model=JobOut,
             responses=errors(403, 404, 409, 422, 503))
def retry_job(job_id: JobId, tenant: TenantDep, jobs: JobsDep, idempotent: IdempotentDep,
              view: JobViewDep) -> JSONResponse:
    """Run a failed or cancelled job again: 202 with the new job (`retry_of` names the original, which shows
    `retried_by`); any other status is 409."""
    result = idempotent.run("retry_job", body={"job_id": job_id}, create=lambda key: (
        view(jobs.retry_job(tenant=tenant.id, job_id=job_id, key=key)).model_dump(mode="json")))
    return created(result, status_code=202, location=f"/v1/jobs/{result.answer['id']}")


@router.post("/status", response_model=StatusResponse, responses=errors(400, 413, 422))
def job_statuses(body: StatusRequest, tenant: TenantDep, jobs: JobsDep) -> StatusResponse:
    """The status of many jobs at once; unknown ids (and other tenants' ids) answer `not_found`."""
    return StatusResponse(data=jobs.job_statuses(tenant=tenant.id, job_ids=body.ids))


@router.get("/{job_id}/request", response_model=JobRequestOut, responses=errors(404, 422))
def get_job_request(job_id: JobId, tenant: TenantDep, jobs: JobsDep) -> JobRequestOut:
    """The request the job was made from, as it was submitted (with what a prompt reference made of it); once its
    content was deleted (`DELETE /v1/jobs/{id}/content`), without its input and instructions."""
    job = jobs.get_job(tenant=tenant.id, job_id=job_id)
    return JobRequestOut(id=job.id, content_deleted_at=job.content_deleted_at,
                         request=job.request.model_dump(mode="json", exclude_none=True))


@router.get("/{job_id}", response_model=JobOut, responses=errors(404, 422))
def get_job(job_id: JobId, tenant: TenantDep, jobs: JobsDep, view: JobViewDep) -> JobOut:
    """A job: status, output, usage, cost, error, attempt, timestamps; a running job shows its output so far and
    `progress`."""
    return view(jobs.read_job(tenant=tenant.id, job_id=job_id))
