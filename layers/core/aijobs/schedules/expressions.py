"""EventBridge Scheduler expressions: ``rate(...)``, ``cron(...)``, ``at(...)``, checked and evaluated.

What is accepted here is what EventBridge Scheduler accepts, so a schedule the API takes is one AWS takes
too; invalid input raises ``InvalidRequest`` (code ``invalid_expression`` or ``invalid_timezone``) saying
what is wrong. Fire times follow EventBridge: cron and at are read in the schedule's time zone, rate
ignores it; a cron time that a daylight-saving jump skips does not fire, and one that repeats fires once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import CroniterBadDateError, croniter

from aijobs.errors import InvalidRequest

MAX_RATE_VALUE = 1_000_000
# The most times croniter is asked for, to find one fire time. A candidate is skipped only when a daylight-saving
# gap or fold swallows it, or its year is not in the expression (one jump): a few a year at most. So a cron whose
# every time falls in a gap, such as cron(30 2 ? 3 1L *) in Europe/Paris (02:30 on the last Sunday of March, the
# very hour Paris skips), is found to never fire after this many steps (well under 0.1 s), not after a walk to the
# year 9999. Counted in steps, not seconds, so the answer does not depend on the machine's speed or load.
MAX_CANDIDATES = 100
_RATE = re.compile(r"rate\(([0-9]+) ([a-z]+)\)")
_RATE_UNITS = {"minute": 60, "hour": 3600, "day": 86_400}
_CRON = re.compile(r"cron\((.*)\)")
_AT = re.compile(r"at\(([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})\)")
_MONTHS = {name: i for i, name in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT",
                                             "NOV", "DEC"), 1)}
_DAYS = {name: i for i, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"), 1)}


def _invalid(message: str) -> InvalidRequest:
    return InvalidRequest(message, code="invalid_expression")


def _is_number(text: str) -> bool:
    # str.isdigit() also holds for digits int() cannot read, such as superscripts
    return text.isascii() and text.isdigit()


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int] | None = None

    def describe(self) -> str:
        names = f" or {next(iter(self.names))}-{next(reversed(self.names))}" if self.names else ""
        return f"{self.low}-{self.high}{names}"

    def value(self, token: str) -> int:
        number = self.names.get(token) if self.names else None
        if number is None:
            if not _is_number(token):
                raise _invalid(f"cron {self.name}: {token!r} is not a value; use {self.describe()}")
            number = int(token)
        if not self.low <= number <= self.high:
            raise _invalid(f"cron {self.name}: {token} is out of range {self.describe()}")
        return number

    def values(self, text: str) -> set[int]:
        """Expand a field of values, ranges (a-b), increments (a/n, a-b/n, */n), lists and *."""
        found: set[int] = set()
        for item in text.split(","):
            base, slash, step_text = item.partition("/")
            step = 1
            if slash:
                if not _is_number(step_text) or int(step_text) < 1:
                    raise _invalid(f"cron {self.name}: the increment in {item!r} must be a positive whole number")
                step = int(step_text)
            if base == "*":
                low, high = self.low, self.high
            elif "-" in base:
                start, _, end = base.partition("-")
                low, high = self.value(start), self.value(end)
                if low > high:
                    raise _invalid(f"cron {self.name}: the range {base!r} runs backwards")
            else:
                low = self.value(base)
                high = self.high if slash else low
            found.update(range(low, high + 1, step))
        return found


_MINUTES = _Field("minutes", 0, 59)
_HOURS = _Field("hours", 0, 23)
_DAY_OF_MONTH = _Field("day-of-month", 1, 31)
_MONTH = _Field("month", 1, 12, _MONTHS)
_DAY_OF_WEEK = _Field("day-of-week", 1, 7, _DAYS)
_YEAR = _Field("year", 1970, 2199)


@dataclass(frozen=True)
class RateExpression:
    period: timedelta

    def next_after(self, after: datetime, *, anchor: datetime, tz: ZoneInfo) -> datetime | None:
        # A rate schedule fires when it is armed (created, changed or enabled), then every period.
        if after < anchor:
            return anchor
        try:
            return anchor + ((after - anchor) // self.period + 1) * self.period
        except OverflowError:  # past the year 9999: no fire time to tell
            return None


@dataclass(frozen=True)
class AtExpression:
    wall_time: datetime  # naive: read in the schedule's time zone

    def instant(self, tz: ZoneInfo) -> datetime:
        return self.wall_time.replace(tzinfo=tz).astimezone(UTC)

    def next_after(self, after: datetime, *, anchor: datetime, tz: ZoneInfo) -> datetime | None:
        return at if (at := self.instant(tz)) > after else None


@dataclass(frozen=True)
class CronExpression:
    spec: str  # the five-field form croniter reads: day-of-week 0-6 from Sunday, ? as *
    minutes: frozenset[int]
    hours: frozenset[int]
    years: frozenset[int] | None  # None: every year

    def next_after(self, after: datetime, *, anchor: datetime, tz: ZoneInfo) -> datetime | None:
        times = croniter(self.spec, after.astimezone(tz))
        for _ in range(MAX_CANDIDATES):
            try:
                candidate: datetime = times.get_next(datetime)
            except CroniterBadDateError:  # no such date for decades, e.g. 31 February
                return None
            except (ValueError, OverflowError):  # past the year 9999
                return None
            if candidate.year > _YEAR.high:  # EventBridge's last year: nothing fires after it
                return None
            if self.years is not None and candidate.year not in self.years:
                later = [year for year in self.years if year > candidate.year]
                if not later:
                    return None
                times = croniter(self.spec, datetime(min(later), 1, 1, tzinfo=tz) - timedelta(minutes=1))
                continue
            if candidate.hour not in self.hours or candidate.minute not in self.minutes:
                continue  # a wall time that the spring daylight-saving jump skips: EventBridge skips it
            if candidate.fold and candidate.replace(fold=0).utcoffset() != candidate.utcoffset():
                continue  # the second pass through a repeated autumn hour: EventBridge fires once
            return candidate.astimezone(UTC)
        return None  # only skipped times for MAX_CANDIDATES tries: as good as never


Expression = RateExpression | CronExpression | AtExpression


def parse_expression(text: str) -> Expression:
    """Parse an EventBridge Scheduler expression; ``InvalidRequest`` says what is wrong with a bad one.

    Examples
    --------
    >>> parse_expression("rate(5 minutes)").period
    datetime.timedelta(seconds=300)
    >>> parse_expression("cron(0 9 ? * MON-FRI *)").spec
    '0 9 * * MON-FRI'
    """
    if text.startswith("rate("):
        return _parse_rate(text)
    if text.startswith("cron("):
        return _parse_cron(text)
    if text.startswith("at("):
        return _parse_at(text)
    raise _invalid("expression must be rate(value unit), cron(minutes hours day-of-month month day-of-week "
                   "year) or at(yyyy-mm-ddThh:mm:ss)")


def _parse_rate(text: str) -> RateExpression:
    match = _RATE.fullmatch(text)
    if not match:
        raise _invalid("a rate expression looks like rate(5 minutes): a whole number, one space, then "
                       "minute(s), hour(s) or day(s)")
    value, unit = int(match.group(1)), match.group(2)
    singular = unit.removesuffix("s")
    if singular not in _RATE_UNITS:
        raise _invalid(f"rate unit {unit!r} is not one of minute(s), hour(s), day(s)")
    if not 1 <= value <= MAX_RATE_VALUE:
        raise _invalid(f"rate value must be between 1 and {MAX_RATE_VALUE}")
    if value == 1 and unit != singular:
        raise _invalid(f"rate(1 {unit}): use the singular {singular!r} when the value is 1")
    if value > 1 and unit == singular:
        raise _invalid(f"rate({value} {unit}): use the plural {singular + 's'!r} when the value is above 1")
    return RateExpression(period=timedelta(seconds=value * _RATE_UNITS[singular]))


def _parse_at(text: str) -> AtExpression:
    match = _AT.fullmatch(text)
    if not match:
        raise _invalid("a one-time expression looks like at(2030-01-31T09:30:00)")
    try:
        wall_time = datetime.fromisoformat(match.group(1))
    except ValueError:
        raise _invalid(f"at({match.group(1)}) is not a real date and time") from None
    if not _YEAR.low <= wall_time.year <= _YEAR.high:  # the years cron takes; later ones overflow in some zones
        raise _invalid(f"at(...): the year must be {_YEAR.describe()}")
    return AtExpression(wall_time=wall_time)


def _parse_cron(text: str) -> CronExpression:
    match = _CRON.fullmatch(text)
    fields = match.group(1).split() if match else []
    if len(fields) != 6:
        raise _invalid("a cron expression has six fields: cron(minutes hours day-of-month month day-of-week "
                       "year), e.g. cron(0 9 ? * MON-FRI *)")
    minutes, hours, day_of_month, month, day_of_week, year = fields
    if (day_of_month == "?") == (day_of_week == "?"):
        raise _invalid("cron: exactly one of day-of-month and day-of-week must be ? (EventBridge cannot combine "
                       "them), e.g. cron(0 9 * * ? *) or cron(0 9 ? * MON *)")
    minute_values = _MINUTES.values(minutes)
    hour_values = _HOURS.values(hours)
    _MONTH.values(month)
    years = None if year == "*" else frozenset(_YEAR.values(year))
    spec = " ".join([minutes, hours, _day_of_month(day_of_month), month, _day_of_week(day_of_week)])
    if not croniter.is_valid(spec):
        raise _invalid(f"cron: {text} is not supported")
    return CronExpression(spec=spec, minutes=frozenset(minute_values), hours=frozenset(hour_values), years=years)


def _day_of_month(text: str) -> str:
    if text in ("?", "L"):
        return "*" if text == "?" else "L"
    if text.endswith("W"):
        if "," in text or "-" in text or "/" in text:
            raise _invalid(f"cron day-of-month: W takes one day, as in 15W, not {text!r}")
        _DAY_OF_MONTH.value(text[:-1])
        return text
    _DAY_OF_MONTH.values(text)
    return text


def _day_of_week(text: str) -> str:
    """EventBridge counts days 1-7 from Sunday; croniter 0-6 from Sunday."""
    if text == "?":
        return "*"
    if text == "L":
        return "6"  # the last day of the week: Saturday
    if "#" in text:
        day, _, nth = text.partition("#")
        if "," in text or not _is_number(nth) or not 1 <= int(nth) <= 5:
            raise _invalid(f"cron day-of-week: {text!r} must look like 6#3 (the third Friday), alone in the field")
        return f"{_DAY_OF_WEEK.value(day) - 1}#{nth}"
    if text.endswith("L"):
        if "," in text or "-" in text or "/" in text:
            raise _invalid(f"cron day-of-week: L takes one day, as in 6L (the last Friday), not {text!r}")
        return f"L{_DAY_OF_WEEK.value(text[:-1]) - 1}"
    _DAY_OF_WEEK.values(text)
    items = []
    for item in text.split(","):
        base, slash, step = item.partition("/")
        base = "-".join(str(int(part) - 1) if _is_number(part) else part for part in base.split("-"))
        items.append(base + slash + step)
    return ",".join(items)


@lru_cache(maxsize=1)
def _timezones() -> frozenset[str]:
    # the system's zone files also hold names that are no zone of anywhere
    return frozenset(available_timezones()) - {"localtime", "posixrules", "Factory"}


def parse_timezone(name: str) -> ZoneInfo:
    """An IANA time zone such as ``Europe/Paris``; ``InvalidRequest`` (``invalid_timezone``) otherwise."""
    if name != "UTC" and name not in _timezones():
        raise InvalidRequest(f"timezone {name!r} is not an IANA time zone name such as UTC or Europe/Paris",
                             code="invalid_timezone")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidRequest(f"timezone {name!r} is not available", code="invalid_timezone") from None


def fire_times(expression: Expression, tz: ZoneInfo, *, after: datetime, anchor: datetime,
               count: int) -> list[datetime]:
    """The next ``count`` fire times (UTC) strictly after ``after``; ``anchor`` is when a rate schedule was armed."""
    times: list[datetime] = []
    while len(times) < count:
        due = expression.next_after(times[-1] if times else after, anchor=anchor, tz=tz)
        if due is None:
            break
        times.append(due)
    return times
