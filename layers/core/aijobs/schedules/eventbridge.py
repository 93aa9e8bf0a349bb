"""EventBridge Scheduler access: one schedule there per aijobs schedule, in the stack's group, invoking
SchedulerFunction with the role the stack made for it. SDK errors become domain errors here."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from aijobs.errors import AijobsError, Conflict, InvalidRequest, ServiceUnavailable
from aijobs.models.schedules import Schedule
from aijobs.observability import logger

# EventBridge Scheduler replaces these in the target's Input at each fire.
SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"
EXECUTION_ID = "<aws.scheduler.execution-id>"
ATTEMPT_NUMBER = "<aws.scheduler.attempt-number>"


def target_input(schedule: Schedule) -> str:
    """The Input of a schedule's target: which schedule fired, and when it was due. The job is read at fire time."""
    return json.dumps({"schedule_id": schedule.id, "tenant": schedule.tenant, "scheduled_time": SCHEDULED_TIME,
                       "execution_id": EXECUTION_ID, "attempt": ATTEMPT_NUMBER})


class EventBridgeSchedules:
    def __init__(self, *, client: Any, group_name: str, function_arn: str, role_arn: str) -> None:
        self._client = client
        self.group_name = group_name
        self._function_arn = function_arn
        self._role_arn = role_arn

    def create(self, schedule: Schedule) -> None:
        self._call("create_schedule", **self._definition(schedule))

    def update(self, schedule: Schedule) -> None:
        """Replace the schedule's definition (EventBridge updates are whole); recreate it if it went missing."""
        try:
            self._call("update_schedule", **self._definition(schedule))
        except _Missing:
            logger.warning("EventBridge schedule missing; recreating it", extra={"schedule_id": schedule.id})
            self.create(schedule)

    def delete(self, schedule_id: str) -> None:
        """Delete the schedule; one already gone is fine (a retried DELETE)."""
        with contextlib.suppress(_Missing):
            self._call("delete_schedule", Name=schedule_id, GroupName=self.group_name)

    def _definition(self, schedule: Schedule) -> dict[str, Any]:
        if not self._function_arn or not self._role_arn:
            raise ServiceUnavailable("schedules are not configured in this deployment",
                                     code="schedules_not_configured", retryable=False)
        return {
            "Name": schedule.id,
            "GroupName": self.group_name,
            "ScheduleExpression": schedule.expression,
            "ScheduleExpressionTimezone": schedule.timezone,
            "State": "ENABLED" if schedule.enabled else "DISABLED",
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "Target": {"Arn": self._function_arn, "RoleArn": self._role_arn, "Input": target_input(schedule)},
        }

    def _call(self, operation: str, **kwargs: Any) -> None:
        try:
            getattr(self._client, operation)(**kwargs)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ResourceNotFoundException":
                raise _Missing(kwargs["Name"]) from None
            raise _domain_error(exc) from None
        except BotoCoreError:
            logger.exception("EventBridge Scheduler unreachable", extra={"operation": operation})
            raise ServiceUnavailable("the scheduler is unavailable; try again", code="scheduler_unavailable",
                                     retry_after=1) from None


class _Missing(Exception):
    """The EventBridge schedule does not exist."""


def _domain_error(exc: ClientError) -> AijobsError:
    code = exc.response["Error"]["Code"]
    if code == "ValidationException":
        # Our own checks run first, so this is an expression EventBridge reads differently from us.
        message = str(exc.response["Error"].get("Message", ""))[:300]
        return InvalidRequest(f"EventBridge Scheduler rejected the schedule: {message}", code="invalid_expression")
    if code == "ConflictException":
        return Conflict("the EventBridge schedule exists already", code="schedule_exists")
    logger.error("EventBridge Scheduler call failed", extra={"error_code": code})
    return ServiceUnavailable("the scheduler is unavailable; try again", code="scheduler_unavailable", retry_after=1)
