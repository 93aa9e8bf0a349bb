"""Concurrency slots: at most ``concurrent_jobs`` of a tenant's jobs run at once, across every worker process; the
jobs over it wait *parked*, in the table, until a slot frees.

A tenant's slots are one item, ``TENANT#<t>`` / ``SLOTS``, whose ``held`` map names each running attempt by a short
random token with the end of its lease. A worker takes a slot before it claims a job and gives it back when the
attempt stops running (completed, failed, cancelled, handed back for a retry, or its claim lost). A worker that
dies never gives its slot back: the slot ends with the lease it was taken for (the job's ``job_lease_s``), and the
next worker that takes one of the tenant's slots removes the expired ones in the same write. So a dead worker holds
a slot no longer than it holds its job.

A job that finds its tenant full is parked (``WaitingJobs``): an item ``TENANT#<t>`` / ``WAIT#<job_id>`` is written,
and its message deleted. The job stays ``queued``; nothing about it cycles through the jobs queue while it waits, so
a tenant's backlog of thousands costs the worker one look per job, and another tenant's messages never queue behind
the backlog's looks. Whoever frees room *releases* the tenant's oldest waiting jobs (job ids are ULIDs: FIFO per
tenant): it deletes their wait items (the conditional delete is what wins the right to send: two releasers never
both send one) and sends their messages again. Room frees when:
- a slot is given back: the giver releases as many as the tenant then has room for (normally one);
- a parked job finds, on a second look right after parking, that a slot freed meanwhile (its giver looked for
  waiting jobs before the wait item was there): it releases at once;
- a take removes a dead worker's expired slots: the taker releases as many as that leaves room for.
What is left, a release whose send failed (``JobReleasesNotSent``) or one whose job was cancelled on its way, is
the backstop's: a parked job is in the sweep index, due ``PARK_BACKSTOP_S`` (with jitter) after it parked, and the
sweeper sends its message again then; it runs if its tenant has room, and parks again (same item) if not.

Costs. Taking and giving back are one conditional ``UpdateItem`` each, 1 WRU while the slots item stays under 1 KB
(about 23 bytes a running job: some 40 running jobs); a tenant's jobs that start together (a batch's) take their
slots in one write when it has room for all of them (``take_all``), and those that stop together give them back in
one (``give_back_all``). A take writes without reading first: the write's condition
keeps the limit, its answer is the item as written (the room left, and any dead worker's expired slot to release
into), and a refusal answers the item as found, which the next try removes expired slots from (a first slot, or a
full tenant, costs that failed write: 1 WRU). The give-back's answer is the item as written too, so the room it
leaves costs no read; and the giver looks for waiting jobs (one strongly consistent ``Query`` of the tenant's
``WAIT#`` range, 1 RRU while it returns under 4 KB: a consistent read is what keeps a job parked a moment earlier
from being missed) only while one of the tenant's jobs has parked within ``WAITING_WINDOW_S`` (the item's
``parked_at``): a tenant that never meets its limit pays for no look. Parking costs ``parked_at`` (1 WRU), the
waiting item's write (1 WRU), the job's sweep entry moved to the backstop (an ``UpdateItem`` of the job item: 1 WRU a
KB of it, plus the sweep index's) and the second look (a consistent ``GetItem`` of the slots, 1 RRU). Releasing one
job costs the wait item's ``DeleteItem`` (1 WRU), the job's state read consistently (1 RRU) and a ``SendMessage``;
the released job is then received and looked at once more, as any message. A parked job that waits past the
backstop is sent again once per backstop period (1,000 jobs waiting: under two looks a second).
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, cast

from boto3.dynamodb.conditions import Key as KeyCondition
from botocore.exceptions import ClientError

from aijobs.clock import Clock, system_clock
from aijobs.dynamo import (
    WAITING_PREFIX,
    conditional,
    from_low_level,
    is_condition_failure,
    parse_waiting,
    slots_key,
    tenant_partition,
    waiting_key,
)
from aijobs.models.jobs import JobStatus, Priority
from aijobs.observability import count, logger

if TYPE_CHECKING:
    from aijobs.queues import JobQueue
    from aijobs.store import JobState, JobStore

# An abandoned tenant's slot item goes with TTL this long after its last slot was taken (all of them have ended).
SLOTS_RETENTION_S = 86_400
# Tries to take a slot when others write the item at the same time (each try reads the item it lost to).
TAKE_TRIES = 4
# A parked job's backstop: the sweeper sends its message again 10 to 20 minutes after it parked (the jitter spreads
# a burst's backstops over the sweeper's runs), should nobody have released it by then. Long enough that a waiting
# backlog costs little (N / 900 looks a second on average), short against the jobs' hour-scale lives.
PARK_BACKSTOP_S = 600
# Entries a release reads past the room it has: those of jobs that no longer wait (cancelled, or started by a
# duplicate message) are skipped; and how many Queries one release makes at most.
RELEASE_LOOKAHEAD = 2
# A job that still waits has parked within this: each parks again at its backstop, at most 2 x PARK_BACKSTOP_S after
# it last did (the sweeper's period and a busy queue's delay are the margin). Givers of a tenant none of whose jobs
# has parked within it look for no waiting jobs.
WAITING_WINDOW_S = 4 * PARK_BACKSTOP_S
RELEASE_QUERIES = 3


@dataclass(frozen=True)
class Slot:
    """One running attempt's slot: given back by its token. ``cleared`` is how many dead workers' expired slots the
    take removed, and ``room`` how many more the tenant could run right after it."""

    tenant: str
    token: str
    lease_until: int
    cleared: int = 0
    room: int = 0


def _held(item: dict[str, Any] | None) -> dict[str, int]:
    held = (item or {}).get("held")
    return {str(k): int(v) for k, v in held.items()} if isinstance(held, dict) else {}


def _room(held: dict[str, int], *, limit: int, now: float) -> int:
    """Free slots: expired ones count as free (the next take removes them)."""
    return max(0, limit - sum(until >= now for until in held.values()))


class TenantSlots:
    """The owner of the ``SLOTS`` items."""

    def __init__(self, *, table: Any, clock: Clock = system_clock) -> None:
        self._table = table
        self._clock = clock

    def running(self, tenant: str) -> dict[str, int]:
        """The tenant's slots (token -> lease end), live or expired, as read (strongly consistent)."""
        return _held(self._table.get_item(Key=slots_key(tenant), ConsistentRead=True).get("Item"))

    def room(self, tenant: str, *, limit: int) -> int:
        """How many more of the tenant's jobs may start now (a strongly consistent read)."""
        return _room(self.running(tenant), limit=limit, now=self._clock())

    def take(self, tenant: str, *, limit: int, lease_s: int) -> Slot | None:
        """A slot for one attempt, held until ``lease_s`` from now, or None when the tenant runs ``limit`` jobs."""
        now = int(self._clock())
        held: dict[str, int] | None = None  # not read: the first write just tries, and a refusal says what is there
        for _ in range(TAKE_TRIES):
            expired = sorted(token for token, until in (held or {}).items() if until < now)
            live = len(held or {}) - len(expired)
            if live >= limit:
                return None
            slot = Slot(tenant=tenant, token=secrets.token_urlsafe(9), lease_until=now + lease_s,
                        cleared=len(expired), room=limit - live - 1)
            taken, current = self._write(slot, held=held, expired=expired, limit=limit)
            if taken and held is None:
                # As written: a dead worker's expired slots left in it count as room (see ``_room``), to release
                # parked jobs into, as a take that removed them would.
                expired = [token for token, until in current.items() if until < now]
                return replace(slot, cleared=len(expired), room=_room(current, limit=limit, now=now))
            if taken:
                return slot
            held = current
        return None  # lost every race: the tenant is busy; the job parks, and looks again right after

    def take_all(self, tenant: str, count: int, *, limit: int, lease_s: int) -> list[Slot]:
        """Slots for ``count`` attempts of the tenant starting together (a batch's), in one write when the tenant
        has room for all of them (the item made with them when it has no slots: its first batch of the day); else
        taken one at a time (``take``), as many as it has room for."""
        if 1 < count <= limit:
            now = int(self._clock())
            slots = [Slot(tenant=tenant, token=secrets.token_urlsafe(9), lease_until=now + lease_s)
                     for _ in range(count)]
            names = {"#held": "held", "#expires_at": "expires_at"} | {f"#s{i}": s.token for i, s in enumerate(slots)}
            try:
                answer = self._table.update_item(
                    Key=slots_key(tenant), ExpressionAttributeNames=names, ReturnValues="ALL_NEW",
                    UpdateExpression="SET " + ", ".join(f"#held.#s{i} = :lease" for i in range(count))
                    + ", #expires_at = :expires",
                    ConditionExpression="attribute_exists(#held) AND size(#held) <= :room",
                    ExpressionAttributeValues={":lease": now + lease_s, ":room": limit - count,
                                               ":expires": now + lease_s + SLOTS_RETENTION_S},
                    ReturnValuesOnConditionCheckFailure="ALL_OLD")
            except ClientError as exc:
                if not is_condition_failure(exc):
                    raise
                if not _held(from_low_level(exc.response.get("Item"))) and self._make(tenant, slots):
                    return [replace(slots[0], room=limit - count), *slots[1:]]
            else:
                # As ``take``'s first write: dead workers' expired slots left in the item count as room
                current = _held(answer.get("Attributes"))
                cleared = sum(until < now for until in current.values())
                return [replace(slots[0], cleared=cleared, room=_room(current, limit=limit, now=now)), *slots[1:]]
        taken: list[Slot] = []
        while len(taken) < count and (slot := self.take(tenant, limit=limit, lease_s=lease_s)) is not None:
            taken.append(slot)
        return taken

    def _make(self, tenant: str, slots: list[Slot]) -> bool:
        """The tenant's slot map made with ``slots`` when it has none; False when another take made it first."""
        try:
            self._table.update_item(
                Key=slots_key(tenant), UpdateExpression="SET #held = :map, #expires_at = :expires",
                ConditionExpression="attribute_not_exists(#held) OR size(#held) = :zero",
                ExpressionAttributeNames={"#held": "held", "#expires_at": "expires_at"},
                ExpressionAttributeValues={":map": {slot.token: slot.lease_until for slot in slots}, ":zero": 0,
                                           ":expires": max(slot.lease_until for slot in slots) + SLOTS_RETENTION_S})
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise
            return False
        return True

    def _write(self, slot: Slot, *, held: dict[str, int] | None, expired: list[str],
               limit: int) -> tuple[bool, dict[str, int]]:
        """Write the slot: with ``held`` unknown (None), into the item if it has room (a missing item, or an
        expired slot in a full one, is a refusal that answers the item); with ``held`` known, removing ``expired``.
        Whether it was taken, and the slots as written (taken from ``held`` unknown) or as found (refused)."""
        names: dict[str, str] = {"#held": "held", "#expires_at": "expires_at", "#new": slot.token}
        values: dict[str, Any] = {":expires": slot.lease_until + SLOTS_RETENTION_S}
        if held is None:
            values |= {":lease": slot.lease_until, ":room": limit}
            request = {"UpdateExpression": "SET #held.#new = :lease, #expires_at = :expires",
                       "ConditionExpression": "attribute_exists(#held) AND size(#held) < :room",
                       "ReturnValues": "ALL_NEW"}
        elif not held:
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
            answer = self._table.update_item(Key=slots_key(slot.tenant), ExpressionAttributeNames=names,
                                             ExpressionAttributeValues=values,
                                             ReturnValuesOnConditionCheckFailure="ALL_OLD", **request)
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise
            return False, _held(from_low_level(exc.response.get("Item")))
        return True, _held(answer.get("Attributes")) if held is None else held

    def give_back(self, slot: Slot, *, limit: int) -> int:
        """End the slot (a no-op when it is gone: removed as expired by another worker); the room to release waiting
        jobs into: the tenant's room after it, from the write's own answer (the item as written, or as found when
        the slot was gone), or 0 when none of its jobs has parked within ``WAITING_WINDOW_S``: no read, no look."""
        try:
            answer = self._table.update_item(
                Key=slots_key(slot.tenant), UpdateExpression="REMOVE #held.#slot",
                ConditionExpression="attribute_exists(#held.#slot)", ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                ExpressionAttributeNames={"#held": "held", "#slot": slot.token})
            item = answer.get("Attributes")
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise
            item = from_low_level(exc.response.get("Item"))
        return self._room_after(item, limit=limit)

    def give_back_all(self, slots: list[Slot], *, limit: int) -> int:
        """End one tenant's ``slots`` (attempts that stopped together), in one write when all of them are there;
        else one at a time (``give_back``). The room to release waiting jobs into after the last."""
        if len(slots) > 1:
            names = {"#held": "held"} | {f"#s{i}": slot.token for i, slot in enumerate(slots)}
            try:
                answer = self._table.update_item(
                    Key=slots_key(slots[0].tenant), ExpressionAttributeNames=names, ReturnValues="ALL_NEW",
                    UpdateExpression="REMOVE " + ", ".join(f"#held.#s{i}" for i in range(len(slots))),
                    ConditionExpression=" AND ".join(f"attribute_exists(#held.#s{i})" for i in range(len(slots))))
                return self._room_after(answer.get("Attributes"), limit=limit)
            except ClientError as exc:
                if not is_condition_failure(exc):
                    raise
        room = 0
        for slot in slots:
            room = self.give_back(slot, limit=limit)
        return room

    def _room_after(self, item: dict[str, Any] | None, *, limit: int) -> int:
        now = self._clock()
        if int(now) - int((item or {}).get("parked_at", 0)) > WAITING_WINDOW_S:
            return 0  # nobody has parked for longer than any parked job waits unseen: nobody to look for
        return _room(_held(item), limit=limit, now=now)

    def mark_parked(self, tenant: str) -> None:
        """Note that one of the tenant's jobs parks now, before its wait item is written: a giver looks for waiting
        jobs only while this is recent (``give_back``)."""
        self._table.update_item(Key=slots_key(tenant), UpdateExpression="SET #parked_at = :now",
                                ExpressionAttributeNames={"#parked_at": "parked_at"},
                                ExpressionAttributeValues={":now": int(self._clock())})


