"""/v1/schedules: create, list, read, change, delete and run-now schedules of jobs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from aijobs.api.deps import Cursor, IdempotentDep, JobViewDep, ScheduleId, SchedulesDep, TenantDep, created
from aijobs.api.responses import errors
from aijobs.models.jobs import JobOut
from aijobs.models.schedules import ScheduleList, ScheduleOut, ScheduleRequest, ScheduleUpdate

router = APIRouter(prefix="/v1/schedules", tags=["schedules"], responses=errors(401, 429, 500))


@router.post("", status_code=201, response_model=ScheduleOut,
             responses=errors(400, 403, 404, 409, 413, 422, 503))
def create_schedule(body: ScheduleRequest, tenant: TenantDep, schedules: SchedulesDep,
                    idempotent: IdempotentDep) -> JSONResponse:
    """Create a schedule: its job is submitted at every fire of `expression`, read in `timezone`."""
    result = idempotent.run("create_schedule", body=body.model_dump(mode="json", exclude_unset=True), create=lambda _: (
        schedules.to_public(schedules.create_schedule(tenant=tenant.id, request=body)).model_dump(mode="json")))
    return created(result, status_code=201, location=f"/v1/schedules/{result.answer['id']}")


@router.get("", response_model=ScheduleList, responses=errors(422))
def list_schedules(tenant: TenantDep, schedules: SchedulesDep, cursor: Cursor = None,
                   limit: Annotated[int, Query(ge=1, le=100)] = 20) -> ScheduleList:
    """The caller's schedules, newest first; follow `next_cursor` until it is null, which is the end."""
    page = schedules.list_schedules(tenant=tenant.id, limit=limit, cursor=cursor)
    return ScheduleList(data=[schedules.to_public(s) for s in page.items], next_cursor=page.next_cursor)


@router.get("/{schedule_id}", response_model=ScheduleOut, responses=errors(404, 422))
def get_schedule(schedule_id: ScheduleId, tenant: TenantDep, schedules: SchedulesDep) -> ScheduleOut:
    """A schedule, with its next fire times."""
    return schedules.to_public(schedules.get_schedule(tenant=tenant.id, schedule_id=schedule_id))


@router.patch("/{schedule_id}", response_model=ScheduleOut,
              responses=errors(400, 403, 404, 409, 413, 422, 503))
def update_schedule(schedule_id: ScheduleId, body: ScheduleUpdate, tenant: TenantDep,
                    schedules: SchedulesDep) -> ScheduleOut:
    """Change a schedule's expression, timezone, job or enabled; the fields left out stay as they are."""
    return schedules.to_public(schedules.update_schedule(tenant=tenant.id, schedule_id=schedule_id, update=body))


@router.delete("/{schedule_id}", status_code=204, response_class=Response, responses=errors(404, 422, 503))
def delete_schedule(schedule_id: ScheduleId, tenant: TenantDep, schedules: SchedulesDep) -> Response:
    """Delete a schedule; it fires no more. The jobs it created stay."""
    schedules.delete_schedule(tenant=tenant.id, schedule_id=schedule_id)
    return Response(status_code=204)


@router.post("/{schedule_id}/run", status_code=202, response_model=JobOut,
             responses=errors(403, 404, 409, 422, 503))
def run_schedule(schedule_id: ScheduleId, tenant: TenantDep, schedules: SchedulesDep,
                 idempotent: IdempotentDep, view: JobViewDep) -> JSONResponse:
    """Fire the schedule now, enabled or not: 202 with the new job."""
    result = idempotent.run("run_schedule", body={"schedule_id": schedule_id}, create=lambda key: (
        view(schedules.run_schedule(tenant=tenant.id, schedule_id=schedule_id, key=key)).model_dump(mode="json")))
    return created(result, status_code=202, location=f"/v1/jobs/{result.answer['id']}")
