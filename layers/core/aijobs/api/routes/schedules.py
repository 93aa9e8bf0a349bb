"""/v1/schedules: create, list, read, change, delete and run-now schedules of jobs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from aijobs.api.deps import ServicesDep, TenantDep
from aijobs.api.routes.jobs import IdempotencyKey, run_once
from aijobs.models import JobOut, ScheduleList, ScheduleOut, ScheduleRequest, ScheduleUpdate

router = APIRouter(prefix="/v1/schedules", tags=["schedules"])


def _replayed(replayed: bool) -> dict[str, str]:
    return {"Idempotent-Replayed": "true"} if replayed else {}


@router.post("", status_code=201, response_model=ScheduleOut)
def create_schedule(body: ScheduleRequest, request: Request, tenant: TenantDep, svc: ServicesDep,
                    idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """Create a schedule: its job is submitted at every fire of `expression`, read in `timezone`."""

    def create() -> dict[str, Any]:
        schedule = svc.schedules.create_schedule(tenant=tenant, request=body)
        return svc.schedules.to_public(schedule).model_dump(mode="json")

    answer, replayed = run_once(svc, request, operation="create_schedule", tenant=tenant, key=idempotency_key,
                                body=body.model_dump(mode="json", exclude_unset=True), create=create)
    headers = {"Location": f"/v1/schedules/{answer['id']}", **_replayed(replayed)}
    return JSONResponse(answer, status_code=201, headers=headers)


@router.get("", response_model=ScheduleList)
def list_schedules(tenant: TenantDep, svc: ServicesDep, limit: Annotated[int, Query(ge=1, le=100)] = 20,
                   cursor: Annotated[str | None, Query(max_length=2048)] = None) -> ScheduleList:
    """The caller's schedules, newest first."""
    schedules, next_cursor = svc.schedules.list_schedules(tenant=tenant, limit=limit, cursor=cursor)
    return ScheduleList(data=[svc.schedules.to_public(s) for s in schedules], next_cursor=next_cursor)


@router.get("/{schedule_id}", response_model=ScheduleOut)
def get_schedule(schedule_id: str, tenant: TenantDep, svc: ServicesDep) -> ScheduleOut:
    """A schedule, with its next fire times."""
    return svc.schedules.to_public(svc.schedules.get_schedule(tenant=tenant, schedule_id=schedule_id))


@router.patch("/{schedule_id}", response_model=ScheduleOut)
def update_schedule(schedule_id: str, body: ScheduleUpdate, tenant: TenantDep, svc: ServicesDep) -> ScheduleOut:
    """Change a schedule's expression, timezone, job or enabled; the fields left out stay as they are."""
    schedule = svc.schedules.update_schedule(tenant=tenant, schedule_id=schedule_id, update=body)
    return svc.schedules.to_public(schedule)


@router.delete("/{schedule_id}", status_code=204, response_class=Response)
def delete_schedule(schedule_id: str, tenant: TenantDep, svc: ServicesDep) -> Response:
    """Delete a schedule; it fires no more. The jobs it created stay."""
    svc.schedules.delete_schedule(tenant=tenant, schedule_id=schedule_id)
    return Response(status_code=204)


@router.post("/{schedule_id}/run", status_code=202, response_model=JobOut)
def run_schedule(schedule_id: str, request: Request, tenant: TenantDep, svc: ServicesDep,
                 idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """Fire the schedule now, enabled or not: 202 with the new job."""
    answer, replayed = run_once(
        svc, request, operation="run_schedule", tenant=tenant, key=idempotency_key, body={"schedule_id": schedule_id},
        create=lambda: svc.schedules.run_schedule(tenant=tenant, schedule_id=schedule_id).to_public().model_dump(
            mode="json"))
    return JSONResponse(answer, status_code=202, headers={"Location": f"/v1/jobs/{answer['id']}",
                                                          **_replayed(replayed)})
