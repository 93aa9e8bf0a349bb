"""Dependencies of the routes: the process's services and the caller's tenant."""

from __future__ import annotations

import time
from typing import Annotated, Any

from aws_lambda_powertools import Logger
from fastapi import Depends, Request

from aijobs.errors import AuthenticationError
from aijobs.services import Services, get_services

logger = Logger(service="aijobs")

# key hash -> (tenant, read at); a warm function skips the key lookup for a while
_tenant_cache: dict[str, tuple[str, float]] = {}


def services() -> Services:
    return get_services()


ServicesDep = Annotated[Services, Depends(services)]


def authenticate(request: Request, svc: ServicesDep) -> str:
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise AuthenticationError("an API key is required: Authorization: Bearer <key>", code="missing_api_key")
    cached = _tenant_cache.get(key)
    if cached and time.monotonic() - cached[1] < svc.settings.api_key_cache_s:
        tenant = cached[0]
    else:
        found = svc.store.tenant_for_key(key)
        if found is None:
            raise AuthenticationError("the API key is not valid", code="invalid_api_key")
        tenant = found
        _tenant_cache[key] = (tenant, time.monotonic())
    logger.append_keys(tenant=tenant)
    return tenant


TenantDep = Annotated[str, Depends(authenticate)]


def lambda_context(request: Request) -> Any:
    """The Lambda context when running under Mangum, else None."""
    return request.scope.get("aws.context")
