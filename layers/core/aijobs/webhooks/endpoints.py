"""A tenant's webhook endpoints: where the final events of its jobs go besides their own ``callback_url``.

An endpoint subscribes to event types (``job.*`` for jobs, OpenAI's ``response.*`` for responses), as OpenAI's
users register theirs; its URL passes the same guard as a ``callback_url``, when created and again at each send.

All of a tenant's endpoints are one item (``dynamo.webhook_endpoints_key``), a map by id, so that:
- the bound (``MAX_ENDPOINTS``) is one conditional write, never exceeded by concurrent creates;
- whoever ends a job (the worker, the API on cancel, the sweeper) reads them with one GetItem, which they may do
  (they may not Query); the item lives in the tenant's partition, so deleting a tenant deletes it.

Ending a job reads them through a per-process cache (``cache_s``, 10 s): a tenant without endpoints costs at most
one GetItem per process every 10 s, and an endpoint gets the events of the jobs that end from up to 10 s after it
was created (at once in the process that created it). The webhook sender reads them uncached: a deleted endpoint
gets no further attempt.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aijobs.clock import Clock, system_clock
from aijobs.dynamo import conditional, to_attributes, webhook_endpoints_key
from aijobs.errors import Conflict, InvalidRequest, NotFound
from aijobs.ids import new_endpoint_id
from aijobs.models.webhooks import EVENT_TYPES, WebhookEndpoint
from aijobs.observability import logger
from aijobs.webhooks.guard import CallbackGuard

# Endpoints per tenant: each final event of the tenant's jobs is one delivery per subscribed endpoint.
MAX_ENDPOINTS = 10
CACHE_S = 10.0


def check_event_types(event_types: list[str]) -> list[str]:
    """The types, deduplicated in their order; an unknown one is a 422 that names it."""
    unknown = [t for t in event_types if t not in EVENT_TYPES]
    if unknown:
        raise InvalidRequest(f"unknown event type {unknown[0]!r}; known: {', '.join(EVENT_TYPES)}",
                             code="unknown_event_type")
    return list(dict.fromkeys(event_types))


def endpoint_not_found(endpoint_id: str) -> NotFound:
    return NotFound(f"no webhook endpoint {endpoint_id}", code="webhook_endpoint_not_found")


@dataclass
class _Cached:
    endpoints: list[WebhookEndpoint]
    until: float


@dataclass
class WebhookEndpoints:
    table: Any
    guard: CallbackGuard = field(default_factory=CallbackGuard)
    clock: Clock = system_clock
    cache_s: float = CACHE_S
    _cache: dict[str, _Cached] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _reading: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    # --- the API --------------------------------------------------------------------------------------------

    def create(self, tenant: str, *, url: str, event_types: list[str]) -> WebhookEndpoint:
        """A new endpoint; 422 for a URL the guard refuses or an unknown type, 409 past ``MAX_ENDPOINTS``."""
        types = check_event_types(event_types)
        self.guard.check_url(url)
        endpoint = WebhookEndpoint(id=new_endpoint_id(), url=url, event_types=types,
                                   created_at=int(self.clock()))
        key = webhook_endpoints_key(tenant)
        # The map must exist before one of its entries can be set; if_not_exists keeps the one there.
        self.table.update_item(Key=key, UpdateExpression="SET #e = if_not_exists(#e, :empty)",
                               ExpressionAttributeNames={"#e": "endpoints"}, ExpressionAttributeValues={":empty": {}})
        added = conditional(self.table.update_item, Key=key, UpdateExpression="SET #e.#id = :endpoint",
                            ConditionExpression="size(#e) < :max",
                            ExpressionAttributeNames={"#e": "endpoints", "#id": endpoint.id},
                            ExpressionAttributeValues={":endpoint": to_attributes(endpoint), ":max": MAX_ENDPOINTS})
        if added is None:
            raise Conflict(f"a tenant has at most {MAX_ENDPOINTS} webhook endpoints; delete one first",
                           code="too_many_webhook_endpoints")
        self.forget(tenant)
        return endpoint

    def of_tenant(self, tenant: str) -> list[WebhookEndpoint]:
        """The tenant's endpoints, oldest first (consistent: what the tenant just made or deleted shows)."""
        item = self.table.get_item(Key=webhook_endpoints_key(tenant), ConsistentRead=True).get("Item") or {}
        endpoints = [WebhookEndpoint.model_validate(e) for e in (item.get("endpoints") or {}).values()]
        return sorted(endpoints, key=lambda e: e.id)

    def get(self, tenant: str, endpoint_id: str) -> WebhookEndpoint:
        for endpoint in self.of_tenant(tenant):
            if endpoint.id == endpoint_id:
                return endpoint
        raise endpoint_not_found(endpoint_id)

    def delete(self, tenant: str, endpoint_id: str) -> None:
        """Remove an endpoint: no further event or attempt goes to it (attempts already queued are dropped)."""
        removed = conditional(self.table.update_item, Key=webhook_endpoints_key(tenant),
                              UpdateExpression="REMOVE #e.#id", ConditionExpression="attribute_exists(#e.#id)",
                              ExpressionAttributeNames={"#e": "endpoints", "#id": endpoint_id})
        self.forget(tenant)
        if removed is None:
            raise endpoint_not_found(endpoint_id)

    # --- the senders' side ----------------------------------------------------------------------------------

    def subscribed(self, tenant: str, event_type: str, *, cached: bool = True) -> list[WebhookEndpoint]:
        """The tenant's endpoints that get events of this type, oldest first."""
        endpoints = self.cached(tenant) if cached else self.of_tenant(tenant)
        return [e for e in endpoints if event_type in e.event_types]

    def has_any(self, tenant: str) -> bool:
        """Whether the tenant has an endpoint (cached): a job of a tenant without, and without callback_url, sends
        nothing.

        Asked as a job ends (before its terminal write, and before a cancel answers): should the read fail, the
        answer is yes, so that the job ends all the same and stays in the sweep index, whose sweeper queues its
        event (or lets it go) once it can read them.
        """
        try:
            return bool(self.cached(tenant))
        except Exception:
            logger.exception("webhook endpoints not read; the job's event is left to the sweeper")
            return True

    def cached(self, tenant: str) -> list[WebhookEndpoint]:
        with self._lock:
            hit = self._cache.get(tenant)
        if hit is not None and hit.until > time.monotonic():
            return hit.endpoints
        # One read per tenant however many jobs end at once: the batch's other jobs wait for the first's answer.
        with self._reading:
            with self._lock:
                hit = self._cache.get(tenant)
            now = time.monotonic()
            if hit is not None and hit.until > now:
                return hit.endpoints
            endpoints = self.of_tenant(tenant)
            with self._lock:
                self._cache[tenant] = _Cached(endpoints, now + self.cache_s)
        return endpoints

    def forget(self, tenant: str) -> None:
        """Drop the tenant's cached endpoints (this process changed them, or deleted the tenant)."""
        with self._lock:
            self._cache.pop(tenant, None)
