"""Schedules against moto: the API, the EventBridge schedules it keeps, SchedulerFunction's fires."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from botocore.exceptions import ClientError

from aijobs.local.pollers import FakeLambdaContext
from aijobs.services import Services
from tests.faults import client_error, fail_calls
from tests.helpers import load_event
from tests.integration.conftest import KEY_B, TENANT_A, run_worker

B = {"Authorization": f"Bearer {KEY_B}"}
CONTEXT = FakeLambdaContext("SchedulerFunction")


def _create(api: Any, **body: Any) -> dict[str, Any]:
    response = api.post("/v1/schedules", json={"expression": "rate(1 hour)", "job": {"input": "digest"}, **body})
    assert response.status_code == 201, response.text
    return dict(response.json())


def _eventbridge(services: Services, schedule_id: str) -> dict[str, Any]:
    answer = services.scheduler_client.get_schedule(Name=schedule_id, GroupName=services.settings.schedule_group)
    return {k: v for k, v in answer.items() if k != "ResponseMetadata"}


def _eventbridge_names(services: Services) -> list[str]:
    return [s["Name"] for s in services.scheduler_client.list_schedules()["Schedules"]]


def _fire_event(schedule_id: str, scheduled_time: str = "2026-11-22T10:00:00Z") -> dict[str, Any]:
    event = load_event("scheduler_fire")
    event.update(schedule_id=schedule_id, tenant=TENANT_A, scheduled_time=scheduled_time)
    return event


def _queued_messages(services: Services) -> int:
    attributes = services.sqs.get_queue_attributes(QueueUrl=services.settings.jobs_queue_url,
                                                   AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def _fail(service_client: Any, operation: str, code: str = "ThrottlingException") -> None:
    """Make every call of one operation fail as AWS would answer it (for this test's client only)."""
    fail_calls(service_client, operation, error=lambda name: client_error(code, name))


@pytest.fixture
def scheduler_handler(services: Services) -> Any:
    """functions/scheduler/app.py's handler, imported as Lambda would."""
    from aijobs.local.stack import load_handler

    return load_handler("scheduler", "lambda_handler")


# --- the API and EventBridge ---------------------------------------------------------------------


def test_create_answers_201_and_creates_an_eventbridge_schedule_that_invokes_scheduler_function(
        api: Any, services: Services) -> None:
    response = api.post("/v1/schedules", json={"expression": "cron(0 9 ? * MON-FRI *)", "timezone": "Europe/Paris",
                                               "job": {"input": "daily digest", "metadata": {"kind": "digest"}}})

    assert response.status_code == 201
    schedule = response.json()
    assert schedule["id"].startswith("sch_") and schedule["object"] == "schedule"
    assert response.headers["Location"] == f"/v1/schedules/{schedule['id']}"
    assert schedule["enabled"] is True and schedule["job"]["metadata"] == {"kind": "digest"}
    fire_times = [datetime.fromtimestamp(t, ZoneInfo("Europe/Paris")) for t in schedule["next_fire_times"]]
    assert len(fire_times) == 5 and fire_times == sorted(fire_times)
    assert all((t.hour, t.minute) == (9, 0) and t.isoweekday() <= 5 for t in fire_times)
    remote = _eventbridge(services, schedule["id"])
    assert remote["ScheduleExpression"] == "cron(0 9 ? * MON-FRI *)"
    assert remote["ScheduleExpressionTimezone"] == "Europe/Paris"
    assert remote["State"] == "ENABLED" and remote["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert remote["Target"]["Arn"] == services.settings.scheduler_function_arn
    assert remote["Target"]["RoleArn"] == services.settings.scheduler_role_arn
    assert json.loads(remote["Target"]["Input"]) == {
        "schedule_id": schedule["id"], "tenant": TENANT_A, "scheduled_time": "<aws.scheduler.scheduled-time>",
        "execution_id": "<aws.scheduler.execution-id>", "attempt": "<aws.scheduler.attempt-number>"}
    assert api.get(f"/v1/schedules/{schedule['id']}").json() == schedule


@pytest.mark.parametrize(("body", "code", "says"), [
    ({"expression": "cron(0 9 * * * *)"}, "invalid_expression", "exactly one of day-of-month and day-of-week"),
    ({"expression": "rate(1 minutes)"}, "invalid_expression", "singular 'minute'"),
    ({"expression": "every day"}, "invalid_expression", "rate(value unit)"),
    ({"expression": "at(2020-01-01T00:00:00)"}, "invalid_expression", "in the past"),
    ({"expression": "cron(0 9 * * ? 2020)"}, "invalid_expression", "never fires"),
    ({"timezone": "Mars/Olympus_Mons"}, "invalid_timezone", "IANA"),
    ({"job": {"input": "x", "callback_url": "https://169.254.169.254/latest"}}, "callback_url_forbidden",
     "callback_url is not allowed"),
])
def test_invalid_schedule_is_422_saying_what_is_wrong_and_writes_nothing(
        api: Any, services: Services, body: dict[str, Any], code: str, says: str) -> None:
    response = api.post("/v1/schedules", json={"expression": "rate(1 hour)", "job": {"input": "x"}, **body})

    assert response.status_code == 422
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request", code)
    assert says in error["message"]
    assert api.get("/v1/schedules").json()["data"] == []
    assert _eventbridge_names(services) == []


def test_eventbridge_failure_on_create_leaves_no_schedule_item_behind(api: Any, services: Services) -> None:
    _fail(services.scheduler_client, "CreateSchedule")

    response = api.post("/v1/schedules", json={"expression": "rate(1 hour)", "job": {"input": "x"}})

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "scheduler_unavailable" and response.headers["Retry-After"] == "1"
    assert api.get("/v1/schedules").json()["data"] == []


def test_failed_item_write_on_create_leaves_no_eventbridge_schedule_behind(api: Any, services: Services) -> None:
    _fail(services.dynamodb.meta.client, "PutItem", code="InternalServerError")

    response = api.post("/v1/schedules", json={"expression": "rate(1 hour)", "job": {"input": "x"}})

    assert response.status_code == 500 and response.json()["error"]["type"] == "internal"
    assert _eventbridge_names(services) == []


def test_failed_item_write_on_update_puts_the_eventbridge_schedule_back(api: Any, services: Services) -> None:
    schedule = _create(api, expression="rate(1 hour)")
    _fail(services.dynamodb.meta.client, "PutItem", code="InternalServerError")

    response = api.patch(f"/v1/schedules/{schedule['id']}", json={"expression": "rate(5 minutes)"})

    assert response.status_code == 500
    assert _eventbridge(services, schedule["id"])["ScheduleExpression"] == "rate(1 hour)"


def test_patch_changes_the_eventbridge_schedule_and_disabling_stops_its_fires(
        api: Any, services: Services, scheduler_handler: Any) -> None:
    schedule = _create(api)

    changed = api.patch(f"/v1/schedules/{schedule['id']}", json={"expression": "rate(5 minutes)",
                                                                  "timezone": "Asia/Tokyo"})
    assert changed.status_code == 200
    assert changed.json()["expression"] == "rate(5 minutes)" and changed.json()["timezone"] == "Asia/Tokyo"
    times = changed.json()["next_fire_times"]
    assert [b - a for a, b in pairwise(times)] == [300] * 4
    remote = _eventbridge(services, schedule["id"])
    assert (remote["ScheduleExpression"], remote["ScheduleExpressionTimezone"]) == ("rate(5 minutes)", "Asia/Tokyo")

    disabled = api.patch(f"/v1/schedules/{schedule['id']}", json={"enabled": False}).json()
    assert disabled["enabled"] is False and disabled["next_fire_times"] == []
    assert _eventbridge(services, schedule["id"])["State"] == "DISABLED"
    assert scheduler_handler(_fire_event(schedule["id"]), CONTEXT) == {
        "outcome": "skipped", "schedule_id": schedule["id"], "reason": "schedule_disabled"}
    assert api.get(f"/v1/jobs?schedule_id={schedule['id']}").json()["data"] == []


def test_patch_of_the_job_alone_is_used_by_the_next_fire(api: Any, services: Services,
                                                         scheduler_handler: Any) -> None:
    schedule = _create(api, job={"input": "old prompt"})
    before = _eventbridge(services, schedule["id"])

    response = api.patch(f"/v1/schedules/{schedule['id']}", json={"job": {"input": "new prompt"}})

    assert response.status_code == 200 and response.json()["job"]["input"] == "new prompt"
    assert _eventbridge(services, schedule["id"]) == before  # EventBridge holds no copy of the job
    outcome = scheduler_handler(_fire_event(schedule["id"]), CONTEXT)
    assert services.store.get_job(outcome["job_id"]).request.input == "new prompt"


def test_delete_removes_the_eventbridge_schedule_and_a_late_fire_creates_nothing(
        api: Any, services: Services, scheduler_handler: Any) -> None:
    schedule = _create(api)

    assert api.delete(f"/v1/schedules/{schedule['id']}").status_code == 204

    with pytest.raises(ClientError) as missing:
        _eventbridge(services, schedule["id"])
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert api.get(f"/v1/schedules/{schedule['id']}").status_code == 404
    assert api.delete(f"/v1/schedules/{schedule['id']}").status_code == 404
    assert scheduler_handler(_fire_event(schedule["id"]), CONTEXT)["outcome"] == "skipped"
    assert _queued_messages(services) == 0


def test_tenants_never_see_each_others_schedules_or_their_jobs(api: Any, scheduler_handler: Any) -> None:
    schedule = _create(api)
    scheduler_handler(_fire_event(schedule["id"]), CONTEXT)
    path = f"/v1/schedules/{schedule['id']}"

    for response in (api.get(path, headers=B), api.patch(path, json={"enabled": False}, headers=B),
                     api.delete(path, headers=B), api.post(f"{path}/run", headers=B)):
        assert response.status_code == 404
        assert response.json()["error"]["type"] == "not_found"
    assert api.get("/v1/schedules", headers=B).json()["data"] == []
    assert api.get(f"/v1/jobs?schedule_id={schedule['id']}", headers=B).json()["data"] == []
    assert api.get(path).json()["enabled"] is True  # B's PATCH changed nothing
    assert len(api.get(f"/v1/jobs?schedule_id={schedule['id']}").json()["data"]) == 1


def test_list_schedules_is_newest_first_with_a_cursor(api: Any) -> None:
    ids = [_create(api)["id"] for _ in range(3)]

    first = api.get("/v1/schedules?limit=2").json()
    second = api.get(f"/v1/schedules?limit=2&cursor={first['next_cursor']}").json()

    assert [s["id"] for s in first["data"] + second["data"]] == ids[::-1]
    assert api.get("/v1/schedules?cursor=bm9wZQ==").status_code == 422


def test_run_now_answers_202_with_a_job_of_the_schedule_that_the_worker_runs(
        api: Any, services: Services, worker_handler: Any) -> None:
    schedule = _create(api, job={"input": "run me now"}, enabled=False)

    response = api.post(f"/v1/schedules/{schedule['id']}/run")

    assert response.status_code == 202
    job = response.json()
    assert job["schedule_id"] == schedule["id"] and response.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert [j["id"] for j in api.get(f"/v1/jobs?schedule_id={schedule['id']}").json()["data"]] == [job["id"]]
    run_worker(services, worker_handler)
    finished = api.get(f"/v1/jobs/{job['id']}").json()
    assert finished["status"] == "completed" and finished["output"]["text"] == "Echo: run me now"


def test_run_now_with_an_idempotency_key_creates_one_job(api: Any) -> None:
    schedule = _create(api)
    path, headers = f"/v1/schedules/{schedule['id']}/run", {"Idempotency-Key": "run-1"}

    first, again = api.post(path, headers=headers), api.post(path, headers=headers)

    assert first.json()["id"] == again.json()["id"] and again.headers["Idempotent-Replayed"] == "true"
    assert len(api.get(f"/v1/jobs?schedule_id={schedule['id']}").json()["data"]) == 1


# --- fires -----------------------------------------------------------------------------------------


def test_a_repeated_fire_creates_no_second_job(api: Any, services: Services, scheduler_handler: Any) -> None:
    schedule = _create(api, job={"input": "hourly"})
    event = _fire_event(schedule["id"], "2026-11-22T10:00:00Z")

    first = scheduler_handler(event, CONTEXT)
    again = scheduler_handler({**event, "execution_id": "another", "attempt": "2"}, CONTEXT)

    assert first["outcome"] == "created" and again == {**first, "outcome": "duplicate"}
    jobs = api.get(f"/v1/jobs?schedule_id={schedule['id']}").json()["data"]
    assert [j["id"] for j in jobs] == [first["job_id"]] and jobs[0]["schedule_id"] == schedule["id"]
    assert _queued_messages(services) == 1
    later = scheduler_handler(_fire_event(schedule["id"], "2026-11-22T11:00:00Z"), CONTEXT)
    assert later["outcome"] == "created" and later["job_id"] != first["job_id"]
    listed = api.get(f"/v1/jobs?schedule_id={schedule['id']}").json()["data"]
    assert [j["id"] for j in listed] == [later["job_id"], first["job_id"]]  # newest first


def test_a_static_schedules_event_creates_its_job_for_its_tenant(api: Any, scheduler_handler: Any) -> None:
    outcome = scheduler_handler(load_event("scheduler_static_fire"), CONTEXT)

    assert outcome["outcome"] == "created" and outcome["schedule_id"] == "nightly-digest"
    (job,) = api.get("/v1/jobs?schedule_id=nightly-digest").json()["data"]
    assert job["id"] == outcome["job_id"] and job["metadata"] == {"report": "nightly-digest"}
    assert api.get("/v1/jobs?schedule_id=nightly-digest", headers=B).json()["data"] == []


@pytest.mark.parametrize("change", [{"tenant": None}, {"schedule_id": "sch_01JAAAAAAAAAAAAAAAAAAAAAAA"},
                                    {"scheduled_time": "2026-11-22T02:00:00"}, {"jbo": {}}])
def test_a_malformed_fire_event_is_refused_and_creates_nothing(api: Any, scheduler_handler: Any,
                                                               change: dict[str, Any]) -> None:
    event = {**load_event("scheduler_static_fire"), "execution_id": None, "attempt": None,
             "job": {"input": "support tickets"}, **change}

    with pytest.raises(ValueError) as refused:
        scheduler_handler(event, CONTEXT)
    assert api.get("/v1/jobs").json()["data"] == []
    assert "support tickets" not in str(refused.value)  # what Lambda logs of it never holds the prompt


# --- the local firer: EventBridge's part, with a clock the test moves ---------------------------


class Clock:
    """Starts at the real time: a rate schedule is armed at its (whole-second) creation time, so make it after."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def _firer(services: Services, handler: Any, clock: Clock) -> Any:
    from aijobs.local.firer import ScheduleFirer

    return ScheduleFirer(scheduler=services.scheduler_client,
                         targets={services.settings.scheduler_function_arn: handler}, clock=clock)


def _job_ids(api: Any, schedule_id: str) -> list[str]:
    return [j["id"] for j in api.get(f"/v1/jobs?schedule_id={schedule_id}").json()["data"]]


def test_firer_fires_a_rate_schedule_when_created_then_every_period(
        api: Any, services: Services, scheduler_handler: Any) -> None:
    schedule = _create(api, expression="rate(1 minute)")
    clock = Clock()
    firer = _firer(services, scheduler_handler, clock)

    assert firer.tick() == 1 and len(_job_ids(api, schedule["id"])) == 1
    clock.now += timedelta(seconds=30)
    assert firer.tick() == 0
    clock.now += timedelta(seconds=31)
    assert firer.tick() == 1
    clock.now += timedelta(seconds=60)
    assert firer.tick() == 1
    assert len(set(_job_ids(api, schedule["id"]))) == 3


def test_firer_fires_cron_at_its_time_in_the_schedules_timezone(
        api: Any, services: Services, scheduler_handler: Any) -> None:
    events: list[dict[str, Any]] = []
    clock = Clock()
    firer = _firer(services, lambda event, context: events.append(event) or scheduler_handler(event, context), clock)
    schedule = _create(api, expression="cron(30 9 * * ? *)", timezone="Asia/Tokyo")
    due = datetime.fromtimestamp(schedule["next_fire_times"][0], UTC)
    assert due.astimezone(ZoneInfo("Asia/Tokyo")).strftime("%H:%M") == "09:30"

    clock.now = due - timedelta(seconds=1)
    assert firer.tick() == 0
    clock.now = due
    assert firer.tick() == 1

    assert events[0]["scheduled_time"] == due.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert events[0]["schedule_id"] == schedule["id"] and events[0]["attempt"] == "1"
    assert len(_job_ids(api, schedule["id"])) == 1


def test_firer_fires_a_one_time_schedule_once(api: Any, services: Services, scheduler_handler: Any) -> None:
    clock = Clock()
    firer = _firer(services, scheduler_handler, clock)
    at = (clock.now + timedelta(hours=2)).replace(microsecond=0)
    schedule = _create(api, expression=f"at({at:%Y-%m-%dT%H:%M:%S})")

    assert firer.tick() == 0
    clock.now = at
    assert firer.tick() == 1
    clock.now += timedelta(days=1)
    assert firer.tick() == 0
    assert len(_job_ids(api, schedule["id"])) == 1


def test_firer_does_not_fire_a_disabled_schedule_until_it_is_enabled(
        api: Any, services: Services, scheduler_handler: Any) -> None:
    clock = Clock()
    firer = _firer(services, scheduler_handler, clock)
    schedule = _create(api, expression="rate(1 minute)", enabled=False)

    for _ in range(3):
        clock.now += timedelta(minutes=5)
        assert firer.tick() == 0
    assert _job_ids(api, schedule["id"]) == []

    api.patch(f"/v1/schedules/{schedule['id']}", json={"enabled": True})
    assert firer.tick() == 1 and len(_job_ids(api, schedule["id"])) == 1


def test_firer_stops_firing_a_deleted_schedule(api: Any, services: Services, scheduler_handler: Any) -> None:
    schedule = _create(api, expression="rate(1 minute)")
    clock = Clock()
    firer = _firer(services, scheduler_handler, clock)
    assert firer.tick() == 1

    api.delete(f"/v1/schedules/{schedule['id']}")
    clock.now += timedelta(minutes=5)

    assert firer.tick() == 0


def test_firer_invokes_a_failing_target_again_with_the_same_scheduled_time(
        api: Any, services: Services, scheduler_handler: Any) -> None:
    events: list[dict[str, Any]] = []

    def fails_once(event: dict[str, Any], context: Any) -> Any:
        events.append(event)
        if len(events) == 1:
            raise RuntimeError("cold start timed out")
        return scheduler_handler(event, context)

    schedule = _create(api, expression="rate(1 hour)")
    clock = Clock()
    firer = _firer(services, fails_once, clock)
    firer.tick()
    assert _job_ids(api, schedule["id"]) == []

    clock.now += timedelta(seconds=1)
    firer.tick()

    assert [e["attempt"] for e in events] == ["1", "2"]
    assert events[0]["scheduled_time"] == events[1]["scheduled_time"]
    assert len(_job_ids(api, schedule["id"])) == 1


def test_static_schedule_declared_in_the_template_is_created_and_fired(
        api: Any, services: Services, scheduler_handler: Any, template: dict[str, Any]) -> None:
    from aijobs.local.template import LocalResources, static_schedules

    template = copy.deepcopy(template)
    template["Resources"]["SchedulerFunction"]["Properties"]["Events"] = {"NightlyDigest": {
        "Type": "ScheduleV2", "Properties": {
            "ScheduleExpression": "cron(0 2 * * ? *)", "ScheduleExpressionTimezone": "Europe/Paris",
            "GroupName": {"Ref": "ScheduleGroup"}, "RoleArn": {"Fn::GetAtt": ["SchedulerInvokeRole", "Arn"]},
            "Input": json.dumps({"schedule_id": "nightly-digest", "tenant": TENANT_A,
                                 "scheduled_time": "<aws.scheduler.scheduled-time>",
                                 "job": {"input": "Summarise the day"}})}}}
    resources = LocalResources(
        refs={"ScheduleGroup": services.settings.schedule_group},
        arns={"SchedulerFunction": services.settings.scheduler_function_arn,
              "SchedulerInvokeRole": services.settings.scheduler_role_arn})

    (definition,) = static_schedules(template, resources, prefix="test")
    assert definition["GroupName"] == services.settings.schedule_group
    assert definition["Target"]["RoleArn"] == services.settings.scheduler_role_arn
    services.scheduler_client.create_schedule(**definition)
    clock = Clock()
    firer = _firer(services, scheduler_handler, clock)
    assert firer.tick() == 0
    clock.now += timedelta(days=1)

    assert firer.tick() == 1
    (job,) = api.get("/v1/jobs?schedule_id=nightly-digest").json()["data"]
    assert services.store.get_job(job["id"]).request.input == "Summarise the day"
