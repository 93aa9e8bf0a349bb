"""Concurrency slots: at most ``concurrent_jobs`` of a tenant's jobs run at once, across every worker process.

A tenant's slots are one item, ``TENANT#<t>`` / ``SLOTS``, whose ``held`` map names each running attempt by a short
random token with the end of its lease. A worker takes a slot before it claims a job and gives it back when the
attempt stops running (completed, failed, cancelled, handed back for a retry, or its claim lost). A worker that
dies never gives its slot back: the slot ends with the lease it was taken for (the job's ``job_lease_s``), and the
next worker that finds the tenant full removes the expired slots in the same write that takes its own. So a dead
worker holds a slot no longer than it holds its job.

Costs (why one item, and why it is read first): taking and giving back are one conditional ``UpdateItem`` each,
1 WRU while the item stays under 1 KB (about 23 bytes a running job: some 40 running jobs). A job that finds its
tenant full is told so by a read (``GetItem``, 0.5 RRU), not by a failed conditional write, which would cost a
write unit each time a held-back job looks again. The worker's grants stay GetItem and UpdateItem: no Query, no
Put, no Delete (the item is made by its first UpdateItem).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from aijobs.clock import Clock, system_clock
from aijobs.dynamo import conditional, from_low_level, is_condition_failure, slots_key

# An abandoned tenant's slot item goes with TTL this long after its last slot was taken (all of them have ended).
SLOTS_RETENTION_S = 86_400
# Tries to take a slot when others write the item at the same time (each try reads the item it lost to).
TAKE_TRIES = 4


@dataclass(frozen=True)
class Slot:
    """One running attempt's slot: given back by its token."""

    tenant: str
    token: str
    lease_until: int


def _held(item: dict[str, Any] | None) -> dict[str, int]:
    held = (item or {}).get("held")
    return {str(k): int(v) for k, v in held.items()} if isinstance(held, dict) else {}


class TenantSlots:
    """The owner of the ``SLOTS`` items."""

    def __init__(self, *, table: Any, clock: Clock = system_clock) -> None:
        self._table = table
        self._clock = clock

    def running(self, tenant: str) -> dict[str, int]:
        """The tenant's slots (token -> lease end), live or expired, as read (strongly consistent)."""
        return _held(self._table.get_item(Key=slots_key(tenant), ConsistentRead=True).get("Item"))

    def take(self, tenant: str, *, limit: int, lease_s: int) -> Slot | None:
        """A slot for one attempt, held until ``lease_s`` from now, or None when the tenant runs ``limit`` jobs."""
        now = int(self._clock())
        # Eventually consistent: a stale "full" holds a job back a little longer; a stale "room" costs one failed
        # write. Either way the conditional write below is what keeps the limit.
        held = _held(self._table.get_item(Key=slots_key(tenant)).get("Item"))
        for _ in range(TAKE_TRIES):
            expired = sorted(token for token, until in held.items() if until < now)
            if len(held) - len(expired) >= limit:
                return None
            slot = Slot(tenant=tenant, token=secrets.token_urlsafe(9), lease_until=now + lease_s)
            taken, current = self._write(slot, held=held, expired=expired, limit=limit)
            if taken:
                return slot
            held = current
        return None  # lost every race: the tenant is busy; the job looks again shortly

    def _write(self, slot: Slot, *, held: dict[str, int], expired: list[str],
               limit: int) -> tuple[bool, dict[str, int]]:
        names: dict[str, str] = {"#held": "held", "#expires_at": "expires_at", "#new": slot.token}
        values: dict[str, Any] = {":expires": slot.lease_until + SLOTS_RETENTION_S}
        if not held:
            # The first slot (or the item is gone): the map is made with it.
            request = {"UpdateExpression": "SET #held = :map, #expires_at = :expires",
                       "ConditionExpression": "attribute_not_exists(#held) OR size(#held) = :zero"}
            values |= {":map": {slot.token: slot.lease_until}, ":zero": 0}
            del names["#new"]
        else:
            # Expired slots are removed in the same write; each must still be there, and what stays must leave room.
            gone = {f"#x{i}": token for i, token in enumerate(expired)}
            names |= gone
            values |= {":lease": slot.lease_until, ":room": limit + len(expired)}
            update = "SET #held.#new = :lease, #expires_at = :expires"
            if gone:
                update += " REMOVE " + ", ".join(f"#held.{name}" for name in gone)
            request = {"UpdateExpression": update, "ConditionExpression": " AND ".join(
                ["size(#held) < :room", *(f"attribute_exists(#held.{name})" for name in gone)])}
        try:
            self._table.update_item(Key=slots_key(slot.tenant), ExpressionAttributeNames=names,
                                    ExpressionAttributeValues=values, ReturnValuesOnConditionCheckFailure="ALL_OLD",
                                    **request)
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise
            return False, _held(from_low_level(exc.response.get("Item")))
        return True, held

    def give_back(self, slot: Slot) -> None:
        """End the slot (a no-op when it is gone: removed as expired by another worker)."""
        conditional(self._table.update_item, Key=slots_key(slot.tenant), UpdateExpression="REMOVE #held.#slot",
                    ConditionExpression="attribute_exists(#held.#slot)",
                    ExpressionAttributeNames={"#held": "held", "#slot": slot.token})
