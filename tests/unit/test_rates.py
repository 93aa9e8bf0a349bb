"""The pieces of the rate windows that need no table: OpenAI's reset durations, the minutes of a UTC day, the
headers of a window, and what a job reserves."""

from __future__ import annotations

import datetime as dt

import pytest

from aijobs.models.jobs import Job, JobRequest, JobStatus
from aijobs.models.tenants import Limits
from aijobs.rates import DEFAULT_OUTPUT_TOKENS, duration, estimate, rate_headers
from aijobs.usage import Minute, Window

NOON = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC).timestamp()


@pytest.mark.parametrize(("seconds", "text"), [(0.01, "1s"), (1, "1s"), (59.2, "1m0s"), (60, "1m0s"),
                                               (61, "1m1s"), (390, "6m30s")])
def test_resets_are_written_as_openai_writes_them(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_a_minute_is_its_place_in_its_utc_day_and_ends_on_the_minute() -> None:
    minute = Minute.at(NOON + 30.5)

    assert (minute.day, minute.index, minute.ends_at) == (dt.date(2026, 12, 2), 720, NOON + 60)
    assert Minute.at(NOON - 0.5).index == 719
    assert Minute.at(dt.datetime(2026, 12, 3, tzinfo=dt.UTC).timestamp()) == Minute(dt.date(2026, 12, 3), 0)


def test_the_headers_say_what_is_left_of_the_window_and_when_it_resets() -> None:
    limits = Limits(requests_per_minute=10, tokens_per_minute=1000, concurrent_jobs=1, daily_cost_usd=1,
                    daily_cost_soft_usd=1)

    headers = rate_headers(limits, Window(Minute.at(NOON), requests=4, tokens=1200), now=NOON + 20)

    assert headers == {"x-ratelimit-limit-requests": "10", "x-ratelimit-remaining-requests": "6",
                       "x-ratelimit-reset-requests": "40s", "x-ratelimit-limit-tokens": "1000",
                       "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "40s"}


def _job(model: str, **request: object) -> Job:
    return Job(id="job_1", tenant="t", status=JobStatus.queued, model=model, created_at=0,
               request=JobRequest.model_validate(request))


def test_a_job_reserves_its_input_and_its_output_cap_or_the_default_cap() -> None:
    # another provider's model: 4 characters a token, 3 per message and 3 to prime the answer
    assert estimate(_job("llama-3", input="x" * 40, max_output_tokens=100))[0] == 3 + 3 + 10 + 100
    assert estimate(_job("llama-3", input="x" * 41))[0] == 3 + 3 + 11 + DEFAULT_OUTPUT_TOKENS


def test_an_openai_models_input_is_counted_with_its_tokenizer() -> None:
    # "hello world" is 2 tokens in o200k_base; instructions are a message of their own
    job = _job("gpt-4o-mini", input="hello world", instructions="hello world", max_output_tokens=10)

    assert estimate(job)[0] == 3 + (3 + 2) * 2 + 10
