"""Schedules through the stack of `make run`: real fires by the local EventBridge Scheduler, over HTTP.

Each test waits for real time to pass, but briefly: a rate schedule fires as soon as it is created (as in
EventBridge), and one-time at(...) schedules are set a few seconds ahead.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.e2e.conftest import Stack
from tests.helpers import eventually


def _jobs_of(client: httpx.Client, schedule_id: str) -> list[dict[str, Any]]:
    return list(client.get("/v1/jobs", params={"schedule_id": schedule_id}).json()["data"])


def _at(seconds: int, timezone: str = "UTC") -> tuple[str, datetime]:
    """An at(...) expression ``seconds`` from now, as the wall time of ``timezone``, and its instant."""
    when = (datetime.now(UTC) + timedelta(seconds=seconds)).replace(microsecond=0)
    return f"at({when.astimezone(ZoneInfo(timezone)):%Y-%m-%dT%H:%M:%S})", when


def test_rate_schedule_fires_when_created_and_its_job_completes(stack: Stack) -> None:
    prompt = f"What time is it? {uuid.uuid4().hex[:8]}"
    with stack.client() as client:
        created = client.post("/v1/schedules", json={"expression": "rate(1 minute)", "job": {"input": prompt}})
        assert created.status_code == 201
        schedule = created.json()
        assert schedule["next_fire_times"][0] - schedule["created_at"] in (59, 60, 61)

        (job,) = eventually(lambda: _jobs_of(client, schedule["id"]), timeout_s=10)
        assert job["schedule_id"] == schedule["id"]
        finished = eventually(lambda: (j := client.get(f"/v1/jobs/{job['id']}").json())["status"] == "completed"
                              and j, timeout_s=10)
        client.delete(f"/v1/schedules/{schedule['id']}")
    assert finished["output"]["text"] == f"Echo: {prompt}"


def test_one_time_schedule_fires_at_its_wall_time_in_its_timezone(stack: Stack) -> None:
    expression, instant = _at(3, "Asia/Tokyo")
    with stack.client() as client:
        schedule = client.post("/v1/schedules", json={"expression": expression, "timezone": "Asia/Tokyo",
                                                      "job": {"input": "once"}}).json()
        assert schedule["next_fire_times"] == [int(instant.timestamp())]
        assert _jobs_of(client, schedule["id"]) == []

        (job,) = eventually(lambda: _jobs_of(client, schedule["id"]), timeout_s=12)
    assert job["created_at"] >= int(instant.timestamp())


def test_disabled_schedule_does_not_fire(stack: Stack) -> None:
    with stack.client() as client:
        disabled = client.post("/v1/schedules", json={"expression": "rate(1 minute)", "enabled": False,
                                                      "job": {"input": "never"}}).json()
        # A witness that fires after the disabled one would have (at once): the firer has looked at both.
        witness = client.post("/v1/schedules", json={"expression": _at(2)[0], "job": {"input": "witness"}}).json()

        eventually(lambda: _jobs_of(client, witness["id"]), timeout_s=10)
        assert _jobs_of(client, disabled["id"]) == []
        client.delete(f"/v1/schedules/{disabled['id']}")


def test_deleting_a_schedule_removes_its_eventbridge_schedule(stack: Stack) -> None:
    scheduler = stack.aws("scheduler")
    with stack.client() as client:
        schedule = client.post("/v1/schedules", json={"expression": "cron(0 9 ? * MON-FRI *)",
                                                      "job": {"input": "weekday"}}).json()
        where = {"Name": schedule["id"], "GroupName": "aijobs-local-ScheduleGroup"}
        assert scheduler.get_schedule(**where)["State"] == "ENABLED"

        assert client.delete(f"/v1/schedules/{schedule['id']}").status_code == 204

    with pytest.raises(ClientError) as missing:
        scheduler.get_schedule(**where)
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
