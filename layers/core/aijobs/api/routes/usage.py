"""GET /v1/usage: the caller's usage by UTC day, and its limits."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query

from aijobs.api.deps import ServicesDep, TenantDep
from aijobs.api.responses import errors
from aijobs.models.usage import UsageReport

router = APIRouter(prefix="/v1/usage", tags=["usage"], responses=errors(401, 422, 429, 500))


@router.get("", response_model=UsageReport)
def get_usage(tenant: TenantDep, svc: ServicesDep,
              from_: Annotated[dt.date | None, Query(alias="from", description="First UTC day (YYYY-MM-DD)")] = None,
              to: Annotated[dt.date | None, Query(description="Last UTC day, included (default: today)")] = None,
              ) -> UsageReport:
    """The caller's limits in force, today's counts, and one row per UTC day from `from` to `to` (default: the last
    7 days), at most 92 days (422 `range_too_long`). A job's tokens and cost count
    on the day it ends; `requests` and `jobs` on the day they were made."""
    return svc.usage.usage(tenant.id, from_, to)
