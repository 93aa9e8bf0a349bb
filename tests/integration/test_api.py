"""The API against moto: submit, read, list, batch, status, tenants, idempotency, bad input."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import aijobs
from aijobs.jobs import JobService
from aijobs.models.jobs import MAX_INPUT_CHARS
from aijobs.services import Services
from tests.faults import sqs_down
from tests.integration.conftest import KEY_B


def _queued_messages(services: Services) -> int:
    attributes = services.sqs.get_queue_attributes(QueueUrl=services.settings.jobs_queue_url,
                                                   AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def test_submit_answers_202_with_location_and_queues_one_message(api: Any, services: Services) -> None:
    response = api.post("/v1/jobs", json={"input": "hello", "metadata": {"ticket": "T-1"}})
    assert response.status_code == 202
    job = response.json()
    assert job["status"] == "queued" and job["id"].startswith("job_") and job["object"] == "job"
    assert job["model"] == "fake-model" and job["metadata"] == {"ticket": "T-1"}
    assert response.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert response.headers["X-Request-Id"]
    assert response.headers["x-aijobs-version"] == aijobs.__version__
    assert _queued_messages(services) == 1
    assert api.get(f"/v1/jobs/{job['id']}").json() == job


def test_get_job_of_other_tenant_is_404(api: Any) -> None:
    job = api.post("/v1/jobs", json={"input": "mine"}).json()
    response = api.get(f"/v1/jobs/{job['id']}", headers={"Authorization": f"Bearer {KEY_B}"})
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found"
    assert api.get("/v1/jobs", headers={"Authorization": f"Bearer {KEY_B}"}).json()["data"] == []


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}])
def test_missing_or_wrong_api_key_is_401(api: Any, headers: dict[str, str]) -> None:
    response = api.get("/v1/jobs", headers=headers) if headers else api.get("/v1/jobs", headers={"Authorization": ""})
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication"
    assert response.headers["X-Request-Id"] == response.json()["error"]["request_id"]


def test_unknown_job_is_404_with_typed_body(api: Any) -> None:
    response = api.get("/v1/jobs/job_01J0000000000000000000000Z")
    assert response.status_code == 404
    assert set(response.json()["error"]) == {"type", "code", "message", "retryable", "request_id"}


def test_expired_job_not_yet_deleted_by_ttl_is_gone(api: Any, services: Services) -> None:
    job = api.post("/v1/jobs", json={"input": "old"}).json()
    services.clock.advance(services.settings.retention_s + 1)  # type: ignore[attr-defined]
    assert api.get(f"/v1/jobs/{job['id']}").status_code == 404


@pytest.mark.parametrize(("body", "status", "code"), [
    ('{"input": "hi"', 400, "invalid_json"),
    ("{}", 422, "invalid_fields"),
    ('{"input": 42}', 422, "invalid_fields"),
    ('{"input": "hi", "temperature": "hot"}', 422, "invalid_fields"),
    ('{"input": "hi", "unknown": true}', 422, "invalid_fields"),
    ('{"input": "' + "a" * (MAX_INPUT_CHARS + 1) + '"}', 413, "input_too_large"),
    ('{"input": "' + "a" * (300 * 1024) + '"}', 413, "body_too_large"),
])
def test_bad_input_is_a_typed_4xx_and_writes_nothing(api: Any, services: Services, body: str, status: int,
                                                    code: str) -> None:
    response = api.post("/v1/jobs", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert "aaaa" not in response.text  # the input is never echoed
    assert api.get("/v1/jobs").json()["data"] == [] and _queued_messages(services) == 0


def test_list_is_newest_first_with_cursor_pagination_and_status_filter(api: Any, worker_handler: Any,
                                                                        services: Services) -> None:
    from tests.integration.conftest import run_worker

    ids = [api.post("/v1/jobs", json={"input": f"job {i}"}).json()["id"] for i in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        page = api.get("/v1/jobs", params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        assert len(page["data"]) <= 2
        seen += [job["id"] for job in page["data"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids))
    run_worker(services, worker_handler)
    api.post("/v1/jobs", json={"input": "still queued"})
    completed = api.get("/v1/jobs", params={"status": "completed"}).json()["data"]
    queued = api.get("/v1/jobs", params={"status": "queued"}).json()["data"]
    assert sorted(j["id"] for j in completed) == sorted(ids) and len(queued) == 1


def test_bad_cursor_is_422(api: Any) -> None:
    assert api.get("/v1/jobs", params={"cursor": "garbage"}).json()["error"]["code"] == "invalid_cursor"


def test_batch_submits_valid_items_and_reports_each_bad_one(api: Any, services: Services) -> None:
    items = [{"input": f"item {i}"} for i in range(12)] + [{"input": ""}, {"nope": 1}]
    response = api.post("/v1/jobs/batch", json={"jobs": items})
    assert response.status_code == 202
    data = response.json()["data"]
    assert [d.get("status") for d in data[:12]] == ["queued"] * 12
    assert [d["error"]["type"] for d in data[12:]] == ["invalid_request", "invalid_request"]
    assert _queued_messages(services) == 12
    listed = {j["id"] for j in api.get("/v1/jobs", params={"limit": 100}).json()["data"]}
    assert listed == {d["id"] for d in data[:12]}


def test_batch_over_the_bound_is_422(api: Any) -> None:
    response = api.post("/v1/jobs/batch", json={"jobs": [{"input": "x"}] * 101})
    assert response.status_code == 422


def test_status_of_many_ids_marks_unknown_and_foreign_ones_not_found(api: Any) -> None:
    mine = api.post("/v1/jobs", json={"input": "a"}).json()["id"]
    theirs = api.post("/v1/jobs", json={"input": "b"}, headers={"Authorization": f"Bearer {KEY_B}"}).json()["id"]
    response = api.post("/v1/jobs/status", json={"ids": [mine, theirs, "job_01J0000000000000000000000Z", "x"]})
    assert response.json()["data"] == [
        {"id": mine, "status": "queued"}, {"id": theirs, "status": "not_found"},
        {"id": "job_01J0000000000000000000000Z", "status": "not_found"}, {"id": "x", "status": "not_found"}]


def test_same_idempotency_key_and_body_replays_the_first_answer(api: Any, services: Services) -> None:
    headers = {"Idempotency-Key": "order-1"}
    first = api.post("/v1/jobs", json={"input": "once"}, headers=headers)
    second = api.post("/v1/jobs", json={"input": "once"}, headers=headers)
    assert first.status_code == second.status_code == 202
    assert second.json() == first.json() and second.headers["Idempotent-Replayed"] == "true"
    assert _queued_messages(services) == 1


def test_idempotency_keys_are_per_tenant(api: Any) -> None:
    headers = {"Idempotency-Key": "shared-key"}
    a = api.post("/v1/jobs", json={"input": "x"}, headers=headers).json()["id"]
    b = api.post("/v1/jobs", json={"input": "x"}, headers={**headers, "Authorization": f"Bearer {KEY_B}"}).json()["id"]
    assert a != b


def test_same_idempotency_key_with_another_body_is_422_conflict(api: Any) -> None:
    api.post("/v1/jobs", json={"input": "one"}, headers={"Idempotency-Key": "k"})
    response = api.post("/v1/jobs", json={"input": "two"}, headers={"Idempotency-Key": "k"})
    assert response.status_code == 422
    assert response.json()["error"]["type"] == "idempotency_conflict"


def test_batch_idempotency_replays(api: Any, services: Services) -> None:
    body = {"jobs": [{"input": "a"}, {"input": "b"}]}
    first = api.post("/v1/jobs/batch", json=body, headers={"Idempotency-Key": "b1"}).json()
    assert api.post("/v1/jobs/batch", json=body, headers={"Idempotency-Key": "b1"}).json() == first
    assert _queued_messages(services) == 2


def test_duplicate_in_flight_is_409_with_retry_after(api: Any, services: Services) -> None:
    inside, release = threading.Event(), threading.Event()
    real = services.jobs

    class SlowJobs(JobService):
        def submit_job(self, **kwargs: Any) -> Any:
            inside.set()
            release.wait(10)
            return real.submit_job(**kwargs)

    services.__dict__["jobs"] = SlowJobs(store=real.store, queue=real.queue, default_model=real.default_model,
                                         retention_s=real.retention_s)
    first: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: first.setdefault(
        "r", api.post("/v1/jobs", json={"input": "slow"}, headers={"Idempotency-Key": "dup"})))
    thread.start()
    assert inside.wait(10)
    second = api.post("/v1/jobs", json={"input": "slow"}, headers={"Idempotency-Key": "dup"})
    release.set()
    thread.join(10)
    assert second.status_code == 409 and second.headers["Retry-After"] == "1"
    assert second.json()["error"]["retryable"] is True
    assert first["r"].status_code == 202


def test_health_and_docs_need_no_key(api: Any) -> None:
    for path in ("/healthz", "/openapi.json", "/docs"):
        assert api.get(path, headers={"Authorization": ""}).status_code == 200


def test_submit_while_sqs_is_down_is_503_and_leaves_no_job(api: Any, services: Services) -> None:
    with sqs_down(services):
        response = api.post("/v1/jobs", json={"input": "hello"})
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    error = response.json()["error"]
    assert (error["code"], error["retryable"]) == ("enqueue_failed", True)
    assert api.get("/v1/jobs").json()["data"] == [] and _queued_messages(services) == 0


def test_batch_submit_while_sqs_is_down_leaves_no_job(api: Any, services: Services) -> None:
    with sqs_down(services):
        response = api.post("/v1/jobs/batch", json={"jobs": [{"input": "a"}, {"input": "b"}]})
    assert response.status_code in (202, 503)
    assert api.get("/v1/jobs").json()["data"] == [] and _queued_messages(services) == 0
