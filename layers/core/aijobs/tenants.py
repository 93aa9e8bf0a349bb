"""Tenants and their credentials: API keys (stored as SHA-256, never in clear) and webhook signing secrets.

``TenantStore`` owns the tenant and API-key items; ``TenantService`` is what the API and the operator use.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cachetools import TTLCache

from aijobs.clock import Clock, system_clock
from aijobs.dynamo import api_key_key, conditional, limits_key, tenant_key, to_attributes
from aijobs.errors import AuthenticationError, RateLimited
from aijobs.ids import hash_api_key, new_api_key
from aijobs.models.tenants import Limits, Tenant, TenantLimits
from aijobs.models.webhooks import WebhookSecret
from aijobs.settings import Settings
from aijobs.webhooks.store import WebhookStore


class TenantStore:
    def __init__(self, *, table: Any, clock: Clock = system_clock) -> None:
        self._table = table
        self._clock = clock

    def create_tenant(self, tenant: str) -> bool:
        """Create the tenant; False (and nothing written) if it exists."""
        return conditional(self._table.put_item, Item={**tenant_key(tenant), "tenant": tenant,
                                                       "created_at": int(self._clock())},
                           ConditionExpression="attribute_not_exists(pk)") is not None

    def put_api_key(self, *, key_hash: str, tenant: str) -> None:
        self._table.put_item(Item={**api_key_key(key_hash), "tenant": tenant, "created_at": int(self._clock())})

    def tenant_for_key(self, key_hash: str) -> Tenant | None:
        item = self._table.get_item(Key=api_key_key(key_hash)).get("Item")
        return Tenant(id=str(item["tenant"])) if item else None

    def get_limits(self, tenant: str) -> TenantLimits:
        """The limits the tenant has set (all null when it has set none)."""
        item = self._table.get_item(Key=limits_key(tenant)).get("Item")
        return TenantLimits.model_validate(item.get("limits") or {}) if item else TenantLimits()

    def put_limits(self, tenant: str, limits: TenantLimits) -> None:
        self._table.put_item(Item={**limits_key(tenant), "tenant": tenant, "updated_at": int(self._clock()),
                                   "limits": to_attributes(limits)})


class FailedAuthentications:
    """Failed authentications per source address, in this process.

    Past ``limit`` failures within ``window_s`` of a source's first one, the source is refused with 429 until that
    window ends, whatever key it sends (so it cannot go on trying keys). Each API instance counts on its own; API
    Gateway's stage throttling bounds the total.
    """

    def __init__(self, *, limit: int = 20, window_s: float = 60.0, clock: Clock = system_clock) -> None:
        self.limit, self.window_s, self._clock = limit, window_s, clock
        self._windows: TTLCache[str, list[float]] = TTLCache(maxsize=100_000, ttl=window_s, timer=clock)
        self._lock = threading.Lock()

    def check(self, source: str) -> None:
        with self._lock:
            started, failures = self._windows.get(source, (0.0, 0))
        if failures >= self.limit:
            raise RateLimited("too many failed authentications from this address; try again later",
                              code="too_many_failed_authentications",
                              retry_after=max(1, math.ceil(started + self.window_s - self._clock())))

    def failed(self, source: str) -> None:
        with self._lock:
            if (window := self._windows.get(source)) is None:
                self._windows[source] = [self._clock(), 1]
            else:
                window[1] += 1


@dataclass
class TenantService:
    """API keys and signing secrets of tenants; a warm process remembers a key's tenant for ``key_cache_s``."""

    store: TenantStore
    secrets: WebhookStore
    key_cache_s: float = 60.0
    # A tenant's limits in force from what it set (None: nothing): Settings.default_limits
    limit_defaults: Callable[[TenantLimits | None], Limits] = field(default=lambda limits: Settings().default_limits(
        limits))
    secret_overlap_s: int = 86_400  # how long a rotated-out secret keeps signing, unless the caller says
    failures: FailedAuthentications = field(default_factory=FailedAuthentications)
    _keys: TTLCache[str, Tenant] = field(init=False, repr=False)
    _keys_lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._keys = TTLCache(maxsize=4096, ttl=self.key_cache_s)
        self._limits: TTLCache[str, Limits] = TTLCache(maxsize=4096, ttl=self.key_cache_s)

    def limits(self, tenant: str) -> Limits:
        """The tenant's limits in force; a warm process remembers them for ``key_cache_s``, as it does keys."""
        with self._keys_lock:
            limits = self._limits.get(tenant)
        if limits is None:
            limits = self.limit_defaults(self.store.get_limits(tenant))
            with self._keys_lock:
                self._limits[tenant] = limits
        return limits

    def set_limits(self, tenant: str, limits: TenantLimits) -> Limits:
        """Set the tenant's limits (null fields: the defaults); in force at once here, elsewhere within the cache."""
        self.store.put_limits(tenant, limits)
        with self._keys_lock:
            self._limits.pop(tenant, None)
        return self.limits(tenant)

    def add_api_key(self, tenant: str, key: str | None = None) -> str:
        """Store a key for the tenant (a new one unless given) and return it; only its hash is kept.

        A tenant's first key creates the tenant, with its first webhook signing secret.
        """
        key = key or new_api_key()
        if self.store.create_tenant(tenant):
            self.secrets.put_secret(tenant)
        self.store.put_api_key(key_hash=hash_api_key(key), tenant=tenant)
        return key

    def authenticate(self, key: str, *, source: str = "") -> Tenant:
        """The tenant of an API key; ``AuthenticationError`` if the key is missing or not valid.

        A ``source`` address with too many failures is refused (``RateLimited``) before its key is looked at.
        """
        self.failures.check(source)
        if not key:
            self.failures.failed(source)
            raise AuthenticationError("an API key is required: Authorization: Bearer <key>", code="missing_api_key")
        key_hash = hash_api_key(key)
        with self._keys_lock:
            tenant = self._keys.get(key_hash)
        if tenant is None:
            tenant = self.store.tenant_for_key(key_hash)
            if tenant is None:
                self.failures.failed(source)
                raise AuthenticationError("the API key is not valid", code="invalid_api_key")
            with self._keys_lock:
                self._keys[key_hash] = tenant
        return tenant

    def signing_secrets(self, tenant: str) -> list[WebhookSecret]:
        """The tenant's active webhook signing secrets, newest first."""
        return self.secrets.active_secrets(tenant)

    def rotate_signing_secret(self, tenant: str, *, overlap_s: int | None = None) -> WebhookSecret:
        """A new signing secret; the previous ones stay valid for ``overlap_s`` (default: the deployment's)."""
        return self.secrets.rotate_secret(tenant, overlap_s=self.secret_overlap_s if overlap_s is None else overlap_s)