class WaitingJobs:
    """The owner of the ``WAIT#`` items: a tenant's parked jobs, oldest first."""

    def __init__(self, *, table: Any, store: JobStore, queue: JobQueue, clock: Clock = system_clock) -> None:
        self._table = table
        self._store = store
        self._queue = queue
        self._clock = clock

    def park(self, tenant: str, job_id: str, *, expires_at: int | None, queued: bool,
             priority: Priority = "normal") -> None:
        """Park a job until its tenant has room. Parking again (a duplicate message, a backstop's) rewrites the same
        item: the job keeps its place. A ``queued`` job's sweep entry becomes the backstop (a job being taken over
        is in the sweep index already, due since its lease ended). Its ``priority`` places it among its tenant's
        waiting jobs (``waiting_key``): high ones are released first, low ones last."""
        now = int(self._clock())
        # UpdateItem makes the item: the worker moves items by key, and is granted no PutItem.
        self._table.update_item(Key=waiting_key(tenant, job_id, priority),
                                UpdateExpression="SET #expires_at = :expires",
                                ExpressionAttributeNames={"#expires_at": "expires_at"},
                                ExpressionAttributeValues={":expires": expires_at or now + SLOTS_RETENTION_S})
        if queued:
            self._store.sweep_queued_later(job_id, due=now + int(PARK_BACKSTOP_S * random.uniform(1.0, 2.0)))

    def is_parked(self, tenant: str, job_id: str, priority: Priority = "normal") -> bool:
        """Whether the job has a wait item (the sweeper's question: a parked job's backstop is no repair)."""
        return "Item" in self._table.get_item(Key=waiting_key(tenant, job_id, priority), ProjectionExpression="pk")

    def release(self, tenant: str, *, room: int) -> int:
        """Send the messages of the tenant's first waiting jobs (high ones first, each lane oldest first), at most
        ``room`` of them; how many were sent. A job whose send fails stays queued, without its wait item: the
        sweeper's backstop sends it."""
        released = 0
        for _ in range(RELEASE_QUERIES):
            if released >= room:
                break
            asked = room - released + RELEASE_LOOKAHEAD
            entries = self._oldest(tenant, limit=asked)
            for job_id, priority in entries:
                if released >= room:
                    break
                if self._take_entry(tenant, job_id, priority) and (state := self._still_waiting(job_id)) is not None:
                    if not self._send(tenant, job_id, state.priority):
                        return released
                    released += 1
            if len(entries) < asked:
                break  # the tenant's whole range was read: nobody else waits
        if released:
            count("JobsReleased", released)
        return released

    def _oldest(self, tenant: str, *, limit: int) -> list[tuple[str, Priority]]:
        # Strongly consistent: a job parked just before a slot was given back must be seen by the giver.
        answer = self._table.query(
            KeyConditionExpression=KeyCondition("pk").eq(tenant_partition(tenant))
            & KeyCondition("sk").begins_with(WAITING_PREFIX),
            ConsistentRead=True, Limit=limit, ProjectionExpression="sk")
        return [cast("tuple[str, Priority]", parse_waiting(str(item["sk"]))) for item in answer["Items"]]

    def _take_entry(self, tenant: str, job_id: str, priority: Priority) -> bool:
        """Delete the job's wait item; True for the one caller whose delete found it there."""
        return conditional(self._table.delete_item, Key=waiting_key(tenant, job_id, priority),
                           ConditionExpression="attribute_exists(pk)") is not None

    def _still_waiting(self, job_id: str) -> JobState | None:
        """The job's state if it can start: queued, or in_progress past its lease (a take-over that was parked). A
        job cancelled, finished or running elsewhere meanwhile (None) just loses its entry."""
        state = self._store.get_state(job_id, consistent=True)
        return state if state is not None and _startable(state, now=self._clock()) else None

    def _send(self, tenant: str, job_id: str, priority: Priority) -> bool:
        try:
            self._queue.send_job(job_id, priority=priority)  # to its lane: parking never demotes a job
        except Exception:
            logger.exception("parked job not released: the sweeper's backstop sends it",
                             extra={"tenant": tenant, "job_id": job_id})
            count("JobReleasesNotSent")
            return False
        logger.info("parked job released", extra={"tenant": tenant, "job_id": job_id})
        return True


def _startable(state: JobState, *, now: float) -> bool:
    if state.status is JobStatus.queued:
        return True
    return state.status is JobStatus.in_progress and (state.lease_until or 0) < now
