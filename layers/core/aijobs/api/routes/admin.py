"""/v1/admin: tenants' API keys and limits, tenant deletion, and the audit of these actions (the operator's API).

Every route needs the admin key (``Authorization: Bearer <admin key>``). Without it, with a tenant's key, or when
the deployment has no admin key, every route answers the 404 of a route that does not exist.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from aijobs.api.deps import MAX_ID_CHARS, Cursor, ServicesDep, TenantsDep
from aijobs.api.responses import errors
from aijobs.errors import from_validation_errors
from aijobs.models.admin import ApiKeyCreated, ApiKeyList, AuditList, TenantLimitsOut, TenantList
from aijobs.models.tenants import TENANT_PATTERN, TenantLimits
from aijobs.models.usage import UsageReport
from aijobs.observability import logger


async def admin(request: Request, tenants: TenantsDep) -> None:
    """The admin key, or the 404 of a route that does not exist (counted as a failed authentication)."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    key = key.strip() if scheme.lower() == "bearer" else ""
    source = request.client.host if request.client else ""  # as for tenants' keys (deps.authenticate)
    await run_in_threadpool(tenants.authenticate_admin, key, source=source)
    logger.thread_safe_append_keys(actor="admin")


router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(admin)], responses=errors(404, 500))

TenantName = Annotated[str, Path(pattern=TENANT_PATTERN, description="The tenant's name: 1-64 letters, digits, '_', "
                                                                      "'.' or '-'")]
KeyId = Annotated[str, Path(max_length=MAX_ID_CHARS, description="A key's id (key_...)")]


@router.post("/tenants/{tenant}/keys", status_code=201, response_model=ApiKeyCreated, responses=errors(422))
def create_key(tenant: TenantName, tenants: TenantsDep) -> JSONResponse:
    """A new API key for the tenant (a tenant's first key creates it). The key is in this answer only: only its
    SHA-256 is stored."""
    created = tenants.create_key(tenant, actor="admin")
    return JSONResponse(created.model_dump(mode="json"), status_code=201,
                        headers={"Cache-Control": "no-store"})  # the one answer that holds a key


@router.get("/tenants", response_model=TenantList, responses=errors(422))
def list_tenants(tenants: TenantsDep, cursor: Cursor = None,
                 limit: Annotated[int, Query(ge=1, le=100)] = 100) -> TenantList:
    """Every tenant, by name, with when it was made (by its first key); follow `next_cursor` until it is null."""
    page = tenants.list_tenants(limit=limit, cursor=cursor)
    return TenantList(data=page.items, next_cursor=page.next_cursor)


@router.get("/tenants/{tenant}/keys", response_model=ApiKeyList, responses=errors(422))
def list_keys(tenant: TenantName, tenants: TenantsDep, cursor: Cursor = None,
              limit: Annotated[int, Query(ge=1, le=100)] = 20) -> ApiKeyList:
    """The tenant's keys, newest first: ids, prefixes and creation times, never a key or its hash. Keys made before
    key ids existed work but are not listed (deleting the tenant stops them)."""
    page = tenants.list_keys(tenant, limit=limit, cursor=cursor)
    return ApiKeyList(data=page.items, next_cursor=page.next_cursor)


@router.delete("/keys/{key_id}", status_code=204, response_class=Response, responses=errors(422))
def revoke_key(key_id: KeyId, tenants: TenantsDep) -> Response:
    """Revoke a key: refused at once by the process that answers this, and by every other within the key cache
    time (AIJOBS_API_KEY_CACHE_S, 60 s by default)."""
    tenants.revoke_key(key_id, actor="admin")
    return Response(status_code=204)


@router.get("/tenants/{tenant}/limits", response_model=TenantLimitsOut, responses=errors(422))
def get_limits(tenant: TenantName, tenants: TenantsDep) -> TenantLimitsOut:
    """The tenant's limits as set (null: the stack's default) and as in force."""
    return tenants.tenant_limits(tenant)


# The body is read in the route, after the admin key is checked: a caller without it gets the 404 of no route,
# never a 400 or 422 about a body (FastAPI would parse a declared body before any dependency runs).
_LIMITS_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "$ref": "#/components/schemas/TenantLimits"}}}}}


@router.put("/tenants/{tenant}/limits", response_model=TenantLimitsOut, responses=errors(400, 413, 422),
            openapi_extra=_LIMITS_BODY)
async def put_limits(tenant: TenantName, request: Request, tenants: TenantsDep) -> TenantLimitsOut:
    """Replace the tenant's limits: a field left out or null takes the stack's default. In force at once in the
    process that answers, elsewhere within the key cache time."""
    try:
        body = TenantLimits.model_validate_json(await request.body())
    except ValidationError as exc:
        raise from_validation_errors(exc.errors()) from None
    return await run_in_threadpool(tenants.put_tenant_limits, tenant, body, actor="admin")


@router.delete("/tenants/{tenant}", status_code=204, response_class=Response, responses=errors(422, 503))
def delete_tenant(tenant: TenantName, tenants: TenantsDep) -> Response:
    """Delete a tenant: its keys stop working at once, its schedules stop, its limits, webhook signing secrets and
    webhook endpoints go. Its jobs are not purged: they expire by the stack's retention, unreadable meanwhile (no
    key names the tenant). A deletion interrupted midway is finished by calling it again."""
    tenants.delete_tenant(tenant, actor="admin")
    return Response(status_code=204)


@router.get("/tenants/{tenant}/usage", response_model=UsageReport, responses=errors(422))
def tenant_usage(tenant: TenantName, tenants: TenantsDep, svc: ServicesDep,
                 from_: Annotated[dt.date | None, Query(alias="from", description="First UTC day (YYYY-MM-DD)")] = None,
                 to: Annotated[dt.date | None, Query(description="Last UTC day, included (default: today)")] = None,
                 ) -> UsageReport:
    """Any tenant's usage, as `GET /v1/usage` answers it to the tenant (404 for a tenant that does not exist)."""
    tenants.tenant_limits(tenant)  # the tenant must exist
    return svc.usage.usage(tenant, from_, to)


@router.get("/audit", response_model=AuditList, responses=errors(422))
def audit(tenants: TenantsDep, cursor: Cursor = None, limit: Annotated[int, Query(ge=1, le=100)] = 20) -> AuditList:
    """Admin actions (of this API and of the operator command), newest first: who, what, when, before and after."""
    page = tenants.audit(limit=limit, cursor=cursor)
    return AuditList(data=page.items, next_cursor=page.next_cursor)
