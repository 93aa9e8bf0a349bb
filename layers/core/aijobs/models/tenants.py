"""Tenants: who a request acts for."""

from __future__ import annotations

from pydantic import BaseModel

TENANT_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"


class Tenant(BaseModel):
    """The caller's tenant, as the API key names it."""

    id: str
