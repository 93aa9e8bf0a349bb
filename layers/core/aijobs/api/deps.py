"""Dependencies of the routes: the caller's tenant, the one service each route needs, and idempotency."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Header, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from aijobs.batches import BatchService
from aijobs.idempotency import IdempotentAnswer, RequestKey
from aijobs.jobs import JobService
from aijobs.models.jobs import Job, JobOut
from aijobs.models.prompts import LABEL_PATTERN, MAX_VERSION
from aijobs.models.tenants import Tenant
from aijobs.observability import logger
from aijobs.prompts import PromptService
from aijobs.rates import ANSWER_HEADERS, OverRate, answer_headers
from aijobs.services import Services, get_services
from aijobs.tenants import TenantService
from aijobs.waits import JobWaits
from aijobs.webhooks.endpoints import WebhookEndpoints
from aijobs.webhooks.outbox import WebhookOutbox

if TYPE_CHECKING:  # schedules load croniter, collections what search needs: only when their routes run
    from aijobs.collections import CollectionService
    from aijobs.schedules.service import ScheduleService

# Ids longer than any id are refused before they reach DynamoDB, whose keys stop at 2048 bytes.
MAX_ID_CHARS = 64
JobId = Annotated[str, Path(max_length=MAX_ID_CHARS, description="A job's id (job_...)")]
BatchId = Annotated[str, Path(max_length=MAX_ID_CHARS, description="A batch's id (bat_...)")]
ScheduleId = Annotated[str, Path(max_length=MAX_ID_CHARS, description="A schedule's id (sch_...)")]
EndpointId = Annotated[str, Path(max_length=MAX_ID_CHARS, description="A webhook endpoint's id (we_...)")]
PromptIdPath = Annotated[str, Path(max_length=MAX_ID_CHARS, description="A registry prompt's id (pmpt_...)")]
CollectionIdPath = Annotated[str, Path(max_length=MAX_ID_CHARS, description="A collection's id (col_...)")]
VersionPath = Annotated[int, Path(ge=1, le=MAX_VERSION, description="A version number of the prompt")]
LabelPath = Annotated[str, Path(pattern=LABEL_PATTERN, description="A label, e.g. production or staging")]
# A list's cursor; decode_cursor (dynamo.py) refuses one that is not ours (422 invalid_cursor).
Cursor = Annotated[str | None, Query(max_length=2048, description=(
    "next_cursor of the previous page; a page may be short or empty and still have one: the list ends only "
    "where next_cursor is null"))]


def services() -> Services:
    return get_services()


ServicesDep = Annotated[Services, Depends(services)]


def jobs_service(svc: ServicesDep) -> JobService:
    return svc.jobs


def batch_service(svc: ServicesDep) -> BatchService:
    return svc.batches


def tenants_service(svc: ServicesDep) -> TenantService:
    return svc.tenants


def webhook_outbox(svc: ServicesDep) -> WebhookOutbox:
    return svc.outbox


def webhook_endpoints(svc: ServicesDep) -> WebhookEndpoints:
    return svc.webhook_endpoints


def schedule_service(svc: ServicesDep) -> Any:
    return svc.schedules


def prompt_service(svc: ServicesDep) -> PromptService:
    return svc.prompts


def collection_service(svc: ServicesDep) -> Any:
    return svc.collections


def job_waits(svc: ServicesDep) -> JobWaits:
    return svc.job_waits


def stream_base(svc: ServicesDep, request: Request) -> str:
    """The URL of the front that streams: the deployment's (AIJOBS_STREAM_URL), else the one this request used."""
    return svc.settings.stream_url or str(request.base_url)


@dataclass(frozen=True)
class JobView:
    """A job as this request shows it: naming the front that streams, its output files at presigned URLs."""

    stream_base: str
    svc: Services

    def __call__(self, job: Job) -> JobOut:
        return job.to_public(stream_base=self.stream_base, link=self.svc.file_link)


def job_view(svc: ServicesDep, request: Request) -> JobView:
    return JobView(stream_base(svc, request), svc)


