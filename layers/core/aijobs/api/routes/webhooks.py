"""Webhooks: the tenant's signing secrets and webhook endpoints, and a job's delivery ledger and redelivery."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from aijobs.api.deps import (
    Cursor,
    EndpointId,
    EndpointsDep,
    IdempotentDep,
    JobId,
    OutboxDep,
    TenantDep,
    TenantsDep,
    created,
)
from aijobs.api.responses import errors
from aijobs.models.webhooks import (
    DeliveryList,
    Redelivery,
    RotateSecretRequest,
    WebhookEndpoint,
    WebhookEndpointCreate,
    WebhookEndpointList,
    WebhookSecret,
    WebhookSecretList,
)

secrets_router = APIRouter(prefix="/v1/webhook-secrets", tags=["webhooks"],
                             responses=errors(401, 429, 500))
endpoints_router = APIRouter(prefix="/v1/webhook-endpoints", tags=["webhooks"],
                              responses=errors(401, 429, 500))
deliveries_router = APIRouter(prefix="/v1/jobs/{job_id}/deliveries", tags=["webhooks"],
                              responses=errors(401, 404, 422, 429, 500))


@secrets_router.get("", response_model=WebhookSecretList)
def list_webhook_secrets(tenant: TenantDep, tenants: TenantsDep) -> WebhookSecretList:
    """The active signing secrets, newest first; during a rotation every webhook is signed with each."""
    return WebhookSecretList(data=tenants.signing_secrets(tenant.id))


@secrets_router.post("/rotate", status_code=201, response_model=WebhookSecret, responses=errors(400, 409, 413, 422))
def rotate_webhook_secret(tenant: TenantDep, tenants: TenantsDep, idempotent: IdempotentDep,
                          body: RotateSecretRequest | None = None) -> JSONResponse:
    """A new signing secret; the previous ones stay valid for `overlap_s` (default 24 h), then expire."""
    overlap_s = body.overlap_s if body is not None else None
    return created(idempotent.run("rotate_webhook_secret", body={"overlap_s": overlap_s}, create=lambda _: (
        tenants.rotate_signing_secret(tenant.id, overlap_s=overlap_s).model_dump(mode="json"))), status_code=201)


@deliveries_router.get("", response_model=DeliveryList)
def list_deliveries(job_id: JobId, tenant: TenantDep, outbox: OutboxDep, cursor: Cursor = None,
                    limit: Annotated[int, Query(ge=1, le=100)] = 100) -> DeliveryList:
    """Every webhook delivery attempt of the job, oldest first; follow `next_cursor` until it is null."""
    page = outbox.list_deliveries(tenant=tenant.id, job_id=job_id, limit=limit, cursor=cursor)
    return DeliveryList(data=page.items, next_cursor=page.next_cursor)


@deliveries_router.post("/redeliver", status_code=202, response_model=Redelivery, responses=errors(409))
def redeliver(job_id: JobId, tenant: TenantDep, outbox: OutboxDep, idempotent: IdempotentDep) -> JSONResponse:
    """Send the job's final event again (same `webhook-id`), with a fresh run of the retry schedule."""
    return created(idempotent.run("redeliver", body={"job_id": job_id}, create=lambda _: (
        outbox.redeliver(tenant=tenant.id, job_id=job_id).model_dump(mode="json"))), status_code=202)


@endpoints_router.post("", status_code=201, response_model=WebhookEndpoint, responses=errors(400, 409, 413, 422))
def create_webhook_endpoint(body: WebhookEndpointCreate, tenant: TenantDep, endpoints: EndpointsDep,
                            idempotent: IdempotentDep) -> JSONResponse:
    """Register a URL for the final events of the tenant's jobs and responses of the given `event_types`
    (`job.completed`, `job.failed`, `job.cancelled`, `response.completed`, `response.failed`,
    `response.cancelled`, `response.incomplete`). The URL is checked as a job's `callback_url` is (422
    `callback_url_forbidden`); a tenant has at most 10 endpoints (409 `too_many_webhook_endpoints`). Events are
    signed with the tenant's signing secrets (`GET /v1/webhook-secrets`)."""
    answer = idempotent.run("create_webhook_endpoint", body=body.model_dump(mode="json"), create=lambda _: (
        endpoints.create(tenant.id, url=body.url, event_types=body.event_types).model_dump(mode="json")))
    return created(answer, status_code=201, location=f"/v1/webhook-endpoints/{answer.answer['id']}")


@endpoints_router.get("", response_model=WebhookEndpointList)
def list_webhook_endpoints(tenant: TenantDep, endpoints: EndpointsDep) -> WebhookEndpointList:
    """The tenant's webhook endpoints, oldest first (at most 10: one page)."""
    return WebhookEndpointList(data=endpoints.of_tenant(tenant.id))


@endpoints_router.get("/{endpoint_id}", response_model=WebhookEndpoint, responses=errors(404, 422))
def get_webhook_endpoint(endpoint_id: EndpointId, tenant: TenantDep, endpoints: EndpointsDep) -> WebhookEndpoint:
    """One of the tenant's webhook endpoints (another tenant's is a 404)."""
    return endpoints.get(tenant.id, endpoint_id)


@endpoints_router.delete("/{endpoint_id}", status_code=204, response_class=Response, responses=errors(404, 422))
def delete_webhook_endpoint(endpoint_id: EndpointId, tenant: TenantDep, endpoints: EndpointsDep) -> Response:
    """Remove a webhook endpoint: no further event or attempt goes to it, retries already queued included."""
    endpoints.delete(tenant.id, endpoint_id)
    return Response(status_code=204)
