"""Tenants: who a request acts for."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from aijobs.models.common import Model

TENANT_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"


class Tenant(Model):
    """The caller's tenant, as the API key names it."""

    id: str


OnLimit = Literal["reject", "defer"]
ModelName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[!-~]+$")]


class TenantLimits(Model):
    """A tenant's limits as an operator set them (``PUT /v1/admin/tenants/{tenant}/limits``); null: the stack's
    default (template parameters, ``AIJOBS_LIMIT_*``)."""

    model_config = ConfigDict(extra="forbid")

    requests_per_minute: Annotated[int | None, Field(ge=1, le=1_000_000)] = None
    tokens_per_minute: Annotated[int | None, Field(ge=1, le=1_000_000_000)] = None
    concurrent_jobs: Annotated[int | None, Field(ge=1, le=10_000)] = None
    daily_cost_usd: Annotated[float | None, Field(ge=0, le=1_000_000)] = None  # hard: new jobs are refused past it
    daily_cost_soft_usd: Annotated[float | None, Field(ge=0, le=1_000_000)] = None  # a warning past it
    allowed_models: Annotated[list[ModelName] | None, Field(max_length=100)] = None  # null: every model
    on_limit: OnLimit | None = None  # a job over the token rate or the budget: refused (429) or deferred


class Limits(Model):
    """A tenant's limits in force: what it set, else the stack's defaults."""

    requests_per_minute: int
    tokens_per_minute: int
    concurrent_jobs: int
    daily_cost_usd: float
    daily_cost_soft_usd: float
    allowed_models: list[str] | None = None
    on_limit: OnLimit = "reject"
