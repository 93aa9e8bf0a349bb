"""Webhooks: the tenant's signing secrets, and a job's delivery ledger and redelivery."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from aijobs.api.deps import ServicesDep, TenantDep
from aijobs.api.routes.jobs import IdempotencyKey, run_once
from aijobs.models import DeliveryList, Redelivery, RotateSecretRequest, WebhookSecret, WebhookSecretList

secrets_router = APIRouter(prefix="/v1/webhook-secrets", tags=["webhooks"])
deliveries_router = APIRouter(prefix="/v1/jobs/{job_id}/deliveries", tags=["webhooks"])


@secrets_router.get("", response_model=WebhookSecretList)
def list_webhook_secrets(tenant: TenantDep, svc: ServicesDep) -> WebhookSecretList:
    """The active signing secrets, newest first; during a rotation every webhook is signed with each."""
    return WebhookSecretList(data=svc.webhook_store.active_secrets(tenant))


@secrets_router.post("/rotate", status_code=201, response_model=WebhookSecret)
def rotate_webhook_secret(request: Request, tenant: TenantDep, svc: ServicesDep,
                          body: RotateSecretRequest | None = None,
                          idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """A new signing secret; the previous ones stay valid for `overlap_s` (default 24 h), then expire."""
    overlap_s = svc.settings.webhook_secret_overlap_s
    if body is not None and body.overlap_s is not None:
        overlap_s = body.overlap_s
    answer, replayed = run_once(
        svc, request, operation="rotate_webhook_secret", tenant=tenant, key=idempotency_key,
        body={"overlap_s": overlap_s},
        create=lambda: svc.webhook_store.rotate_secret(tenant, overlap_s=overlap_s).model_dump(mode="json"))
    return JSONResponse(answer, status_code=201, headers={"Idempotent-Replayed": "true"} if replayed else {})


@deliveries_router.get("", response_model=DeliveryList)
def list_deliveries(job_id: str, tenant: TenantDep, svc: ServicesDep) -> DeliveryList:
    """Every webhook delivery attempt of the job, oldest first."""
    return DeliveryList(data=svc.deliveries.list_deliveries(tenant=tenant, job_id=job_id))


@deliveries_router.post("/redeliver", status_code=202, response_model=Redelivery)
def redeliver(job_id: str, tenant: TenantDep, svc: ServicesDep) -> Redelivery:
    """Send the job's final event again (same `webhook-id`), with a fresh run of the retry schedule."""
    return svc.deliveries.redeliver(tenant=tenant, job_id=job_id)
