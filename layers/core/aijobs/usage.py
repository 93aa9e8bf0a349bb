"""A tenant's counters, one item per tenant and UTC day (``TENANT#<t>`` / ``USAGE#<date>``): the day's usage and
the current minute's rate window, so that one write counts a request for both.

The day's totals are ``requests``, ``jobs`` (admitted), ``input_tokens``, ``output_tokens`` and ``cost_usd`` (a
job's usage and cost count on the day it ends). The rate window is two attributes named after the minute of the day,
``r<minute>`` (requests) and ``t<minute>`` (tokens reserved by admitted jobs): a minute's counters start at zero by
their name alone (``if_not_exists``), so counting needs no read and no second write when a minute begins, and a
condition on the attribute enforces the limit atomically, across any number of Lambda instances. The minutes gone
by are removed by later writes (the minute before, always; older ones once a process has seen them), so the item
stays small: one write unit a request.

The daily budget is ``spend_e8`` (USD in hundred-millionths, pricing.py's quantum: an exact integer): the finished
jobs' ``cost_usd`` plus the estimates of the admitted, unfinished ones. A job's admission reserves its estimate in
the same write that reserves its tokens, under a condition that the day's spend has not reached the hard budget (so
a burst of concurrent admissions passes it by at most one job's estimate); its end replaces the estimate with its
real cost, in the same write that adds its usage.

``UsageStore`` is the one writer of these items.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from boto3.dynamodb.conditions import Key as KeyCondition
from botocore.exceptions import ClientError
from cachetools import TTLCache

from aijobs.clock import Clock, system_clock
from aijobs.dynamo import add_counters, from_low_level, is_condition_failure, tenant_partition
from aijobs.errors import InvalidRequest
from aijobs.models.jobs import Reservation
from aijobs.models.tenants import Limits
from aijobs.models.usage import UsageBudget, UsageDay, UsageReport

USAGE_PREFIX = "USAGE#"
# A day's item is kept this long past the day (the usage endpoint reads at most MAX_USAGE_DAYS back).
USAGE_RETENTION_DAYS = 400
_WINDOW_ATTRIBUTE = re.compile(r"^[rt](\d{1,4})$")
# GET /v1/usage: the days a request answers when it names none, and the most it may ask for.
DEFAULT_USAGE_DAYS = 7
MAX_USAGE_DAYS = 92
# The day's spend: an integer count of E8ths of a dollar.
SPEND = "spend_e8"
E8 = 10**8
# Past this many minutes gone by seen on an item, a process removes them at once rather than with its next write.
MAX_STALE_MINUTES = 8


# What every write of a day's item sets (its TTL is kept with it, and the tenant and day make it readable alone).
DAY_FIELDS = "#tenant = :tenant, #date = :date, #expires_at = :expires_at"
DAY_NAMES = {"#tenant": "tenant", "#date": "date", "#expires_at": "expires_at"}


def usage_key(tenant: str, day: dt.date) -> dict[str, str]:
    return {"pk": tenant_partition(tenant), "sk": f"{USAGE_PREFIX}{day.isoformat()}"}


@dataclass(frozen=True)
class Minute:
    """A minute of a UTC day: the day's item it counts on, and its place in the day (0-1439)."""

    day: dt.date
    index: int

    @classmethod
    def at(cls, now: float) -> Minute:
        moment = dt.datetime.fromtimestamp(now, dt.UTC)
        return cls(moment.date(), moment.hour * 60 + moment.minute)

    @property
    def ends_at(self) -> float:
        """When the minute ends (unix seconds): its window resets then."""
        start = dt.datetime.combine(self.day, dt.time(), dt.UTC).timestamp()
        return start + (self.index + 1) * 60


@dataclass(frozen=True)
class Window:
    """The rate window's counts after a write (or, when a limit refused it, as they were), and the day's spend."""

    minute: Minute
    requests: int
    tokens: int
    spent_usd: Decimal = Decimal(0)


class Refused(Exception):
    """A counter's condition did not hold: ``window`` is the window as it was."""

    def __init__(self, window: Window) -> None:
        super().__init__("over the limit")
        self.window = window


def _day_expiry(day: dt.date) -> int:
    return int(dt.datetime.combine(day + dt.timedelta(days=USAGE_RETENTION_DAYS), dt.time(), dt.UTC).timestamp())


def _int(value: Any) -> int:
    return int(value) if value is not None else 0


def _e8(usd: Decimal) -> int:
    return int((usd * E8).to_integral_value(ROUND_HALF_UP))


