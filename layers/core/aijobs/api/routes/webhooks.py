"""Webhooks: the tenant's signing secrets, and a job's delivery ledger and redelivery."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from aijobs.api.deps import Cursor, IdempotentDep, JobId, OutboxDep, TenantDep, TenantsDep, created
from aijobs.api.responses import errors
from aijobs.models.webhooks import DeliveryList, Redelivery, RotateSecretRequest, WebhookSecret, WebhookSecretList

secrets_router = APIRouter(prefix="/v1/webhook-secrets", tags=["webhooks"],
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
