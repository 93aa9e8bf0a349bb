"""EventBridge Scheduler for the local stack: fires the emulator's enabled schedules on time.

moto stores schedules but never fires them. The firer reads them from the emulator at every tick, so a
schedule created, changed, disabled or deleted through the API takes effect at once, without a restart.
When one is due it invokes the target's handler in-process with the event EventBridge would send: the
target's Input with the context attributes (``<aws.scheduler.scheduled-time>``...) filled in. Timing follows
EventBridge: rate fires when the schedule is armed and every period after, cron and at are read in the
schedule's time zone; a handler that raises is invoked again a few times, as EventBridge and Lambda retry.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aijobs.errors import InvalidRequest
from aijobs.local.pollers import FakeLambdaContext, Handler
from aijobs.observability import logger
from aijobs.schedules.expressions import Expression, RateExpression, parse_expression, parse_timezone

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Armed:
    """A schedule as last read, and when it is next due."""

    version: Any  # LastModificationDate: a change re-arms the schedule
    definition: dict[str, Any]
    expression: Expression | None  # None: unreadable, never fires
    tz: ZoneInfo
    anchor: datetime
    due: datetime | None


@dataclass
class _Retry:
    at: datetime
    definition: dict[str, Any]
    scheduled: datetime
    attempt: int


class _Periodic:
    """A daemon thread that calls ``tick()`` every ``interval_s`` until stopped; an error is logged, never fatal."""

    def __init__(self, *, name: str, interval_s: float) -> None:
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.tick()
            except Exception:
                logger.exception("local timer error", extra={"timer": self._thread.name})

    def tick(self) -> object:
        raise NotImplementedError


class ScheduleFirer(_Periodic):
    def __init__(self, *, scheduler: Any, targets: dict[str, Handler], clock: Clock = utc_now,
                 interval_s: float = 0.25, max_attempts: int = 3, retry_delay_s: float = 1.0) -> None:
        self._scheduler = scheduler
        self._targets = targets  # function ARN -> handler
        self._clock = clock
        super().__init__(name="ScheduleFirer", interval_s=interval_s)
        self._max_attempts = max_attempts
        self._retry_delay = timedelta(seconds=retry_delay_s)
        self._armed: dict[str, _Armed] = {}
        self._retries: list[_Retry] = []

    def tick(self) -> int:
        """Read the schedules and fire those due; returns how many targets were invoked."""
        now = self._clock()
        seen, fired = set(), 0
        for summary in self._list_schedules():
            arn = summary["Arn"]
            seen.add(arn)
            if summary["State"] != "ENABLED":
                self._armed.pop(arn, None)  # enabled again later, it is armed afresh
                continue
            armed = self._armed.get(arn)
            if armed is None or armed.version != summary["LastModificationDate"]:
                armed = self._armed[arn] = self._arm(summary)
            if armed.due is not None and armed.due <= now:
                scheduled = armed.due
                armed.due = self._next(armed, after=now)  # fires missed while away are not made up
                fired += self._invoke(armed.definition, scheduled, attempt=1)
        self._armed = {arn: armed for arn, armed in self._armed.items() if arn in seen}
        due, self._retries = [r for r in self._retries if r.at <= now], [r for r in self._retries if r.at > now]
        for retry in due:
            fired += self._invoke(retry.definition, retry.scheduled, attempt=retry.attempt)
        return fired

    def _list_schedules(self) -> list[dict[str, Any]]:
        pages = self._scheduler.get_paginator("list_schedules").paginate()
        return [summary for page in pages for summary in page["Schedules"]]

    def _arm(self, summary: dict[str, Any]) -> _Armed:
        definition = self._scheduler.get_schedule(Name=summary["Name"], GroupName=summary["GroupName"])
        version = summary["LastModificationDate"]
        anchor = (definition.get("StartDate") or version).astimezone(UTC).replace(microsecond=0)
        try:
            expression: Expression | None = parse_expression(definition["ScheduleExpression"])
            tz = parse_timezone(definition.get("ScheduleExpressionTimezone") or "UTC")
        except InvalidRequest as exc:
            logger.warning("schedule never fires: unreadable expression", extra={
                "schedule": summary["Name"], "problem": exc.message})
            return _Armed(version, definition, None, ZoneInfo("UTC"), anchor, None)
        armed = _Armed(version, definition, expression, tz, anchor, None)
        # A rate fires when armed; cron and at from their next time after it.
        after = anchor - timedelta(seconds=1) if isinstance(expression, RateExpression) else anchor
        armed.due = self._next(armed, after=after)
        return armed

    def _next(self, armed: _Armed, *, after: datetime) -> datetime | None:
        if armed.expression is None:
            return None
        due = armed.expression.next_after(after, anchor=armed.anchor, tz=armed.tz)
        end = armed.definition.get("EndDate")
        return None if due is None or (end is not None and due > end) else due

    def _invoke(self, definition: dict[str, Any], scheduled: datetime, *, attempt: int) -> int:
        target = definition["Target"]
        handler = self._targets.get(target["Arn"])
        if handler is None:
            logger.warning("schedule target is no local function", extra={"schedule": definition["Name"]})
            return 0
        event = fire_event(definition, scheduled, attempt=attempt)
        function_name = target["Arn"].rsplit(":", 1)[-1]
        try:
            handler(event, FakeLambdaContext(function_name))
        except Exception:
            logger.exception("schedule target failed", extra={"schedule": definition["Name"], "attempt": attempt})
            if attempt < self._max_attempts:
                self._retries.append(_Retry(self._clock() + self._retry_delay, definition, scheduled, attempt + 1))
        return 1


def fire_event(definition: dict[str, Any], scheduled: datetime, *, attempt: int) -> dict[str, Any]:
    """The event a Lambda target receives: the Input, its context attributes replaced."""
    text = definition["Target"].get("Input") or "{}"
    for keyword, value in {
        "<aws.scheduler.schedule-arn>": definition["Arn"],
        "<aws.scheduler.scheduled-time>": scheduled.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "<aws.scheduler.execution-id>": uuid.uuid4().hex[:16],
        "<aws.scheduler.attempt-number>": str(attempt),
    }.items():
        text = text.replace(keyword, value)
    event: dict[str, Any] = json.loads(text)
    return event


class RuleFirer(_Periodic):
    """An EventBridge rule with a rate, for the local stack: invokes its target every ``interval_s``."""

    def __init__(self, *, name: str, handler: Handler, interval_s: float) -> None:
        super().__init__(name=f"RuleFirer-{name}", interval_s=interval_s)
        self._name = name
        self._handler = handler

    def tick(self) -> None:
        self.fire()

    def fire(self) -> None:
        event = {"version": "0", "id": uuid.uuid4().hex, "detail-type": "Scheduled Event", "source": "aws.events",
                 "time": utc_now().strftime("%Y-%m-%dT%H:%M:%SZ"), "region": "us-east-1", "resources": [], "detail": {}}
        try:
            self._handler(event, FakeLambdaContext(self._name))
        except Exception:  # EventBridge would retry; the next period is soon enough
            logger.exception("rule target failed", extra={"function": self._name})