def spent(item: dict[str, Any]) -> Decimal:
    """A day item's spend, in USD."""
    return Decimal(_int(item.get(SPEND))) / E8


@dataclass(frozen=True)
class JobEnd:
    """What an ended job adds to its tenant's usage; ``reservation``: the estimate it replaces (None: none)."""

    input_tokens: int
    output_tokens: int
    cost_usd: Decimal | None
    reservation: Reservation | None


class UsageStore:
    def __init__(self, *, table: Any, clock: Clock = system_clock) -> None:
        self._table = table
        self._clock = clock
        # Minutes gone by that this process saw on a tenant's item: its next write removes them.
        self._stale: TTLCache[tuple[str, dt.date], set[str]] = TTLCache(maxsize=4096, ttl=180)
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._clock()

    # --- the rate window --------------------------------------------------------------------------

    def count_request(self, tenant: str, *, limit: int, count: int = 1) -> Window:
        """Count ``count`` requests in the current minute, and in the day, in one write; ``Refused`` (nothing
        counted) when the last of them would pass ``limit``."""
        minute = Minute.at(self._clock())
        if count > 1 and count > limit:  # could never fit (the condition would pass a minute's first write)
            raise Refused(Window(minute, requests=0, tokens=0))
        with self._lock:
            stale = set(self._stale.pop((tenant, minute.day), set()))
        if minute.index > 0:  # the minute before, always: most minutes follow a busy one
            stale |= {f"r{minute.index - 1}", f"t{minute.index - 1}"}
        names = {"#r": f"r{minute.index}", "#requests": "requests"}
        remove = ""
        if stale:
            names |= {f"#s{i}": name for i, name in enumerate(sorted(stale))}
            remove = " REMOVE " + ", ".join(f"#s{i}" for i in range(len(stale)))
        return self._window_write(
            tenant, minute,
            UpdateExpression=f"SET #r = if_not_exists(#r, :zero) + :count, {DAY_FIELDS} "
                             f"ADD #requests :count{remove}",
            # "r + count <= limit", as DynamoDB's conditions have no arithmetic (and a minute's first write passes)
            ConditionExpression="attribute_not_exists(#r) OR #r <= :room",
            ExpressionAttributeNames=names | DAY_NAMES,
            ExpressionAttributeValues={":zero": 0, ":count": count, ":room": limit - count,
                                       **self._day_values(tenant, minute)})

    def reserve_all(self, tenant: str, *, estimates: list[tuple[int, Decimal]], token_limit: int,
                    budget_usd: Decimal) -> tuple[Window, list[Reservation]]:
        """Reserve jobs' (tokens, cost) estimates in the current minute and the day's spend, and count the jobs in
        the day, in one write: the minute's tokens with all of them stay within ``token_limit``, and the day's spend
        is under ``budget_usd`` before the last one (a burst passes the budget by at most one job's estimate, as with
        one write a job). ``Refused`` (nothing written, the refused window says which) when any of the writes one by one
        would have been refused: for several jobs, the caller then reserves them one by one, to admit those that
        fit."""
        minute = Minute.at(self._clock())
        tokens = sum(t for t, _ in estimates)
        costs = [_e8(cost) for _, cost in estimates]
        # the day's spend must stay under the budget before each job's estimate is added: before the last one
        budget = _e8(budget_usd) - (sum(costs) - costs[-1])
        if tokens > token_limit or budget <= 0:  # could never fit (the condition would pass a day's first write)
            raise Refused(Window(minute, requests=0, tokens=0))
        names = {"#t": f"t{minute.index}", "#jobs": "jobs", "#spend": SPEND}
        window = self._window_write(
            tenant, minute,
            UpdateExpression=f"SET #t = if_not_exists(#t, :zero) + :tokens, {DAY_FIELDS} "
                             "ADD #jobs :jobs, #spend :cost",
            # DynamoDB's conditions have no arithmetic: "t + tokens <= limit" is "t <= limit - tokens".
            ConditionExpression="(attribute_not_exists(#t) OR #t <= :room) "
                                "AND (attribute_not_exists(#spend) OR #spend < :budget)",
            ExpressionAttributeNames=names | DAY_NAMES,
            ExpressionAttributeValues={":zero": 0, ":jobs": len(estimates), ":tokens": tokens,
                                       ":room": token_limit - tokens, ":cost": sum(costs), ":budget": budget,
                                       **self._day_values(tenant, minute)})
        return window, [Reservation(day=minute.day.isoformat(), minute=minute.index, tokens=t, cost_usd=cost)
                        for t, cost in estimates]

    def release(self, tenant: str, reservation: Reservation, *, submitted: bool = False) -> None:
        """Take back a reservation: of a job never submitted (it could not be queued or stored: it is not counted
        in the day's jobs either), or of a ``submitted`` one that will never run (cancelled while queued). Its cost
        leaves its day's spend; its tokens leave its minute only while that minute goes on (after it, the window
        is gone, and a write would bring it back)."""
        minute = Minute.at(self._clock())
        add: dict[str, Any] = {SPEND: -_e8(reservation.cost_usd)}
        if not submitted:
            add["jobs"] = -1
        if (reservation.day, reservation.minute) == (minute.day.isoformat(), minute.index):
            add[f"t{minute.index}"] = -reservation.tokens
        self._add(tenant, dt.date.fromisoformat(reservation.day), add)

    def record_job_end(self, tenant: str, *, input_tokens: int, output_tokens: int, cost_usd: Decimal | None,
                       reservation: Reservation | None) -> None:
        """Add an ended job's usage and cost to the day it ends, where its cost replaces its reserved estimate in the
        day's spend (a job admitted the day before gives its estimate back to that day: a second write); still in
        the minute of its reservation, its real tokens replace the reserved ones in that minute's window (a later
        minute's window never held them)."""
        self.record_job_ends(tenant, [JobEnd(input_tokens, output_tokens, cost_usd, reservation)])

    def record_job_ends(self, tenant: str, ends: list[JobEnd]) -> None:
        """``record_job_end`` for several of the tenant's jobs that ended together (a batch's): one write a day."""
        minute = Minute.at(self._clock())
        adds: dict[dt.date, dict[str, Any]] = {}
        for end in ends:
            cost = end.cost_usd or Decimal(0)
            add: dict[str, Any] = {"input_tokens": end.input_tokens, "output_tokens": end.output_tokens,
                                   "cost_usd": cost, SPEND: _e8(cost)}
            reservation = end.reservation
            if reservation is not None and reservation.day == minute.day.isoformat():
                add[SPEND] = _e8(cost) - _e8(reservation.cost_usd)
                if reservation.minute == minute.index:
                    add[f"t{minute.index}"] = end.input_tokens + end.output_tokens - reservation.tokens
            add_counters(adds.setdefault(minute.day, {}), add)
            if reservation is not None and reservation.day != minute.day.isoformat() and reservation.cost_usd:
                day_before = dt.date.fromisoformat(reservation.day)
                add_counters(adds.setdefault(day_before, {}), {SPEND: -_e8(reservation.cost_usd)})
        for day, add in adds.items():
            # an integral Decimal (a zero cost quantized is 0E-8) goes as an integer: moto cannot add "0E-8"
            self._add(tenant, day, {name: int(value) if value == int(value) else value for name, value in add.items()})

    # --- reads ------------------------------------------------------------------------------------

    def days(self, tenant: str, first: dt.date, last: dt.date) -> dict[dt.date, dict[str, Any]]:
        """The day items of ``first`` to ``last`` (both included) that exist, by day: one Query."""
        condition = KeyCondition("pk").eq(tenant_partition(tenant)) & KeyCondition("sk").between(
            f"{USAGE_PREFIX}{first.isoformat()}", f"{USAGE_PREFIX}{last.isoformat()}")
        query: dict[str, Any] = {"KeyConditionExpression": condition}
        found: dict[dt.date, dict[str, Any]] = {}
        while True:
            answer = self._table.query(**query)
            for item in answer["Items"]:
                found[dt.date.fromisoformat(str(item["sk"]).removeprefix(USAGE_PREFIX))] = item
            if not (start := answer.get("LastEvaluatedKey")):
                return found
            query["ExclusiveStartKey"] = start

    def window(self, tenant: str) -> Window:
        """The current minute's window, read (no write): for answers that count nothing."""
        minute = Minute.at(self._clock())
        item = self._table.get_item(Key=usage_key(tenant, minute.day)).get("Item") or {}
        return self._read_window(minute, item)

    # --- helpers ----------------------------------------------------------------------------------

    @staticmethod
    def _day_values(tenant: str, minute: Minute) -> dict[str, Any]:
        return {":tenant": tenant, ":date": minute.day.isoformat(), ":expires_at": _day_expiry(minute.day)}

    def _window_write(self, tenant: str, minute: Minute, **request: Any) -> Window:
        try:
            answer = self._table.update_item(Key=usage_key(tenant, minute.day), ReturnValues="ALL_NEW",
                                             ReturnValuesOnConditionCheckFailure="ALL_OLD", **request)
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise
            raise Refused(self._read_window(minute, from_low_level(exc.response.get("Item")) or {})) from None
        return self._read_window(minute, answer["Attributes"], tenant=tenant)

    def _read_window(self, minute: Minute, item: dict[str, Any], *, tenant: str | None = None) -> Window:
        if tenant is not None:
            stale = {name for name in item if (match := _WINDOW_ATTRIBUTE.match(name))
                     and int(match.group(1)) != minute.index}
            if stale:
                with self._lock:
                    self._stale[(tenant, minute.day)] = stale
                if len(stale) > MAX_STALE_MINUTES:
                    self._remove(tenant, minute.day, stale)
        return Window(minute, requests=_int(item.get(f"r{minute.index}")), tokens=_int(item.get(f"t{minute.index}")),
                      spent_usd=spent(item))

    def _remove(self, tenant: str, day: dt.date, names: set[str]) -> None:
        with self._lock:
            self._stale.pop((tenant, day), None)
        aliases = {f"#s{i}": name for i, name in enumerate(sorted(names))}
        self._table.update_item(Key=usage_key(tenant, day), UpdateExpression="REMOVE " + ", ".join(aliases),
                                ExpressionAttributeNames=aliases)

    def _add(self, tenant: str, day: dt.date, add: dict[str, Any]) -> None:
        """Add to counters of a day's item (made with its fields if it does not exist)."""
        names = {f"#a{i}": name for i, name in enumerate(add)}
        values = {f":a{i}": value for i, value in enumerate(add.values())}
        self._table.update_item(
            Key=usage_key(tenant, day),
            UpdateExpression=f"SET {DAY_FIELDS} ADD " + ", ".join(f"#a{i} :a{i}" for i in range(len(add))),
            ExpressionAttributeNames=names | DAY_NAMES,
            ExpressionAttributeValues=values | self._day_values(tenant, Minute(day, 0)))


