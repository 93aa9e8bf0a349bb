"""The local stack's part of schedules: the API is told where they live, and fires carry EventBridge's event."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from aijobs.local.firer import fire_event
from aijobs.local.template import LocalResources, function_environment, load_template
from aijobs.models import Schedule
from aijobs.schedules.eventbridge import target_input


def test_api_environment_names_the_local_schedule_group_function_and_role() -> None:
    created = LocalResources(refs={"ScheduleGroup": "local-ScheduleGroup"}, arns={
        "SchedulerFunction": "arn:aws:lambda:us-east-1:123456789012:function:local-SchedulerFunction",
        "SchedulerInvokeRole": "arn:aws:iam::123456789012:role/local-SchedulerInvokeRole"})

    env = function_environment(load_template(), created, "ApiFunction")

    assert env["AIJOBS_SCHEDULE_GROUP"] == "local-ScheduleGroup"
    assert env["AIJOBS_SCHEDULER_FUNCTION_ARN"] == created.arns["SchedulerFunction"]
    assert env["AIJOBS_SCHEDULER_ROLE_ARN"] == created.arns["SchedulerInvokeRole"]


def test_a_local_fire_is_the_targets_input_with_the_context_attributes_filled_in() -> None:
    schedule = Schedule(id="sch_01JAAAAAAAAAAAAAAAAAAAAAAA", tenant="acme", expression="rate(1 hour)",
                        timezone="UTC", job={"input": "hi"}, enabled=True, created_at=1, updated_at=1, armed_at=1)
    definition = {"Name": schedule.id, "Arn": "arn:aws:scheduler:us-east-1:123456789012:schedule/g/x",
                  "Target": {"Arn": "arn:aws:lambda:...", "Input": target_input(schedule)}}

    event = fire_event(definition, datetime(2026, 11, 22, 10, 0, 0, 900_000, tzinfo=UTC), attempt=2)

    assert event["schedule_id"] == schedule.id and event["tenant"] == "acme"
    assert event["scheduled_time"] == "2026-11-22T10:00:00Z" and event["attempt"] == "2"
    assert len(event["execution_id"]) == 16 and "<aws." not in json.dumps(event)
