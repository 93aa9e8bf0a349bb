"""Schedules: a cron, rate or one-time expression that submits a job at each fire, and the fire event itself."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AwareDatetime, ConfigDict, Field, model_validator

from aijobs.models.common import Model
from aijobs.models.jobs import JobRequest
from aijobs.models.tenants import TENANT_PATTERN

SCHEDULE_ID_PATTERN = r"^sch_[0-9A-Z]{26}$"
# Static schedules (ScheduleV2 events in template.yaml) name themselves; sch_ ids are the API's.
STATIC_SCHEDULE_ID_PATTERN = r"^(?!sch_)[A-Za-z0-9_.-]{1,64}$"
MAX_SCHEDULE_FIRE_TIMES = 5

ExpressionText = Annotated[str, Field(min_length=1, max_length=256,
                                  description="rate(5 minutes), cron(0 9 ? * MON-FRI *) or at(2030-01-31T09:30:00)")]
TimeZoneName = Annotated[str, Field(min_length=1, max_length=64, description="IANA time zone name, e.g. Europe/Paris")]


class ScheduleRequest(Model):
    """The body of ``POST /v1/schedules``."""

    model_config = ConfigDict(extra="forbid")

    expression: ExpressionText
    timezone: TimeZoneName = "UTC"
    job: JobRequest
    enabled: bool = True


class ScheduleUpdate(Model):
    """The body of ``PATCH /v1/schedules/{id}``: the fields given change, the others stay."""

    model_config = ConfigDict(extra="forbid")

    expression: ExpressionText | None = None
    timezone: TimeZoneName | None = None
    job: JobRequest | None = None
    enabled: bool | None = None


class Schedule(Model):
    """A schedule as stored."""

    id: str
    tenant: str
    expression: str
    timezone: str
    job: JobRequest
    enabled: bool
    created_at: int
    updated_at: int
    # When the schedule was last armed (created, its timing changed, or enabled): a rate counts from here.
    armed_at: int
    version: int = 1

    def to_public(self, *, next_fire_times: list[int]) -> ScheduleOut:
        return ScheduleOut(id=self.id, expression=self.expression, timezone=self.timezone, job=self.job,
                           enabled=self.enabled, created_at=self.created_at, updated_at=self.updated_at,
                           next_fire_times=next_fire_times)


class ScheduleOut(Model):
    """A schedule as the API answers it; timestamps are unix seconds."""

    id: str
    object: Literal["schedule"] = "schedule"
    expression: str
    timezone: str
    job: JobRequest
    enabled: bool
    created_at: int
    updated_at: int
    next_fire_times: list[int] = Field(description="The next fire times (unix seconds); empty when disabled or done")


class ScheduleList(Model):
    object: Literal["list"] = "list"
    data: list[ScheduleOut]
    next_cursor: str | None


class ScheduledFire(Model):
    """The event SchedulerFunction receives: the schedule target's Input, context attributes filled in.

    API schedules carry their id and tenant; the job is read from the schedule item at fire time. Static
    schedules declared in template.yaml carry their job (and tenant) in the Input itself.
    """

    # A refused event is logged by Lambda: its errors must not echo the job's prompt.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    schedule_id: Annotated[str, Field(min_length=1, max_length=64)]
    scheduled_time: AwareDatetime
    tenant: Annotated[str | None, Field(pattern=TENANT_PATTERN)] = None
    job: JobRequest | None = None
    execution_id: str | None = None
    attempt: int | None = None

    @model_validator(mode="after")
    def _api_or_static(self) -> ScheduledFire:
        if self.job is None and not re.fullmatch(SCHEDULE_ID_PATTERN, self.schedule_id):
            raise ValueError("an event without a job must name an API schedule (sch_...)")
        if self.job is not None and (self.tenant is None or not re.fullmatch(STATIC_SCHEDULE_ID_PATTERN,
                                                                           self.schedule_id)):
            raise ValueError("a static schedule's event needs a tenant and a schedule_id of its own (not sch_...)")
        return self


class FireOutcome(Model):
    """What one fire did: created a job, found the job of an earlier delivery of the same fire, or nothing."""

    outcome: Literal["created", "duplicate", "skipped"]
    schedule_id: str
    job_id: str | None = None
    reason: str | None = None
