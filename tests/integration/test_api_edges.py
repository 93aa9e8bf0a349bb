"""Inputs at the edge of what DynamoDB, JSON and Python can take. Each answered 500 (some only in AWS, where DynamoDB
refuses what moto lets through); now each is a typed 4xx that names the field and never repeats what was sent, or
a harmless normalisation, and nothing is half-written."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from aijobs.models.jobs import MAX_REQUEST_BYTES
from aijobs.services import Services
from tests.integration.conftest import TENANT_A

JSON = {"Content-Type": "application/json"}
SURROGATE = "\\ud800"  # as JSON spells it: a lone surrogate, no character at all


def _post(api: Any, path: str, body: str) -> Any:
    return api.post(path, content=body.encode(), headers=JSON)


def _nothing_written(api: Any, services: Services) -> bool:
    queued = services.sqs.get_queue_attributes(QueueUrl=services.settings.jobs_queue_url,
                                               AttributeNames=["ApproximateNumberOfMessages"])
    return (api.get("/v1/jobs").json()["data"] == [] and api.get("/v1/schedules").json()["data"] == []
            and queued["Attributes"]["ApproximateNumberOfMessages"] == "0")


def _b64(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


@pytest.mark.parametrize("temperature", ["1e-131", "5e-324", "-0.0", "0.30000000000000004"])
def test_a_temperature_dynamodb_cannot_hold_is_kept_to_six_decimals(api: Any, services: Services,
                                                                    temperature: str) -> None:
    response = _post(api, "/v1/jobs", f'{{"input": "hi", "temperature": {temperature}}}')

    assert response.status_code == 202
    stored = services.jobs.get_job(tenant=TENANT_A, job_id=response.json()["id"]).request.temperature
    assert stored == round(float(temperature), 6) and str(stored) != "-0.0"


def test_a_tiny_temperature_in_a_batch_item_or_a_schedules_job_is_kept_to_six_decimals(api: Any) -> None:
    batch = _post(api, "/v1/jobs/batch", '{"jobs": [{"input": "hi", "temperature": 1e-131}]}')
    schedule = _post(api, "/v1/schedules", '{"expression": "rate(1 hour)", '
                                           '"job": {"input": "hi", "temperature": 1.0000000000000002e-200}}')

    assert batch.status_code == 202 and batch.json()["data"][0]["status"] == "queued"
    assert schedule.status_code == 201 and schedule.json()["job"]["temperature"] == 0.0


@pytest.mark.parametrize(("body", "field"), [
    (f'{{"input": "a{SURROGATE}b"}}', "input"),
    (f'{{"input": [{{"role": "user", "content": "{SURROGATE}"}}]}}', "content"),
    (f'{{"input": "hi", "instructions": "{SURROGATE}"}}', "instructions"),
    (f'{{"input": "hi", "model": "{SURROGATE}"}}', "model"),
    (f'{{"input": "hi", "metadata": {{"{SURROGATE}": "v"}}}}', "metadata"),
    (f'{{"input": "hi", "metadata": {{"k": "{SURROGATE}"}}}}', "metadata"),
    (f'{{"input": "hi", "callback_url": "https://example.com/{SURROGATE}"}}', "callback_url"),
])
def test_a_lone_surrogate_in_any_text_of_a_job_is_422_naming_the_field(api: Any, services: Services, body: str,
                                                                       field: str) -> None:
    response = _post(api, "/v1/jobs", body)

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_fields" and field in error["message"]
    assert _nothing_written(api, services)


@pytest.mark.parametrize("body", [
    f'{{"expression": "rate(1 hour)", "job": {{"input": "{SURROGATE}"}}}}',
    f'{{"expression": "rate(1 hour{SURROGATE})", "job": {{"input": "hi"}}}}',
    f'{{"expression": "rate(1 hour)", "timezone": "{SURROGATE}", "job": {{"input": "hi"}}}}',
])
def test_a_lone_surrogate_in_a_schedule_is_422(api: Any, services: Services, body: str) -> None:
    assert _post(api, "/v1/schedules", body).status_code == 422
    assert _nothing_written(api, services)


def test_a_lone_surrogate_in_a_batch_item_fails_that_item_only(api: Any) -> None:
    response = _post(api, "/v1/jobs/batch", f'{{"jobs": [{{"input": "{SURROGATE}"}}, {{"input": "fine"}}]}}')

    assert response.status_code == 202
    bad, good = response.json()["data"]
    assert bad["error"]["code"] == "invalid_fields" and "input" in bad["error"]["message"]
    assert good["status"] == "queued"


@pytest.mark.parametrize("key", [SURROGATE, "k" * 1000, "line\\nbreak"])
def test_an_unknown_field_with_an_odd_name_is_422_without_repeating_it(api: Any, key: str) -> None:
    response = _post(api, "/v1/jobs", f'{{"input": "hi", "{key}": 1}}')

    assert response.status_code == 422
    message = response.json()["error"]["message"]
    assert "kkkk" not in message and "break" not in message


def test_a_batch_item_too_large_for_a_dynamodb_item_fails_that_item_only(api: Any) -> None:
    # 100,000 four-byte characters: within the character limit, but 400 KB, which DynamoDB would refuse (the whole
    # batch write with it); moto does not check item sizes, so this answered 202 here and 500 in AWS.
    big = "\U0001f600" * 100_000
    response = api.post("/v1/jobs/batch", json={"jobs": [{"input": big}, {"input": "fine"}]})

    assert response.status_code == 202
    bad, good = response.json()["data"]
    assert bad["error"]["code"] == "input_too_large" and str(MAX_REQUEST_BYTES) in bad["error"]["message"]
    assert "\U0001f600" not in response.text
    assert good["status"] == "queued"


def test_a_prefer_wait_with_more_digits_than_int_reads_is_capped_not_a_500(api: Any,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("aijobs.api.routes.jobs.WAIT_LIMIT_S", 0)  # no worker runs here: do not wait for it

    response = api.post("/v1/jobs", json={"input": "hi"}, headers={"Prefer": "wait=" + "9" * 5000})

    assert response.status_code == 202


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/v1/jobs/{id}"),
    ("GET", "/v1/jobs/{id}/deliveries"),
    ("POST", "/v1/jobs/{id}/deliveries/redeliver"),
    ("GET", "/v1/schedules/{id}"),
    ("PATCH", "/v1/schedules/{id}"),
    ("DELETE", "/v1/schedules/{id}"),
    ("POST", "/v1/schedules/{id}/run"),
])
def test_an_id_longer_than_any_id_is_422_before_it_reaches_dynamodb(api: Any, method: str, path: str) -> None:
    # DynamoDB refuses keys over 2048 bytes (moto does not): these answered 500 in AWS.
    too_long = ("job_" if "jobs" in path else "sch_") + "x" * 3000
    response = api.request(method, path.format(id=too_long), json={} if method == "PATCH" else None)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_fields" and "xxxx" not in response.text


TENANT_INDEX_KEY = {"pk": "JOB#job_x", "sk": "JOB", "gsi1pk": f"TENANT#{TENANT_A}", "gsi1sk": "job_x"}


@pytest.mark.parametrize("cursor", [
    _b64({**TENANT_INDEX_KEY, "gsi1sk": 1e-131}),  # a number DynamoDB cannot hold: was a 500
    _b64({**TENANT_INDEX_KEY, "pk": 1}),  # a number where DynamoDB expects text
    _b64({**TENANT_INDEX_KEY, "sk": ""}),  # DynamoDB keys are never empty
    _b64({**TENANT_INDEX_KEY, "sk": ["JOB"]}),
    _b64({**TENANT_INDEX_KEY, "sk": "x" * 1100}),  # over a sort key's 1024 bytes
    _b64({**TENANT_INDEX_KEY, "sk": "\ud800"}),
    base64.urlsafe_b64encode(b"[" * 1500).decode(),
    base64.urlsafe_b64encode(b"\xff\xfe").decode(),
])
def test_a_forged_cursor_is_422_invalid_cursor(api: Any, cursor: str) -> None:
    api.post("/v1/jobs", json={"input": "one job, so the list has a page"})

    response = api.get("/v1/jobs", params={"cursor": cursor})

    assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_cursor"
    assert api.get("/v1/schedules", params={"cursor": cursor}).json()["error"]["code"] == "invalid_cursor"


def test_a_rate_whose_later_fires_are_past_the_year_9999_lists_the_fires_there_are(api: Any) -> None:
    response = api.post("/v1/schedules", json={"expression": "rate(1000000 days)", "job": {"input": "hi"}})

    assert response.status_code == 201
    assert len(response.json()["next_fire_times"]) == 2  # in 2738 and in 5476 years; the third is past 9999


@pytest.mark.parametrize("expression", [
    "at(9999-12-31T23:59:59)",  # after the year 9999 in UTC: was a 500
    "cron(\u00b2 0 * * ? *)",  # a superscript two: a digit to str.isdigit(), not to int(): was a 500
    "cron(0/\u00b2 0 * * ? *)",
])
def test_an_expression_python_cannot_compute_is_422(api: Any, services: Services, expression: str) -> None:
    response = api.post("/v1/schedules", json={"expression": expression, "timezone": "America/New_York",
                                               "job": {"input": "hi"}})

    assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_expression"
    assert _nothing_written(api, services)


@pytest.mark.parametrize("expression", ["cron(30 2 ? 3 1L *)", "cron(30 2 ? 3 1#5 *)"])
def test_a_cron_that_a_daylight_saving_gap_always_swallows_is_422_at_create_and_at_change(
        api: Any, services: Services, expression: str) -> None:
    # 02:30 on the last Sunday of March never happens in Paris: these walked to the year 9999 and answered 500.
    created = api.post("/v1/schedules", json={"expression": expression, "timezone": "Europe/Paris",
                                              "job": {"input": "hi"}})
    schedule = api.post("/v1/schedules", json={"expression": "cron(30 2 ? 6 1L *)", "timezone": "Europe/Paris",
                                               "job": {"input": "hi"}}).json()
    changed = api.patch(f"/v1/schedules/{schedule['id']}", json={"expression": expression})

    for response in (created, changed):
        assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_expression"
        assert "never fires" in response.json()["error"]["message"]
    assert api.get(f"/v1/schedules/{schedule['id']}").json()["expression"] == "cron(30 2 ? 6 1L *)"