def usage_day(day: dt.date, item: dict[str, Any] | None) -> UsageDay:
    item = item or {}
    return UsageDay(date=day, requests=_int(item.get("requests")), jobs=_int(item.get("jobs")),
                    input_tokens=_int(item.get("input_tokens")), output_tokens=_int(item.get("output_tokens")),
                    cost_usd=float(Decimal(str(item.get("cost_usd", 0)))))


@dataclass
class UsageService:
    """A tenant's usage by UTC day: what ``GET /v1/usage`` (the caller) and the admin API (any tenant) answer."""

    store: UsageStore
    limits: Callable[[str], Limits]

    def today(self) -> dt.date:
        return Minute.at(self.store.now()).day

    def usage(self, tenant: str, first: dt.date | None = None, last: dt.date | None = None) -> UsageReport:
        """Days ``first`` to ``last`` (UTC, both included; default: the last ``DEFAULT_USAGE_DAYS`` to today), at most
        ``MAX_USAGE_DAYS`` of them (``InvalidRequest`` beyond, or when ``first`` is after ``last``)."""
        today = self.today()
        last = last or today
        if first is None:
            days_before = min(DEFAULT_USAGE_DAYS - 1, (last - dt.date.min).days)  # 0001-01-01 has no day before
            first = last - dt.timedelta(days=days_before)
        if first > last:
            raise InvalidRequest("from must not be after to", code="invalid_range")
        if (last - first).days + 1 > MAX_USAGE_DAYS:
            raise InvalidRequest(f"a range holds at most {MAX_USAGE_DAYS} days", code="range_too_long")
        found = self.store.days(tenant, first, last)
        if not first <= today <= last:
            found |= self.store.days(tenant, today, today)
        days = [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]
        limits = self.limits(tenant)
        return UsageReport(limits=limits, today=usage_day(today, found.get(today)),
                           budget=budget(limits, spent(found.get(today) or {}), today),
                           data=[usage_day(day, found.get(day)) for day in days])


def next_midnight(day: dt.date) -> int:
    """When ``day`` (UTC) ends: its budget's reset."""
    return int(dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC).timestamp())


def budget(limits: Limits, spent: Decimal, day: dt.date) -> UsageBudget:
    hard, soft = Decimal(str(limits.daily_cost_usd)), Decimal(str(limits.daily_cost_soft_usd))
    return UsageBudget(spent_usd=float(spent), daily_cost_usd=limits.daily_cost_usd,
                       daily_cost_soft_usd=limits.daily_cost_soft_usd,
                       remaining_usd=float(max(Decimal(0), hard - spent)), soft_limit_reached=spent >= soft,
                       hard_limit_reached=spent >= hard, resets_at=next_midnight(day))
