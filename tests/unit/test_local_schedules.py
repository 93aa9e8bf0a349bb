"""The local stack's part of schedules: the API is told where they live, and fires carry EventBridge's event."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aijobs.local.firer import fire_event
from aijobs.local.template import ROOT, LocalResources, function_environment, load_template
from aijobs.models.schedules import Schedule, ScheduledFire
from aijobs.schedules.eventbridge import target_input
from aijobs.schedules.expressions import parse_expression, parse_timezone


def test_api_environment_names_the_local_schedule_group_function_and_role(template: dict[str, Any]) -> None:
    created = LocalResources(refs={"ScheduleGroup": "local-ScheduleGroup"}, arns={
        "SchedulerFunction": "arn:aws:lambda:us-east-1:123456789012:function:local-SchedulerFunction",
        "SchedulerInvokeRole": "arn:aws:iam::123456789012:role/local-SchedulerInvokeRole"})

    env = function_environment(template, created, "ApiFunction")

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


def test_the_documented_static_schedule_is_a_valid_fire_for_the_stacks_group_and_role(
        tmp_path: Path, template: dict[str, Any]) -> None:
    docs = (ROOT / "docs" / "schedules.md").read_text()
    (block,) = [b for b in re.findall(r"```yaml\n(.*?)```", docs, re.DOTALL) if "Type: ScheduleV2" in b]
    (tmp_path / "snippet.yaml").write_text(block)
    declared = load_template(tmp_path / "snippet.yaml")  # the loader that reads !Ref and !GetAtt
    (event,) = declared["SchedulerFunction"]["Properties"]["Events"].values()
    properties = event["Properties"]

    assert event["Type"] == "ScheduleV2"
    assert properties["GroupName"] == {"Ref": "ScheduleGroup"}
    assert properties["RoleArn"] == {"Fn::GetAtt": ["SchedulerInvokeRole", "Arn"]}
    assert set(template["Resources"]) >= {"SchedulerFunction", "ScheduleGroup", "SchedulerInvokeRole"}
    parse_expression(properties["ScheduleExpression"])
    parse_timezone(properties["ScheduleExpressionTimezone"])
    fire = ScheduledFire.model_validate_json(
        properties["Input"].replace("<aws.scheduler.scheduled-time>", "2026-11-22T01:00:00Z"))
    assert fire.job is not None and fire.tenant == "acme" and fire.schedule_id == "nightly-digest"
