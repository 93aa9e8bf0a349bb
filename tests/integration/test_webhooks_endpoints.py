"""Webhook endpoints against moto, the fake model and real receivers on 127.0.0.1: the API (create, list, get,
delete, the guard, the bound), the fan-out of a final event to the callback_url and the subscribed endpoints, the
OpenAI event of a response that the official SDK's ``client.webhooks.unwrap()`` accepts, independent retries per
destination, the ledger, the sweeper, redelivery and tenant deletion."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import openai
import pytest
from fastapi.testclient import TestClient
from openai.types.webhooks import (
    ResponseCancelledWebhookEvent,
    ResponseCompletedWebhookEvent,
    ResponseFailedWebhookEvent,
    ResponseIncompleteWebhookEvent,
)
from standardwebhooks.webhooks import Webhook

from aijobs.dynamo import job_key, update_request
from aijobs.models.common import ErrorDetail
from aijobs.models.jobs import JobRequest, Usage
from aijobs.pricing import Price
from aijobs.services import Services
from aijobs.webhooks.endpoints import MAX_ENDPOINTS
from tests.faults import sqs_down
from tests.integration.conftest import KEY_B, TENANT_A, api_client, run_worker
from tests.integration.test_webhooks import _ledger, _queue_counts, _run_all, _secrets
from tests.receiver import Answer, Receiver

RESPONSE_EVENTS = {"response.completed", "response.failed", "response.cancelled", "response.incomplete"}


@pytest.fixture
def second() -> Iterator[Receiver]:
    """Another receiver: an endpoint's, next to the callback_url's."""
    server = Receiver().start()
    yield server
    server.stop()


def _endpoint(api: TestClient, url: str, *event_types: str) -> str:
    response = api.post("/v1/webhook-endpoints", json={"url": url, "event_types": list(event_types)})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _set(svc: Services, job_id: str, **fields: Any) -> None:
    """Set fields on a stored job as another surface would have (POST /v1/responses is built elsewhere)."""
    svc.table.update_item(Key=job_key(job_id), **update_request(set=fields))


def _end(svc: Services, job_id: str, how: str) -> None:
    """End a job as its worker would (claim, terminal write), or cancel it, then queue its final event."""
    if how == "cancelled":
        svc.jobs.cancel_job(tenant=TENANT_A, job_id=job_id)
        return
    claimed = svc.store.claim_job(job_id, lease_s=60).job
    assert claimed is not None
    if how == "failed":
        assert svc.store.fail_job(claimed, ErrorDetail(type="provider_error", code="x", message="x", retryable=False))
    else:
        assert svc.store.complete_job(claimed, output_text="done", usage=Usage(), price=Price(Decimal(0), True))
        if how == "length":
            _set(svc, job_id, finish_reason="length")
    svc.outbox.enqueue_final_event(job_id)



# --- the API -------------------------------------------------------------------------------------------------------


def test_create_list_get_and_delete_an_endpoint(dev_api: TestClient, receiver: Receiver) -> None:
    created = dev_api.post("/v1/webhook-endpoints", json={"url": f"{receiver.url}/in",
                                                          "event_types": ["response.completed", "job.failed"]})
    assert created.status_code == 201
    endpoint = created.json()
    assert endpoint["id"].startswith("we_") and len(endpoint["id"]) == 29
    assert endpoint["object"] == "webhook_endpoint" and endpoint["url"] == f"{receiver.url}/in"
    assert endpoint["event_types"] == ["response.completed", "job.failed"] and endpoint["created_at"] > 0
    assert created.headers["location"] == f"/v1/webhook-endpoints/{endpoint['id']}"
    assert dev_api.get("/v1/webhook-endpoints").json() == {"object": "list", "data": [endpoint]}
    assert dev_api.get(f"/v1/webhook-endpoints/{endpoint['id']}").json() == endpoint

    assert dev_api.delete(f"/v1/webhook-endpoints/{endpoint['id']}").status_code == 204

    assert dev_api.get("/v1/webhook-endpoints").json()["data"] == []
    for response in (dev_api.get(f"/v1/webhook-endpoints/{endpoint['id']}"),
                     dev_api.delete(f"/v1/webhook-endpoints/{endpoint['id']}")):
        assert response.status_code == 404 and response.json()["error"]["code"] == "webhook_endpoint_not_found"


def test_another_tenants_endpoint_is_404_and_not_listed(dev_api: TestClient, receiver: Receiver) -> None:
    endpoint_id = _endpoint(dev_api, receiver.url, "job.completed")
    with api_client(KEY_B) as other:
        assert other.get("/v1/webhook-endpoints").json()["data"] == []
        assert other.get(f"/v1/webhook-endpoints/{endpoint_id}").status_code == 404
        assert other.delete(f"/v1/webhook-endpoints/{endpoint_id}").status_code == 404
    assert dev_api.get(f"/v1/webhook-endpoints/{endpoint_id}").status_code == 200


@pytest.mark.parametrize("url", ["https://169.254.169.254/latest/meta-data/", "https://127.1/", "http://example.com/h",
                                 "https://localhost/", "https://[::ffff:10.0.0.1]/"])
def test_a_forbidden_endpoint_url_is_422_and_writes_nothing(api: Any, url: str) -> None:
    response = api.post("/v1/webhook-endpoints", json={"url": url, "event_types": ["job.completed"]})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "callback_url_forbidden"
    assert api.get("/v1/webhook-endpoints").json()["data"] == []


def test_unknown_or_no_event_types_are_422(dev_api: TestClient, receiver: Receiver) -> None:
    unknown = dev_api.post("/v1/webhook-endpoints", json={"url": receiver.url,
                                                          "event_types": ["job.completed", "batch.completed"]})
    assert unknown.status_code == 422
    assert unknown.json()["error"]["code"] == "unknown_event_type" and "batch.completed" in unknown.json()["error"][
        "message"]
    empty = dev_api.post("/v1/webhook-endpoints", json={"url": receiver.url, "event_types": []})
    assert empty.status_code == 422
    assert dev_api.get("/v1/webhook-endpoints").json()["data"] == []


def test_a_tenant_has_at_most_ten_endpoints(dev_api: TestClient, receiver: Receiver) -> None:
    ids = [_endpoint(dev_api, f"{receiver.url}/{i}", "job.completed") for i in range(MAX_ENDPOINTS)]
    refused = dev_api.post("/v1/webhook-endpoints", json={"url": receiver.url, "event_types": ["job.completed"]})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "too_many_webhook_endpoints"
    assert len(dev_api.get("/v1/webhook-endpoints").json()["data"]) == MAX_ENDPOINTS
    dev_api.delete(f"/v1/webhook-endpoints/{ids[0]}")
    _endpoint(dev_api, receiver.url, "job.completed")


def test_create_with_the_same_idempotency_key_creates_once(dev_api: TestClient, receiver: Receiver) -> None:
    body = {"url": receiver.url, "event_types": ["job.completed"]}
    first = dev_api.post("/v1/webhook-endpoints", json=body, headers={"Idempotency-Key": "k1"})
    again = dev_api.post("/v1/webhook-endpoints", json=body, headers={"Idempotency-Key": "k1"})
    assert first.json() == again.json() and again.headers["idempotent-replayed"] == "true"
    assert len(dev_api.get("/v1/webhook-endpoints").json()["data"]) == 1


# --- the fan-out ---------------------------------------------------------------------------------------------------


def test_a_jobs_final_event_goes_to_its_callback_and_each_subscribed_endpoint_only(
        dev: Services, dev_api: TestClient, handlers: tuple[Any, Any], receiver: Receiver, second: Receiver) -> None:
    subscribed = _endpoint(dev_api, f"{second.url}/all", "job.completed", "job.failed")
    _endpoint(dev_api, f"{second.url}/failures", "job.failed")  # another type: gets nothing
    _endpoint(dev_api, f"{second.url}/responses", "response.completed")
    job_id = dev_api.post("/v1/jobs", json={"input": "fan out", "callback_url": f"{receiver.url}/cb"}).json()["id"]

    _run_all(dev, handlers)

    (to_callback,) = receiver.received
    (to_endpoint,) = second.received
    assert (to_callback.path, to_endpoint.path) == ("/cb", "/all")
    assert to_callback.body == to_endpoint.body  # one event, aijobs' shape
    for request in (to_callback, to_endpoint):
        assert Webhook(_secrets(dev)[0]).verify(request.body, request.headers)["type"] == "job.completed"
    assert to_callback.headers["webhook-id"] == dev.store.get_job(job_id).webhook_event_id  # type: ignore[union-attr]
    assert to_endpoint.headers["webhook-id"] != to_callback.headers["webhook-id"]
    ledger = _ledger(dev, job_id)
    assert sorted((a["endpoint_id"] or "", a["webhook_id"], a["outcome"]) for a in ledger) == sorted([
        ("", to_callback.headers["webhook-id"], "delivered"),
        (subscribed, to_endpoint.headers["webhook-id"], "delivered")])
    assert {a["endpoint_id"] for a in dev_api.get(f"/v1/jobs/{job_id}/deliveries").json()["data"]} == {None,
                                                                                                         subscribed}


def test_a_job_without_callback_url_goes_to_the_subscribed_endpoints(
        dev: Services, dev_api: TestClient, handlers: tuple[Any, Any], receiver: Receiver) -> None:
    _endpoint(dev_api, receiver.url, "job.completed")
    job_id = dev.jobs.submit_job(tenant=TENANT_A, request=JobRequest(input="no callback")).id

    _run_all(dev, handlers)

    (request,) = receiver.received
    payload = Webhook(_secrets(dev)[0]).verify(request.body, request.headers)
    assert payload["type"] == "job.completed" and payload["data"]["id"] == job_id
    assert dev.store.get_job(job_id).webhook_enqueued  # type: ignore[union-attr]


def test_a_job_whose_tenant_has_no_subscribed_endpoint_sends_nothing_and_leaves_the_sweep_index(
        dev: Services, dev_api: TestClient, handlers: tuple[Any, Any], receiver: Receiver) -> None:
    _endpoint(dev_api, receiver.url, "job.failed")
    job_id = dev.jobs.submit_job(tenant=TENANT_A, request=JobRequest(input="completes")).id
    _run_all(dev, handlers)
    assert receiver.received == [] and _queue_counts(dev) == {"Visible": 0, "NotVisible": 0, "Delayed": 0}
    # Kept for the tenant's endpoints until its lease's end; then the sweeper finds nothing to send and lets go.
    dev.clock.advance(dev.settings.job_lease_s + 1)  # type: ignore[attr-defined]
    report = dev.sweeper.sweep()
    assert (report.webhooks_queued, report.cleared) == (0, 1)
    assert "gsi3pk" not in dev.table.get_item(Key=job_key(job_id))["Item"]


def test_an_endpoint_only_event_lost_between_terminal_write_and_enqueue_is_queued_by_the_sweeper(
        dev: Services, dev_api: TestClient, handlers: tuple[Any, Any], receiver: Receiver) -> None:
    _endpoint(dev_api, receiver.url, "job.completed")
    with sqs_down(dev, queue_url=dev.settings.deliveries_queue_url):
        job_id = dev.jobs.submit_job(tenant=TENANT_A, request=JobRequest(input="lost")).id
        assert run_worker(dev, handlers[0])["batchItemFailures"] == []
        assert dev.store.get_job(job_id).status == "completed"  # type: ignore[union-attr]
    dev.clock.advance(dev.settings.job_lease_s + 1)  # type: ignore[attr-defined]
    assert dev.sweeper.sweep().webhooks_queued == 1
    _run_all(dev, handlers)
    assert len(receiver.received) == 1
    assert dev.sweeper.sweep().webhooks_queued == 0


def test_one_destination_down_does_not_hold_the_other_and_each_has_its_own_retries(
        dev: Services, dev_api: TestClient, handlers: tuple[Any, Any], receiver: Receiver, second: Receiver) -> None:
    receiver.answer(Answer(500), Answer(503))  # the callback's receiver is down twice
    endpoint_id = _endpoint(dev_api, second.url, "job.completed")
    job_id = dev.jobs.submit_job(tenant=TENANT_A, request=JobRequest(input="x", callback_url=receiver.url)).id

    _run_all(dev, handlers)

    assert len(second.received) == 1 and len(receiver.received) == 3
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1
    by_destination: dict[str | None, list[tuple[int, str]]] = {}
    for attempt in _ledger(dev, job_id):
        by_destination.setdefault(attempt["endpoint_id"], []).append((attempt["attempt"], attempt["outcome"]))
    assert by_destination == {None: [(1, "retrying"), (2, "retrying"), (3, "delivered")],
                              endpoint_id: [(1, "delivered")]}


def test_a_deleted_endpoint_gets_no_further_attempt(
        dev: Services, dev_api: TestClient, handlers: tuple[Any, Any], receiver: Receiver) -> None:
    endpoint_id = _endpoint(dev_api, receiver.url, "job.completed")
    dev.jobs.submit_job(tenant=TENANT_A, request=JobRequest(input="x"))
    run_worker(dev, handlers[0])  # the job ends; its delivery is queued
    assert _queue_counts(dev)["Visible"] == 1
    dev_api.delete(f"/v1/webhook-endpoints/{endpoint_id}")
    _run_all(dev, handlers)
    assert receiver.received == []


def test_redeliver_sends_again_to_every_destination_with_their_webhook_ids(
        dev: Services, dev_api: TestClient, handlers: tuple[Any, Any], receiver: Receiver, second: Receiver) -> None:
    endpoint_id = _endpoint(dev_api, second.url, "job.completed")
    job_id = dev.jobs.submit_job(tenant=TENANT_A, request=JobRequest(input="x", callback_url=receiver.url)).id
    _run_all(dev, handlers)

    response = dev_api.post(f"/v1/jobs/{job_id}/deliveries/redeliver")

    assert response.status_code == 202
    _run_all(dev, handlers)
    deliveries = response.json()["deliveries"]
    assert [(d["endpoint_id"], d["attempt"]) for d in deliveries] == [(None, 2), (endpoint_id, 2)]
    assert response.json()["webhook_id"] == deliveries[0]["webhook_id"]
    for got, delivery in ((receiver.received, deliveries[0]), (second.received, deliveries[1])):
        assert [r.headers["webhook-id"] for r in got] == [delivery["webhook_id"]] * 2


def test_deleting_a_tenant_deletes_its_endpoints(dev: Services, dev_api: TestClient, receiver: Receiver) -> None:
    _endpoint(dev_api, receiver.url, "job.completed")
    dev.tenants.delete_tenant(TENANT_A, actor="admin")
    dev.webhook_endpoints.forget(TENANT_A)
    assert dev.webhook_endpoints.of_tenant(TENANT_A) == []
    assert not dev.webhook_endpoints.has_any(TENANT_A)


# --- responses: OpenAI's events, verified by the official SDK -----------------------------------------------------


@pytest.mark.parametrize(("how", "event_type", "event_class"), [
    ("completed", "response.completed", ResponseCompletedWebhookEvent),
    ("length", "response.incomplete", ResponseIncompleteWebhookEvent),
    ("failed", "response.failed", ResponseFailedWebhookEvent),
    ("cancelled", "response.cancelled", ResponseCancelledWebhookEvent),
])
def test_a_responses_final_event_is_openais_and_unwrap_accepts_it(
        dev: Services, dev_api: TestClient, handlers: tuple[Any, Any], receiver: Receiver, second: Receiver,
        how: str, event_type: str, event_class: type) -> None:
    _endpoint(dev_api, receiver.url, *sorted(RESPONSE_EVENTS))
    _endpoint(dev_api, second.url, "job.completed", "job.failed", "job.cancelled")  # a job's types: nothing
    job_id = dev.jobs.submit_job(tenant=TENANT_A, request=JobRequest(input="a response")).id
    _set(dev, job_id, surface="responses")

    _end(dev, job_id, how)
    _run_all(dev, handlers)

    (request,) = receiver.received
    assert second.received == []
    client = openai.OpenAI(api_key="x", webhook_secret=_secrets(dev)[0])
    event = client.webhooks.unwrap(request.body, request.headers)
    assert isinstance(event, event_class)
    job = dev.store.get_job(job_id)
    assert job is not None
    assert event.type == event_type  # type: ignore[attr-defined]
    assert event.data.id == "resp_" + job_id.removeprefix("job_")  # type: ignore[attr-defined]
    assert event.id == "evt_" + (job.webhook_event_id or "").removeprefix("msg_")  # type: ignore[attr-defined]
    assert event.created_at == job.completed_at  # type: ignore[attr-defined]
    assert json.loads(request.body)["object"] == "event"
    with pytest.raises(openai.InvalidWebhookSignatureError):
        client.webhooks.unwrap(request.body.replace(b"resp_", b"resp_X"), request.headers)


def test_jobs_without_callback_of_a_tenant_without_endpoints_read_its_endpoints_once_per_cache_period(
        dev: Services, handlers: tuple[Any, Any]) -> None:
    reads: list[str] = []

    def note(params: Any, **_: Any) -> None:
        if "WEBHOOK_ENDPOINTS" in str(params):
            reads.append(str(params))

    events = dev.dynamodb.meta.client.meta.events
    events.register("provide-client-params.dynamodb.GetItem", note)
    try:
        for i in range(3):
            dev.jobs.submit_job(tenant=TENANT_A, request=JobRequest(input=f"plain {i}"))
        _run_all(dev, handlers)
    finally:
        events.unregister("provide-client-params.dynamodb.GetItem", note)
    assert len(reads) == 1  # the first job's end; the others are answered by the cache
    assert _queue_counts(dev) == {"Visible": 0, "NotVisible": 0, "Delayed": 0}
