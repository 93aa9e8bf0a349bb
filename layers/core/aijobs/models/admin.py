"""The admin API's bodies (``/v1/admin/``): tenants' API keys, limits and the audit of admin actions."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from aijobs.models.common import Model
from aijobs.models.tenants import Limits, TenantLimits

Actor = Literal["admin", "operator"]  # the admin key (the API), or the operator command with AWS credentials


class ApiKeyInfo(Model):
    """An API key as lists show it: never the key nor its hash."""

    id: str = Field(description="The key's id (key_...), which revocation names")
    tenant: str
    prefix: str = Field(description="The key's first characters, to tell keys apart; not enough to use it")
    created_at: int


class ApiKeyCreated(Model):
    """A new API key: `key` is shown here once; only its SHA-256 is stored."""

    id: str
    key: str
    tenant: str
    created_at: int


class TenantInfo(Model):
    model_config = ConfigDict(extra="ignore")  # the item's keys

    tenant: str
    created_at: int


class TenantList(Model):
    data: list[TenantInfo]
    next_cursor: str | None = Field(description="The next page's cursor; null at the end")


class ApiKeyList(Model):
    data: list[ApiKeyInfo]
    next_cursor: str | None = Field(description="The next page's cursor; null at the end")


class TenantLimitsOut(Model):
    """A tenant's limits as set (null: the stack's default) and as in force."""

    tenant: str
    set: TenantLimits
    in_force: Limits


class AuditEntry(Model):
    """One admin action: who, what (the action and its target), when, and the state before and after it.

    Keys and their hashes never appear: a key is named by its id.
    """

    id: str = Field(description="The entry's id (aud_...), sorting by time")
    actor: Actor
    action: Literal["create_key", "revoke_key", "set_limits", "delete_tenant"]
    tenant: str
    target: str = Field(description="What the action changed: a key id, or the tenant")
    at: int
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None


class AuditList(Model):
    data: list[AuditEntry]
    next_cursor: str | None = Field(description="The next (older) page's cursor; null at the end")
