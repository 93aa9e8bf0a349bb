"""Webhook endpoints against moto, the fake model and real receivers on 127.0.0.1: the API (create, list, get,
delete, the guard, the bound), the fan-out of a final event to the callback_url and the subscribed endpoints, the
OpenAI event of a response that the official SDK's ``client.webhooks.unwrap()`` accepts, independent retries per
destination, the ledger, the sweeper, redelivery and tenant deletion."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import boto3
import pytest
from fastapi.testclient import TestClient

from aijobs.dynamo import job_key, update_request
from aijobs.local.stack import UvicornThread, load_handler
from aijobs.local.template import LocalResources
from aijobs.models.common import ErrorDetail
from aijobs.models.jobs import Usage
from aijobs.pricing import Price
from aijobs.services import Services
from aijobs.webhooks.endpoints import MAX_ENDPOINTS
from tests.integration.conftest import KEY_B, TENANT_A, api_client, installed_services
from tests.integration.test_webhooks import DEV_SETTINGS
from tests.receiver import Receiver

RESPONSE_EVENTS = {"response.completed", "response.failed", "response.cancelled", "response.incomplete"}


@pytest.fixture
def dev(aws: tuple[boto3.session.Session, LocalResources], fake_model: UvicornThread) -> Iterator[Services]:
    """Services as the local stack runs them: receivers on 127.0.0.1 over http, retries without waiting."""
    with installed_services(aws, fake_model, **DEV_SETTINGS) as svc:
        yield svc


@pytest.fixture
def dev_api(dev: Services) -> Iterator[TestClient]:
    with api_client() as client:
        yield client


@pytest.fixture
def handlers(dev: Services) -> tuple[Any, Any]:
    return load_handler("worker", "lambda_handler"), load_handler("webhook", "lambda_handler")


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