JobsDep = Annotated[JobService, Depends(jobs_service)]
BatchesDep = Annotated[BatchService, Depends(batch_service)]
WaitsDep = Annotated[JobWaits, Depends(job_waits)]
JobViewDep = Annotated[JobView, Depends(job_view)]
TenantsDep = Annotated[TenantService, Depends(tenants_service)]
OutboxDep = Annotated[WebhookOutbox, Depends(webhook_outbox)]
EndpointsDep = Annotated[WebhookEndpoints, Depends(webhook_endpoints)]
PromptsDep = Annotated[PromptService, Depends(prompt_service)]
if TYPE_CHECKING:
    SchedulesDep = Annotated[ScheduleService, Depends(schedule_service)]
    CollectionsDep = Annotated[CollectionService, Depends(collection_service)]
else:  # FastAPI reads the annotation at run time, where the modules are not loaded yet
    SchedulesDep = Annotated[Any, Depends(schedule_service)]
    CollectionsDep = Annotated[Any, Depends(collection_service)]


async def authenticate(request: Request, tenants: TenantsDep, svc: ServicesDep) -> Tenant:
    """The tenant of the ``Authorization: Bearer`` key, its request counted against its request rate (429 past it,
    aijobs/limits.py); its id joins every log line of the request, its rate window the answer's headers."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    key = key.strip() if scheme.lower() == "bearer" else ""
    # The caller's address (aijobs.api.middleware): API Gateway's requestContext sourceIp (Mangum), the function
    # URL's behind the streaming front, or the peer of the local server.
    source = request.client.host if request.client else ""
    tenant = await run_in_threadpool(tenants.authenticate, key, source=source)
    # Async, so this runs in the request's own task: the key reaches the route's thread, and no other request.
    logger.thread_safe_append_keys(tenant=tenant.id)
    limiter = svc.limiter
    try:
        limits, window = await limiter.count(tenant.id)
    except OverRate as exc:
        limits = await run_in_threadpool(limiter.limits, tenant.id)
        request.state.rate_headers = answer_headers(limits, exc.window, limiter.usage.now())
        raise
    # aijobs.api.middleware puts them on the answer, whatever it is (an error, a stream); a job the route admits
    # updates the tokens left in them (aijobs.rates)
    request.state.rate_headers = answer_headers(limits, window, limiter.usage.now())
    ANSWER_HEADERS.set(request.state.rate_headers)
    return tenant


TenantDep = Annotated[Tenant, Depends(authenticate)]


class Idempotent:
    """A creating POST run at most once per ``Idempotency-Key`` (per tenant and operation), when the key is given."""

    def __init__(self, svc: Services, request: Request, tenant: Tenant, key: str | None) -> None:
        self._svc, self._request, self._tenant, self._key = svc, request, tenant, key

    def run(self, operation: str, *, body: Any,
            create: Callable[[RequestKey | None], dict[str, Any]]) -> IdempotentAnswer:
        """``create(key)``'s answer, or the stored answer of an earlier request with the same key and body.

        ``create`` gets the request's key (None without an ``Idempotency-Key``) to name what it makes by.
        """
        if self._key is None:
            return IdempotentAnswer(answer=create(None), replayed=False)
        idempotency = self._svc.idempotency
        if (context := self._request.scope.get("aws.context")) is not None:
            idempotency.register_lambda_context(context)
        return idempotency.run(scope=f"{self._tenant.id}#{operation}", key=self._key, body=body, operation=create)


def idempotent(svc: ServicesDep, request: Request, tenant: TenantDep,
               idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None) -> Idempotent:
    return Idempotent(svc, request, tenant, idempotency_key)


IdempotentDep = Annotated[Idempotent, Depends(idempotent)]


def created(result: IdempotentAnswer, *, status_code: int, location: str | None = None,
            headers: dict[str, str] | None = None) -> JSONResponse:
    """The answer of a creating POST: ``Location`` when given, ``Idempotent-Replayed: true`` on a replay."""
    headers = dict(headers or {})
    if location is not None:
        headers["Location"] = location
    if result.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(result.answer, status_code=status_code, headers=headers)


def cost_header(job: Job) -> dict[str, str]:
    """``x-aijobs-cost-usd`` on a synchronous answer that carries a finished job (what its model call cost)."""
    return {"x-aijobs-cost-usd": f"{job.cost_usd:f}"} if job.cost_usd is not None and job.status.is_terminal else {}
