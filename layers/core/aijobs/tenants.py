"""Tenants and their credentials: API keys (stored as SHA-256, never in clear) and webhook signing secrets.

``TenantStore`` owns the tenant, API-key, limits and audit items; ``TenantService`` is what the API, the admin API
and the operator command use.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from cachetools import TTLCache

from aijobs.clock import Clock, system_clock
from aijobs.dynamo import (
    AUDIT_PARTITION,
    TENANT_INDEX,
    TENANTS_PARTITION,
    Page,
    api_key_id_key,
    api_key_key,
    api_keys_partition,
    audit_key,
    conditional,
    limits_key,
    query_index,
    tenant_key,
    tenant_partition,
    to_attributes,
    update_request,
)
from aijobs.errors import AuthenticationError, NotFound, RateLimited
from aijobs.ids import hash_api_key, new_api_key, new_key_id, new_ulid
from aijobs.models.admin import Actor, ApiKeyCreated, ApiKeyInfo, AuditEntry, TenantInfo, TenantLimitsOut
from aijobs.models.tenants import Limits, Tenant, TenantLimits
from aijobs.models.webhooks import WebhookSecret
from aijobs.observability import logger
from aijobs.settings import Settings
from aijobs.webhooks.store import WebhookStore


class TenantStore:
    def __init__(self, *, table: Any, clock: Clock = system_clock) -> None:
        self._table = table
        self._clock = clock

    def now(self) -> float:
        return self._clock()

    def create_tenant(self, tenant: str) -> bool:
        """Create the tenant; False if it exists (then it is put in the list of tenants, should it predate it)."""
        listed = {"gsi1pk": TENANTS_PARTITION, "gsi1sk": tenant}
        if conditional(self._table.put_item, Item={**tenant_key(tenant), "tenant": tenant,
                                                   "created_at": int(self._clock()), **listed},
                       ConditionExpression="attribute_not_exists(pk)") is not None:
            return True
        conditional(self._table.update_item, Key=tenant_key(tenant), **update_request(
            set=listed, condition="attribute_exists(pk) AND attribute_not_exists(gsi1pk)"))
        return False

    def list_tenants(self, *, limit: int, cursor: str | None) -> Page[TenantInfo]:
        """Every tenant, by name."""
        page = query_index(self._table, index=TENANT_INDEX, partition=TENANTS_PARTITION, limit=limit, cursor=cursor,
                           newest_first=False)
        return Page([TenantInfo.model_validate(item) for item in page.items], page.next_cursor)

    def tenant_created_at(self, tenant: str, *, consistent: bool = True) -> int | None:
        """When the tenant was created; None if it does not exist (never made, or deleted)."""
        item = self._table.get_item(Key=tenant_key(tenant), ConsistentRead=consistent).get("Item")
        return int(item["created_at"]) if item else None

    def put_api_key(self, *, key_hash: str, tenant: str, prefix: str) -> ApiKeyInfo:
        """Store a key: its item by id (lists, revocation) first, then the one authentication reads.

        In that order a failure between the two leaves a listed key that does not work, which revoking removes;
        never a working key that nobody can list or revoke.
        """
        info = ApiKeyInfo(id=new_key_id(), tenant=tenant, prefix=prefix, created_at=int(self._clock()))
        self._table.put_item(Item={**api_key_id_key(info.id), "gsi1pk": api_keys_partition(tenant),
                                   "gsi1sk": info.id, "key_hash": key_hash, **info.model_dump()})
        self._table.put_item(Item={**api_key_key(key_hash), "tenant": tenant, "created_at": info.created_at,
                                   "key_id": info.id})
        return info

    def tenant_for_key(self, key_hash: str) -> Tenant | None:
        """The key's tenant, if the key and its tenant exist and the key is not older than the tenant.

        The tenant's item is read too: a deleted tenant's keys stop at once even where its key items outlive it (a
        key made before key ids, which no list finds, or one the tenant index did not show yet at the deletion),
        and such a key does not come back with a new tenant of the same name.
        """
        item = self._table.get_item(Key=api_key_key(key_hash)).get("Item")
        if not item:
            return None
        # Eventually consistent (half the read units): a deletion is seen within a second, well inside the cache.
        created = self.tenant_created_at(str(item["tenant"]), consistent=False)
        if created is None or int(item.get("created_at", 0)) < created:
            return None
        return Tenant(id=str(item["tenant"]))

    def get_api_key(self, key_id: str) -> tuple[ApiKeyInfo, str] | None:
        """A key by id, with its hash (for revocation only: the hash is never shown)."""
        item = self._table.get_item(Key=api_key_id_key(key_id), ConsistentRead=True).get("Item")
        return (ApiKeyInfo.model_validate(item), str(item["key_hash"])) if item else None

    def list_api_keys(self, tenant: str, *, limit: int, cursor: str | None) -> Page[ApiKeyInfo]:
        """A tenant's keys, newest first (keys made before key ids are not listed)."""
        page = query_index(self._table, index=TENANT_INDEX, partition=api_keys_partition(tenant), limit=limit,
                           cursor=cursor)
        return Page([ApiKeyInfo.model_validate(item) for item in page.items], page.next_cursor)

    def delete_api_key(self, key_id: str, key_hash: str) -> None:
        """The key authentication reads first (it stops working), then its item by id (a retry finds it again)."""
        self._table.delete_item(Key=api_key_key(key_hash))
        self._table.delete_item(Key=api_key_id_key(key_id))

    def delete_tenant_items(self, tenant: str) -> None:
        """Every item of the tenant's partition (limits, signing secrets, webhook endpoints, prompts and their
        versions), the tenant's own item last: until it goes the tenant exists, and deleting it again finishes the
        job."""
        from boto3.dynamodb.conditions import Key as KeyCondition

        query: dict[str, Any] = {"KeyConditionExpression": KeyCondition("pk").eq(tenant_partition(tenant)),
                                 "ConsistentRead": True}
        keys: list[dict[str, Any]] = []
        while True:
            answer = self._table.query(**query)
            keys += [{"pk": item["pk"], "sk": item["sk"]} for item in answer["Items"]]
            if "LastEvaluatedKey" not in answer:
                break
            query["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
        for key in sorted(keys, key=lambda k: k == tenant_key(tenant)):
            self._table.delete_item(Key=key)

    def put_audit(self, entry: AuditEntry) -> None:
        self._table.put_item(Item={**audit_key(entry.id.removeprefix("aud_")), **to_attributes(entry)})

    def list_audit(self, *, limit: int, cursor: str | None) -> Page[AuditEntry]:
        """Admin actions, newest first."""
        page = query_index(self._table, index=None, partition=AUDIT_PARTITION, limit=limit, cursor=cursor)
        return Page([AuditEntry.model_validate(_plain(item)) for item in page.items], page.next_cursor)


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

    def refused(self, source: str) -> bool:
        """Whether ``source`` is past its failures (what ``check`` raises on)."""
        with self._lock:
            _, failures = self._windows.get(source, (0.0, 0))
        return bool(failures >= self.limit)

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
    # The admin key (None: the admin API is off), read when first needed: Services reads the secret then.
    admin_key: Callable[[], str | None] = field(default=lambda: None)
    # The schedule service, to stop a deleted tenant's schedules (their EventBridge schedules too); made lazily.
    schedules: Callable[[], Any] | None = None
    # The collection service, to delete a deleted tenant's collections' chunks from the vector index; made lazily.
    collections: Callable[[], Any] | None = None
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
        return self._new_key(tenant, key).key

    def _new_key(self, tenant: str, key: str | None = None) -> ApiKeyCreated:
        key = key or new_api_key()
        if self.store.create_tenant(tenant):
            self.secrets.put_secret(tenant)
        # "aj_" and 5 characters (30 random bits of 256): enough to tell keys apart, nothing to guess with.
        info = self.store.put_api_key(key_hash=hash_api_key(key), tenant=tenant, prefix=key[:8])
        return ApiKeyCreated(id=info.id, key=key, tenant=tenant, created_at=info.created_at)

    # --- the admin API and the operator command: every change is audited ------------------------

    def authenticate_admin(self, key: str, *, source: str = "") -> None:
        """Nothing if ``key`` is the admin key; else ``NotFound``, as for a route that does not exist.

        The comparison is in constant time (of SHA-256 digests, so not even the key's length shows). A wrong or
        missing key, a tenant's key included, counts as a failed authentication of ``source``; past the limit the
        source gets the same 404 whatever it sends, the right key too, so guessing is bounded and the answer
        never says the admin API is there.
        """
        admin_key = self.admin_key()
        refused = self.failures.refused(source)
        if admin_key and key and not refused and hmac.compare_digest(
                hashlib.sha256(key.encode()).digest(), hashlib.sha256(admin_key.encode()).digest()):
            return
        if not refused:
            self.failures.failed(source)
        raise NotFound("no such route", code="route_not_found")

    def _require_tenant(self, tenant: str) -> None:
        if self.store.tenant_created_at(tenant) is None:
            raise NotFound("no such tenant", code="tenant_not_found")

    def _audit(self, *, actor: Actor, action: str, tenant: str, target: str, before: dict[str, Any] | None,
               after: dict[str, Any] | None) -> None:
        entry = AuditEntry.model_validate({"id": f"aud_{new_ulid()}", "actor": actor, "action": action,
                                           "tenant": tenant, "target": target, "at": int(self.store.now()),
                                           "before": before, "after": after})
        self.store.put_audit(entry)
        logger.info("admin action", extra={"actor": actor, "action": action, "tenant": tenant, "target": target})

    def create_key(self, tenant: str, *, actor: Actor) -> ApiKeyCreated:
        """A new key for the tenant (created with its first key); the answer is the only time the key is shown."""
        created = self._new_key(tenant)
        self._audit(actor=actor, action="create_key", tenant=tenant, target=created.id, before=None,
                    after=ApiKeyInfo(id=created.id, tenant=tenant, prefix=created.key[:8],
                                     created_at=created.created_at).model_dump())
        return created

    def list_tenants(self, *, limit: int = 100, cursor: str | None = None) -> Page[TenantInfo]:
        return self.store.list_tenants(limit=limit, cursor=cursor)

    def list_keys(self, tenant: str, *, limit: int = 100, cursor: str | None = None) -> Page[ApiKeyInfo]:
        self._require_tenant(tenant)
        return self.store.list_api_keys(tenant, limit=limit, cursor=cursor)

    def revoke_key(self, key_id: str, *, actor: Actor) -> ApiKeyInfo:
        """Delete a key: at once in this process; other warm processes may accept it for ``key_cache_s`` more."""
        found = self.store.get_api_key(key_id) if key_id.startswith("key_") else None
        if found is None:
            raise NotFound("no such key", code="key_not_found")
        info, key_hash = found
        self.store.delete_api_key(key_id, key_hash)
        with self._keys_lock:
            self._keys.pop(key_hash, None)
        self._audit(actor=actor, action="revoke_key", tenant=info.tenant, target=key_id, before=info.model_dump(),
                    after=None)
        return info

    def tenant_limits(self, tenant: str) -> TenantLimitsOut:
        """The tenant's limits as set and in force, read now (not from this process's cache)."""
        self._require_tenant(tenant)
        limits = self.store.get_limits(tenant)
        return TenantLimitsOut(tenant=tenant, set=limits, in_force=self.limit_defaults(limits))

    def put_tenant_limits(self, tenant: str, limits: TenantLimits, *, actor: Actor) -> TenantLimitsOut:
        """Replace the tenant's limits (null fields: the defaults); ``set_limits`` says when they are in force."""
        self._require_tenant(tenant)
        before = self.store.get_limits(tenant)
        in_force = self.set_limits(tenant, limits)
        self._audit(actor=actor, action="set_limits", tenant=tenant, target=tenant,
                    before=before.model_dump(), after=limits.model_dump())
        return TenantLimitsOut(tenant=tenant, set=limits, in_force=in_force)

    def delete_tenant(self, tenant: str, *, actor: Actor) -> None:
        """Remove a tenant: its keys (at once here; ``tenant_for_key`` refuses them everywhere once the tenant item
        is gone), its schedules (EventBridge's too), its limits, signing secrets and webhook endpoints (one item of its
        partition), its collections (their documents' chunks in the vector index too), the tenant item last.

        Its jobs stay until their retention ends (``expires_at``, DynamoDB TTL): nobody can read them meanwhile,
        as no key names the tenant. A deletion that fails midway is finished by running it again.
        """
        self._require_tenant(tenant)
        keys: list[str] = []
        cursor: str | None = None
        while True:
            page = self.store.list_api_keys(tenant, limit=100, cursor=cursor)
            for info in page.items:
                if (found := self.store.get_api_key(info.id)) is not None:
                    self.store.delete_api_key(info.id, found[1])
                keys.append(info.id)
            if (cursor := page.next_cursor) is None:
                break
        with self._keys_lock:
            for key_hash in [h for h, t in self._keys.items() if t.id == tenant]:
                self._keys.pop(key_hash, None)
        schedules = self._delete_schedules(tenant)
        if self.collections is not None:
            self.collections().delete_all(tenant)
        limits = self.store.get_limits(tenant)
        self.store.delete_tenant_items(tenant)
        with self._keys_lock:
            self._limits.pop(tenant, None)
        self._audit(actor=actor, action="delete_tenant", tenant=tenant, target=tenant,
                    before={"keys": keys, "schedules": schedules, "limits": limits.model_dump()}, after=None)

    def _delete_schedules(self, tenant: str) -> list[str]:
        if self.schedules is None:
            return []
        service = self.schedules()
        deleted: list[str] = []
        cursor: str | None = None
        while True:
            page = service.list_schedules(tenant=tenant, limit=100, cursor=cursor)
            for schedule in page.items:
                try:
                    service.delete_schedule(tenant=tenant, schedule_id=schedule.id)
                except NotFound:  # deleted meanwhile (the index lags a deletion a moment)
                    continue
                deleted.append(schedule.id)
            if (cursor := page.next_cursor) is None:
                return deleted

    def audit(self, *, limit: int = 20, cursor: str | None = None) -> Page[AuditEntry]:
        """Admin actions, newest first."""
        return self.store.list_audit(limit=limit, cursor=cursor)

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


def _plain(value: Any) -> Any:
    """DynamoDB's Decimals as the ints and floats they were (an entry's before and after are free-form)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
