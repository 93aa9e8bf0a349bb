"""EventBridge Scheduler expressions: what is accepted, what is refused (and why), and when each fires."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from aijobs.errors import InvalidRequest
from aijobs.models.schedules import ScheduledFire
from aijobs.schedules.expressions import MAX_CANDIDATES, fire_times, parse_expression, parse_timezone

# Sunday 22 November 2026, 10:00 UTC
NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def _times(expression: str, timezone: str = "UTC", *, after: datetime = NOW, anchor: datetime = NOW,
           count: int = 3) -> list[str]:
    times = fire_times(parse_expression(expression), parse_timezone(timezone), after=after, anchor=anchor,
                       count=count)
    return [t.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %a %H:%M") for t in times]


@pytest.mark.parametrize(("expression", "timezone", "expected"), [
    ("rate(1 minute)", "UTC", ["2026-11-22 Sun 10:01", "2026-11-22 Sun 10:02", "2026-11-22 Sun 10:03"]),
    ("rate(2 hours)", "UTC", ["2026-11-22 Sun 12:00", "2026-11-22 Sun 14:00", "2026-11-22 Sun 16:00"]),
    ("rate(1 day)", "Asia/Tokyo", ["2026-11-23 Mon 19:00", "2026-11-24 Tue 19:00", "2026-11-25 Wed 19:00"]),
    ("cron(0 10 * * ? *)", "UTC", ["2026-11-23 Mon 10:00", "2026-11-24 Tue 10:00", "2026-11-25 Wed 10:00"]),
    ("cron(0/15 * * * ? *)", "UTC", ["2026-11-22 Sun 10:15", "2026-11-22 Sun 10:30", "2026-11-22 Sun 10:45"]),
    ("cron(0 9 ? * MON-FRI *)", "Europe/Paris", ["2026-11-23 Mon 09:00", "2026-11-24 Tue 09:00",
                                                 "2026-11-25 Wed 09:00"]),
    # day-of-week counts 1-7 from Sunday: 2-6 is Monday to Friday, 1 is Sunday
    ("cron(0 9 ? * 2-6 *)", "UTC", ["2026-11-23 Mon 09:00", "2026-11-24 Tue 09:00", "2026-11-25 Wed 09:00"]),
    ("cron(0 9 ? * 1 *)", "UTC", ["2026-11-29 Sun 09:00", "2026-12-06 Sun 09:00", "2026-12-13 Sun 09:00"]),
    ("cron(0 9 ? * 6#3 *)", "UTC", ["2026-12-18 Fri 09:00", "2027-01-15 Fri 09:00", "2027-02-19 Fri 09:00"]),
    ("cron(0 9 ? * 6L *)", "UTC", ["2026-11-27 Fri 09:00", "2026-12-25 Fri 09:00", "2027-01-29 Fri 09:00"]),
    ("cron(0 9 L * ? *)", "UTC", ["2026-11-30 Mon 09:00", "2026-12-31 Thu 09:00", "2027-01-31 Sun 09:00"]),
    # 15 August 2027 is a Sunday: the nearest weekday is Monday the 16th
    ("cron(0 9 15W AUG ? 2027)", "UTC", ["2027-08-16 Mon 09:00"]),
    ("cron(0 0 1 JAN,JUL ? 2027-2028)", "UTC", ["2027-01-01 Fri 00:00", "2027-07-01 Thu 00:00",
                                                  "2028-01-01 Sat 00:00"]),
    ("at(2026-12-24T18:00:00)", "America/New_York", ["2026-12-24 Thu 18:00"]),
])
def test_valid_expressions_fire_when_eventbridge_would(expression: str, timezone: str, expected: list[str]) -> None:
    assert _times(expression, timezone) == expected


@pytest.mark.parametrize(("expression", "says"), [
    ("", "expression must be rate(value unit), cron("),
    ("@hourly", "expression must be rate(value unit), cron("),
    ("rate(5minutes)", "rate(5 minutes)"),
    ("rate(0 minutes)", "between 1 and"),
    ("rate(1 minutes)", "singular 'minute'"),
    ("rate(5 minute)", "plural 'minutes'"),
    ("rate(5 seconds)", "'seconds' is not one of minute(s), hour(s), day(s)"),
    ("rate(-5 minutes)", "rate(5 minutes)"),
    ("cron(0 9 * * ?)", "six fields"),
    ("cron(0 9 * * * * *)", "six fields"),
    ("cron(0 9 * * * *)", "exactly one of day-of-month and day-of-week must be ?"),
    ("cron(0 9 ? * ? *)", "exactly one of day-of-month and day-of-week must be ?"),
    ("cron(60 9 * * ? *)", "minutes: 60 is out of range 0-59"),
    ("cron(0 24 * * ? *)", "hours: 24 is out of range 0-23"),
    ("cron(0 9 0 * ? *)", "day-of-month: 0 is out of range 1-31"),
    ("cron(0 9 * 13 ? *)", "month: 13 is out of range 1-12 or JAN-DEC"),
    ("cron(0 9 * JANUARY ? *)", "month: 'JANUARY' is not a value"),
    ("cron(0 9 ? * 8 *)", "day-of-week: 8 is out of range 1-7 or SUN-SAT"),
    ("cron(0 9 ? * 0 *)", "day-of-week: 0 is out of range 1-7"),
    ("cron(0 9 * * ? 1969)", "year: 1969 is out of range 1970-2199"),
    ("cron(30-10 * * * ? *)", "the range '30-10' runs backwards"),
    ("cron(*/0 * * * ? *)", "increment in '*/0' must be a positive whole number"),
    ("cron(0 9 ? * 3#1,6#3 *)", "alone in the field"),
    ("cron(0 9 ? * 6#6 *)", "must look like 6#3"),
    ("cron(0 9 1W,15W * ? *)", "W takes one day"),
    ("at(2026-02-30T09:00:00)", "not a real date and time"),
    ("at(2026-12-24 18:00)", "at(2030-01-31T09:30:00)"),
])
def test_invalid_expressions_are_refused_saying_what_is_wrong(expression: str, says: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse_expression(expression)

    assert refused.value.code == "invalid_expression" and refused.value.status == 422
    assert says in refused.value.message


@pytest.mark.parametrize("name", ["UTC", "Europe/Paris", "America/Argentina/Buenos_Aires", "Etc/GMT+5"])
def test_iana_time_zones_are_accepted(name: str) -> None:
    assert parse_timezone(name).key == name


@pytest.mark.parametrize("name", ["", "utc+2", "CEST", "Mars/Olympus_Mons", "../../etc/passwd", "localtime"])
def test_other_time_zones_are_refused(name: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse_timezone(name)

    assert refused.value.code == "invalid_timezone"


def test_rate_counts_from_when_the_schedule_was_armed() -> None:
    armed = datetime(2026, 11, 22, 9, 58, 30, tzinfo=UTC)

    assert _times("rate(5 minutes)", anchor=armed) == [
        "2026-11-22 Sun 10:03", "2026-11-22 Sun 10:08", "2026-11-22 Sun 10:13"]
    assert _times("rate(5 minutes)", after=armed.replace(second=0), anchor=armed, count=1) == [
        "2026-11-22 Sun 09:58"]  # it fires when armed


def test_cron_honours_the_time_zone_across_daylight_saving() -> None:
    # Paris leaves summer time on 25 October 2026: 09:00 is 07:00 UTC before and 08:00 UTC after.
    times = fire_times(parse_expression("cron(0 9 * * ? *)"), parse_timezone("Europe/Paris"),
                       after=datetime(2026, 10, 24, 12, 0, tzinfo=UTC), anchor=NOW, count=2)

    assert [t.strftime("%m-%d %H:%M") for t in times] == ["10-25 08:00", "10-26 08:00"]


def test_cron_skips_a_time_the_spring_jump_removes_and_fires_a_repeated_time_once() -> None:
    # Paris: 29 March 2026 02:00 -> 03:00 (02:30 does not exist); 25 October 03:00 -> 02:00 (02:30 twice).
    spring = _times("cron(30 2 * * ? *)", "Europe/Paris", after=datetime(2026, 3, 28, 12, 0, tzinfo=UTC))
    autumn = _times("cron(30 2 * * ? *)", "Europe/Paris", after=datetime(2026, 10, 24, 12, 0, tzinfo=UTC))

    assert spring == ["2026-03-30 Mon 02:30", "2026-03-31 Tue 02:30", "2026-04-01 Wed 02:30"]
    assert autumn == ["2026-10-25 Sun 02:30", "2026-10-26 Mon 02:30", "2026-10-27 Tue 02:30"]


@pytest.mark.parametrize("expression", ["cron(0 9 31 2 ? *)", "cron(0 9 * * ? 2020)", "at(2026-01-01T00:00:00)"])
def test_expressions_with_no_time_left_have_no_fire_times(expression: str) -> None:
    assert _times(expression) == []


@pytest.mark.parametrize("expression", [
    "cron(30 2 ? 3 1L *)",  # 02:30 on the last Sunday of March: the hour Paris skips, every year
    "cron(30 2 ? 3 1#5 *)",  # the fifth Sunday of March is always its last
    "cron(* 2 ? 3 1L *)",
])
def test_a_cron_whose_every_time_a_daylight_saving_gap_swallows_never_fires_in_bounded_steps(
        expression: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Counted in steps of croniter, not in seconds: these walked to the year 9999 (over 1 s of CPU) and then failed.
    steps = 0
    get_next = croniter.get_next

    def counted(self: croniter, *args: Any, **kwargs: Any) -> Any:
        nonlocal steps
        steps += 1
        return get_next(self, *args, **kwargs)

    monkeypatch.setattr(croniter, "get_next", counted)

    assert _times(expression, "Europe/Paris", count=5) == []
    assert steps <= MAX_CANDIDATES


def test_a_cron_that_a_gap_swallows_only_sometimes_still_fires() -> None:
    # The last Sunday of March and of June at 02:30: March's never happens in Paris, June's does.
    assert _times("cron(30 2 ? 3,6 1L *)", "Europe/Paris", count=2) == ["2027-06-27 Sun 02:30",
                                                                        "2028-06-25 Sun 02:30"]


def test_nothing_fires_after_eventbridges_last_year() -> None:
    assert _times("cron(0 0 1 1 ? *)", after=datetime(2198, 6, 1, tzinfo=UTC), count=3) == ["2199-01-01 Tue 00:00"]


def test_fire_event_must_name_an_api_schedule_or_carry_its_job() -> None:
    when = "2026-11-22T10:00:00Z"
    api = ScheduledFire.model_validate({"schedule_id": "sch_01JAAAAAAAAAAAAAAAAAAAAAAA", "scheduled_time": when})
    static = ScheduledFire.model_validate({"schedule_id": "nightly", "tenant": "acme", "scheduled_time": when,
                                           "job": {"input": "hi"}})

    assert api.job is None and static.job is not None and static.tenant == "acme"
    for bad in ({"schedule_id": "nightly", "scheduled_time": when},
                {"schedule_id": "nightly", "scheduled_time": when, "job": {"input": "hi"}},
                {"schedule_id": "sch_01JAAAAAAAAAAAAAAAAAAAAAAA", "tenant": "acme", "scheduled_time": when,
                 "job": {"input": "hi"}}):
        with pytest.raises(ValueError):
            ScheduledFire.model_validate(bad)
