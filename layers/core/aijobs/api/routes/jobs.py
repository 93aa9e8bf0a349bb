"""/v1/jobs: submit, wait, read, list, batch, status."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse

from aijobs.api.deps import ServicesDep, TenantDep, lambda_context
from aijobs.errors import AijobsError
from aijobs.models import (
    BatchItemResult,
    BatchRequest,
    BatchResponse,
    ErrorDetail,
    JobList,
    JobOut,
    JobRequest,
    JobStatus,
    JobStatusItem,
    StatusRequest,
    StatusResponse,
)
from aijobs.services import Services
from aijobs.settings import WAIT_LIMIT_S

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

_PREFER_WAIT = re.compile(r"(?:^|[;,\s])wait\s*=\s*(\d+)", re.IGNORECASE)

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]


def requested_wait(prefer: str | None, wait: int | None) -> int:
    """Seconds to wait from ``Prefer: wait=N`` or ``?wait=N``, capped to fit API Gateway's timeout."""
    if wait is None and prefer and (match := _PREFER_WAIT.search(prefer)):
        wait = int(match.group(1))
    return min(wait or 0, WAIT_LIMIT_S)


def run_once(svc: Services, request: Request, *, operation: str, tenant: str, key: str | None,
             body: Any, create: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], bool]:
    if key is None:
        return create(), False
    if (context := lambda_context(request)) is not None:
        svc.idempotency.register_lambda_context(context)
    return svc.idempotency.run(scope=f"{tenant}#{operation}", key=key, body=body, operation=create)


def _public(job: Any) -> dict[str, Any]:
    return dict(job.to_public().model_dump(mode="json"))


@router.post("", status_code=202, response_model=JobOut,
             responses={200: {"model": JobOut, "description": "Finished within the requested wait"}})
def submit_job(body: JobRequest, request: Request, tenant: TenantDep, svc: ServicesDep,
               idempotency_key: IdempotencyKey = None,
               prefer: Annotated[str | None, Header()] = None,
               wait: Annotated[int | None, Query(ge=0, le=3600)] = None) -> JSONResponse:
    """Submit a job; 202 at once, or 200 with the finished job when it ends within `Prefer: wait=N`."""
    job, replayed = run_once(
        svc, request, operation="submit_job", tenant=tenant, key=idempotency_key,
        body=body.model_dump(mode="json", exclude_unset=True),
        create=lambda: _public(svc.jobs.submit_job(tenant=tenant, request=body)))
    headers = {"Location": f"/v1/jobs/{job['id']}"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    status = 202
    if seconds := requested_wait(prefer, wait):
        final = svc.jobs.wait_for_job(tenant=tenant, job_id=job["id"], timeout_s=seconds)
        job = _public(final)
        headers["Preference-Applied"] = f"wait={seconds}"
        status = 200 if final.status.is_terminal else 202
    return JSONResponse(job, status_code=status, headers=headers)


@router.get("", response_model=JobList)
def list_jobs(tenant: TenantDep, svc: ServicesDep, status: JobStatus | None = None,
              limit: Annotated[int, Query(ge=1, le=100)] = 20,
              cursor: Annotated[str | None, Query(max_length=2048)] = None,
              schedule_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None) -> JobList:
    """The caller's jobs, newest first; `schedule_id` keeps those one of its schedules created."""
    jobs, next_cursor = svc.store.list_jobs(tenant=tenant, status=status, limit=limit, cursor=cursor,
                                            schedule_id=schedule_id)
    return JobList(data=[job.to_public() for job in jobs], next_cursor=next_cursor)


@router.post("/batch", status_code=202, response_model=BatchResponse)
def submit_batch(body: BatchRequest, request: Request, tenant: TenantDep, svc: ServicesDep,
                 idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """Submit up to 100 jobs; each item answers its job id and status, or its own error."""

    def create() -> dict[str, Any]:
        results = svc.jobs.submit_jobs(tenant=tenant, items=body.jobs)
        return BatchResponse(data=[
            BatchItemResult(error=ErrorDetail(**r.to_dict())) if isinstance(r, AijobsError)
            else BatchItemResult(id=r.id, status=r.status)
            for r in results
        ]).model_dump(mode="json", exclude_none=True)

    answer, replayed = run_once(svc, request, operation="submit_batch", tenant=tenant, key=idempotency_key,
                                body=body.model_dump(mode="json"), create=create)
    return JSONResponse(answer, status_code=202, headers={"Idempotent-Replayed": "true"} if replayed else {})


@router.post("/status", response_model=StatusResponse)
def job_statuses(body: StatusRequest, tenant: TenantDep, svc: ServicesDep) -> StatusResponse:
    """The status of many jobs at once; unknown ids (and other tenants' ids) answer `not_found`."""
    statuses = svc.jobs.job_statuses(tenant=tenant, job_ids=body.ids)
    return StatusResponse(data=[JobStatusItem(id=i, status=s or "not_found") for i, s in statuses])


@router.get("/{job_id}", response_model=JobOut)
def get_job(job_id: str, tenant: TenantDep, svc: ServicesDep) -> JobOut:
    """A job: status, output, usage, cost, error, attempt, timestamps."""
    return svc.jobs.get_job(tenant=tenant, job_id=job_id).to_public()
