"""The schedules domain: create, read, change, delete and run schedules, and turn a fire into a job.

Every job a schedule makes goes through ``JobService.submit_job``, like the API's. A fire's job id is derived
from the schedule and the scheduled time, so a fire delivered twice (EventBridge and Lambda both deliver at
least once) finds its job already there and creates no second one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from aijobs.clock import Clock, system_clock
from aijobs.dynamo import Page
from aijobs.errors import Conflict, InvalidRequest, ModelNotAllowed, NotFound, PayloadTooLarge, RateLimited
from aijobs.idempotency import RequestKey
from aijobs.ids import derived_job_id, new_schedule_id
from aijobs.jobs import JobService
from aijobs.models.jobs import Job, JobRequest
from aijobs.models.schedules import (
    MAX_SCHEDULE_FIRE_TIMES,
    FireOutcome,
    Schedule,
    ScheduledFire,
    ScheduleOut,
    ScheduleRequest,
    ScheduleUpdate,
)
from aijobs.observability import logger
from aijobs.schedules.eventbridge import EventBridgeSchedules
from aijobs.schedules.expressions import AtExpression, fire_times, parse_expression, parse_timezone
from aijobs.schedules.store import ScheduleStore


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


@dataclass(frozen=True)
class ScheduleService:
    store: ScheduleStore
    eventbridge: EventBridgeSchedules
    jobs: JobService
    clock: Clock = system_clock

    # --- the API ----------------------------------------------------------------------------------

    def create_schedule(self, *, tenant: str, request: ScheduleRequest) -> Schedule:
        """Store the schedule, then create its EventBridge schedule; if that fails the item is removed again."""
        self._check_timing(request.expression, request.timezone)
        self._check_job(tenant, request.job)
        now = int(self.clock())
        schedule = Schedule(id=new_schedule_id(), tenant=tenant, expression=request.expression,
                            timezone=request.timezone, job=request.job, enabled=request.enabled,
                            created_at=now, updated_at=now, armed_at=now)
        # The item first: a fire can only arrive once EventBridge has the schedule, and it must find the item.
        self.store.put_new_schedule(schedule)
        try:
            self.eventbridge.create(schedule)
        except Exception:
            self.store.delete_schedule(schedule.id)
            raise
        logger.info("schedule created", extra={"schedule_id": schedule.id, "tenant": tenant})
        return schedule

    def get_schedule(self, *, tenant: str, schedule_id: str) -> Schedule:
        schedule = self.store.get_schedule(schedule_id) if schedule_id.startswith("sch_") else None
        if schedule is None or schedule.tenant != tenant:  # another tenant's schedule does not exist for this one
            raise NotFound("no such schedule", code="schedule_not_found")
        return schedule

    def list_schedules(self, *, tenant: str, limit: int, cursor: str | None) -> Page[Schedule]:
        return self.store.list_schedules(tenant=tenant, limit=limit, cursor=cursor)

    def update_schedule(self, *, tenant: str, schedule_id: str, update: ScheduleUpdate) -> Schedule:
        """Change EventBridge first, then the item; if the item cannot be written, EventBridge is put back."""
        current = self.get_schedule(tenant=tenant, schedule_id=schedule_id)
        changes = {name: value for name, value in update if name in update.model_fields_set and value is not None
                   and value != getattr(current, name)}
        if not changes:
            return current
        timing = "expression" in changes or "timezone" in changes
        enabling = changes.get("enabled") is True
        now = int(self.clock())
        schedule = current.model_copy(update={**changes, "updated_at": now, "version": current.version + 1,
                                              "armed_at": now if timing or enabling else current.armed_at})
        if timing or enabling:
            self._check_timing(schedule.expression, schedule.timezone)
        if "job" in changes:
            self._check_job(tenant, schedule.job)
        in_eventbridge = timing or "enabled" in changes  # the job is read at fire time: EventBridge keeps no copy
        if in_eventbridge:
            self.eventbridge.update(schedule)
        try:
            self.store.replace_schedule(schedule, expected_version=current.version)
        except Exception:
            if in_eventbridge:
                self._restore(current)
            raise
        logger.info("schedule updated", extra={"schedule_id": schedule_id, "tenant": tenant,
                                               "changed": sorted(changes)})
        return schedule

    def delete_schedule(self, *, tenant: str, schedule_id: str) -> None:
        """Delete the EventBridge schedule, then the item: no fire outlives a deleted schedule."""
        self.get_schedule(tenant=tenant, schedule_id=schedule_id)
        self.eventbridge.delete(schedule_id)
        self.store.delete_schedule(schedule_id)
        logger.info("schedule deleted", extra={"schedule_id": schedule_id, "tenant": tenant})

    def run_schedule(self, *, tenant: str, schedule_id: str, key: RequestKey | None = None) -> Job:
        """Fire a schedule now, whether enabled or not: a new job with the schedule's id."""
        schedule = self.get_schedule(tenant=tenant, schedule_id=schedule_id)
        return self.jobs.submit_job(tenant=tenant, request=schedule.job, schedule_id=schedule.id, key=key)

    def to_public(self, schedule: Schedule) -> ScheduleOut:
        return schedule.to_public(next_fire_times=self.next_fire_times(schedule))

    def next_fire_times(self, schedule: Schedule, count: int = MAX_SCHEDULE_FIRE_TIMES) -> list[int]:
        if not schedule.enabled:
            return []
        times = fire_times(parse_expression(schedule.expression), parse_timezone(schedule.timezone),
                           after=_utc(self.clock()), anchor=_utc(schedule.armed_at), count=count)
        return [int(t.timestamp()) for t in times]

    # --- fires ------------------------------------------------------------------------------------

    def fire(self, event: ScheduledFire) -> FireOutcome:
        """Create the job of one fire; a repeated delivery of the same fire finds that job and creates none."""
        log = {"schedule_id": event.schedule_id, "scheduled_time": event.scheduled_time.isoformat(),
               "attempt": event.attempt}
        if event.job is not None:  # a static schedule of template.yaml carries its job
            tenant, request = str(event.tenant), event.job
        else:
            schedule = self.store.get_schedule(event.schedule_id)
            if schedule is None or (event.tenant is not None and schedule.tenant != event.tenant):
                logger.info("fire skipped: schedule deleted", extra=log)
                return FireOutcome(outcome="skipped", schedule_id=event.schedule_id, reason="schedule_deleted")
            if not schedule.enabled:
                logger.info("fire skipped: schedule disabled", extra=log)
                return FireOutcome(outcome="skipped", schedule_id=event.schedule_id, reason="schedule_disabled")
            tenant, request = schedule.tenant, schedule.job
        due = event.scheduled_time.astimezone(UTC)
        job_id = derived_job_id(seed=f"{tenant}#{event.schedule_id}#{due:%Y-%m-%dT%H:%M:%SZ}",
                                at_ms=int(due.timestamp() * 1000))
        try:
            # Over the tenant's token rate or budget, the fire's job waits (deferred): nobody is there to retry it.
            self.jobs.submit_job(tenant=tenant, request=request, schedule_id=event.schedule_id, job_id=job_id,
                                 defer=True)
        except ModelNotAllowed:
            # The tenant's allowed_models changed since the schedule was made: no job, and nothing to retry.
            logger.info("fire skipped: model not allowed", extra=log)
            return FireOutcome(outcome="skipped", schedule_id=event.schedule_id, reason="model_not_allowed")
        except (NotFound, InvalidRequest, PayloadTooLarge) as exc:
            if request.prompt is None:
                raise
            # Its registry prompt resolves no more (deleted, a label removed, or the version a label now names
            # wants other variables): no job, and nothing a retry would change.
            logger.info("fire skipped: its prompt does not resolve", extra={**log, "code": exc.code})
            return FireOutcome(outcome="skipped", schedule_id=event.schedule_id, reason=exc.code)
        except RateLimited as exc:
            if exc.retryable:
                raise
            # Larger than the tenant's whole minute of tokens (its limit was lowered): it could never be admitted.
            logger.warning("fire skipped: the job can never fit the tenant's limits", extra={**log, "code": exc.code})
            return FireOutcome(outcome="skipped", schedule_id=event.schedule_id, reason=exc.code)
        except Conflict as exc:
            if exc.code != "job_exists":
                raise
            logger.info("fire repeated: its job exists", extra={**log, "job_id": job_id})
            return FireOutcome(outcome="duplicate", schedule_id=event.schedule_id, job_id=job_id)
        logger.info("schedule fired", extra={**log, "job_id": job_id, "tenant": tenant})
        return FireOutcome(outcome="created", schedule_id=event.schedule_id, job_id=job_id)

    # --- checks -----------------------------------------------------------------------------------

    def _check_timing(self, expression_text: str, timezone: str) -> None:
        expression = parse_expression(expression_text)
        tz = parse_timezone(timezone)
        now = _utc(self.clock())
        if not fire_times(expression, tz, after=now, anchor=now, count=1):
            if isinstance(expression, AtExpression):
                raise InvalidRequest(f"{expression_text} is in the past in {timezone}", code="invalid_expression")
            raise InvalidRequest(f"{expression_text} never fires from now on in {timezone} (a time that a "
                                 "daylight-saving change skips does not fire)", code="invalid_expression")

    def _check_job(self, tenant: str, request: JobRequest) -> None:
        # What submit_job would refuse, refused now rather than at every fire. A job naming a registry prompt is
        # resolved now to check it (the prompt, its version or label, its variables), and again at every fire:
        # moving a label changes what the next fire runs.
        self.jobs.check_request(tenant, request)

    def _restore(self, schedule: Schedule) -> None:
        try:
            self.eventbridge.update(schedule)
        except Exception:
            logger.exception("EventBridge schedule could not be restored", extra={"schedule_id": schedule.id})
