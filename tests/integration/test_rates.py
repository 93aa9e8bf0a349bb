"""Request and token rates per tenant (aijobs/rates.py, aijobs/usage.py): counted in DynamoDB, 429 past a limit,
OpenAI's x-ratelimit-* headers on every authenticated answer; a job's real usage replaces its estimate."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from aijobs.models.tenants import TenantLimits
from aijobs.services import Services
from tests.faults import sqs_down
from tests.helpers import MovableClock, read_sse
from tests.integration.conftest import KEY_B, TENANT_A, TENANT_B, api_client, run_worker

RATE_HEADERS = {"x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests",
                "x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"}
# fake-model is not an OpenAI model: its input is estimated at 4 characters a token, plus 3 per message and 3 to
# prime the answer (aijobs/tokens.py). "hi" is 1 token: 7 in all.
HI_INPUT_TOKENS = 7


@pytest.fixture(autouse=True)
def _still_at_the_start_of_a_minute(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """The services' clock stands 1 s into a minute (``advance`` still moves it): a test's counts stay in one
    window, and the resets it reads do not depend on how fast it runs."""
    clock = services.clock
    assert isinstance(clock, MovableClock)
    start, offset = (clock() // 60 + 1) * 60 + 1, clock.offset
    if start % 86_400 > 86_400 - 300:  # the day's last minutes: a test that moves on a few minutes stays in its day
        start = (start // 86_400 + 1) * 86_400 + 1
    monkeypatch.setattr(MovableClock, "__call__", lambda self: start + self.offset - offset)


def _limit(services: Services, tenant: str = TENANT_A, **limits: Any) -> None:
    services.tenants.set_limits(tenant, TenantLimits(**limits))


def test_requests_over_the_rate_are_429_with_retry_after_until_the_minute_ends(api: Any, services: Services) -> None:
    _limit(services, requests_per_minute=3)

    answers = [api.get("/v1/jobs") for _ in range(4)]

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["x-ratelimit-remaining-requests"] for a in answers] == ["2", "1", "0", "0"]
    refused = answers[-1]
    error = refused.json()["error"]
    assert (error["type"], error["code"], error["retryable"]) == ("rate_limited", "requests_per_minute", True)
    assert refused.headers["Retry-After"] == "59"  # whole seconds to the minute's end (the clock is 1 s into it)
    assert refused.headers["x-ratelimit-reset-requests"] == "59s"
    assert set(refused.headers) >= RATE_HEADERS
    services.clock.advance(59)  # type: ignore[attr-defined]
    assert api.get("/v1/jobs").headers["x-ratelimit-remaining-requests"] == "2"  # a new minute, a new window


def test_one_tenants_requests_never_count_against_another(api: Any, services: Services) -> None:
    _limit(services, requests_per_minute=2)
    _limit(services, TENANT_B, requests_per_minute=5)
    for _ in range(2):
        api.get("/v1/jobs")
    assert api.get("/v1/jobs").status_code == 429

    with api_client(KEY_B) as other:
        answer = other.get("/v1/jobs")

    assert answer.status_code == 200
    headers = answer.headers
    assert (headers["x-ratelimit-limit-requests"], headers["x-ratelimit-remaining-requests"]) == ("5", "4")


def test_every_authenticated_answer_carries_the_rate_headers_errors_included(api: Any, services: Services) -> None:
    answers = [api.get("/v1/jobs"), api.get("/v1/jobs/job_nope"), api.post("/v1/jobs", json={"input": ""})]

    assert [a.status_code for a in answers] == [200, 404, 422]
    for answer in answers:
        assert set(answer.headers) >= RATE_HEADERS, answer.status_code
    defaults = services.settings
    assert answers[0].headers["x-ratelimit-limit-requests"] == str(defaults.limit_requests_per_minute)
    assert answers[0].headers["x-ratelimit-limit-tokens"] == str(defaults.limit_tokens_per_minute)
    assert answers[0].headers["x-ratelimit-reset-tokens"] == "59s"


def test_requests_a_server_takes_at_once_are_counted_in_one_write_and_those_past_the_limit_refused(
        services: Services) -> None:
    from aijobs.rates import OverRate

    _limit(services, requests_per_minute=5)
    counts: list[str] = []

    def note(params: dict[str, Any], **_: Any) -> None:
        if "#requests" in params.get("UpdateExpression", ""):
            counts.append(params["UpdateExpression"])

    async def at_once(n: int) -> list[Any]:
        return await asyncio.gather(*(services.limiter.count(TENANT_A) for _ in range(n)), return_exceptions=True)

    events = services.dynamodb.meta.client.meta.events
    events.register("provide-client-params.dynamodb.UpdateItem", note)
    try:
        first = asyncio.run(at_once(3))
        assert len(counts) == 1  # three requests, one write
        second = asyncio.run(at_once(4))  # two of them fit: those are counted, the other two refused
    finally:
        events.unregister("provide-client-params.dynamodb.UpdateItem", note)

    assert [window.requests for _, window in first] == [3, 3, 3]
    admitted = [outcome for outcome in second if not isinstance(outcome, OverRate)]
    assert sorted(window.requests for _, window in admitted) == [4, 5]
    assert [o.code for o in second if isinstance(o, OverRate)] == ["requests_per_minute"] * 2
    assert services.usage_store.window(TENANT_A).requests == 5


def test_unauthenticated_answers_count_nothing_and_carry_no_rate_headers(services: Services) -> None:
    with api_client("aj_not_a_key") as stranger:
        answer = stranger.get("/v1/jobs")

    assert answer.status_code == 401
    assert not RATE_HEADERS & set(answer.headers)


def test_a_stream_sends_the_rate_headers_before_its_first_event(api: Any, services: Services,
                                                                  worker_handler: Any) -> None:
    job_id = api.post("/v1/jobs", json={"input": "hi"}).json()["id"]
    run_worker(services, worker_handler)

    with api.stream("GET", f"/v1/jobs/{job_id}/stream") as stream:
        headers = stream.headers
        events = list(read_sse(stream.iter_lines()))

    assert headers["content-type"].startswith("text/event-stream")
    assert set(headers) >= RATE_HEADERS
    assert headers["x-ratelimit-remaining-requests"] == str(services.settings.limit_requests_per_minute - 2)
    assert events[-1].event == "completed"


def test_a_job_over_the_minutes_tokens_is_429_and_fits_again_the_next_minute(api: Any, services: Services) -> None:
    _limit(services, tokens_per_minute=1000)
    job = {"input": "hi", "max_output_tokens": 500}  # 507 tokens reserved: one fits in 1000, two do not

    first, second = api.post("/v1/jobs", json=job), api.post("/v1/jobs", json=job)

    assert first.status_code == 202
    assert first.headers["x-ratelimit-remaining-tokens"] == str(1000 - HI_INPUT_TOKENS - 500)  # its own included
    assert second.status_code == 429
    error = second.json()["error"]
    assert (error["type"], error["code"], error["retryable"]) == ("rate_limited", "tokens_per_minute", True)
    assert second.headers["Retry-After"] == "59"
    assert services.usage_store.window(TENANT_A).tokens == HI_INPUT_TOKENS + 500  # the refused job reserved nothing
    services.clock.advance(59)  # type: ignore[attr-defined]
    assert api.post("/v1/jobs", json=job).status_code == 202


def test_a_job_larger_than_the_whole_minute_is_refused_as_not_retryable(api: Any, services: Services) -> None:
    _limit(services, tokens_per_minute=1000)

    answer = api.post("/v1/jobs", json={"input": "hi", "max_output_tokens": 2000})

    assert answer.status_code == 429
    assert answer.json()["error"]["code"] == "tokens_per_minute" and answer.json()["error"]["retryable"] is False
    assert "Retry-After" not in answer.headers


def test_each_item_of_a_batch_is_admitted_on_its_own(api: Any, services: Services) -> None:
    _limit(services, tokens_per_minute=1000)
    item = {"input": "hi", "max_output_tokens": 400}  # 407 each: two fit

    answer = api.post("/v1/jobs/batch", json={"jobs": [item, item, {"input": ""}, item]})

    assert answer.status_code == 202
    data = answer.json()["data"]
    assert [d.get("status") for d in data] == ["queued", "queued", None, None]
    assert data[2]["error"]["code"] == "invalid_fields"
    assert data[3]["error"]["code"] == "tokens_per_minute"
    assert answer.headers["x-ratelimit-remaining-tokens"] == str(1000 - 2 * (HI_INPUT_TOKENS + 400))
    assert services.store.get_job(data[0]["id"]) is not None and services.store.get_job(data[1]["id"]) is not None


def test_a_batch_that_fits_reserves_its_jobs_in_one_write_each_settled_on_its_own(
        api: Any, services: Services, worker_handler: Any) -> None:
    _limit(services, tokens_per_minute=10_000)
    usage_writes: list[str] = []

    def note(params: dict[str, Any], **_: Any) -> None:
        if str(params.get("Key", {}).get("sk", "")).startswith("USAGE#"):
            usage_writes.append(params["UpdateExpression"])

    events = services.dynamodb.meta.client.meta.events
    events.register("provide-client-params.dynamodb.UpdateItem", note)
    try:
        answer = api.post("/v1/jobs/batch", json={"jobs": [{"input": "hi", "max_output_tokens": 100 * n}
                                                           for n in (1, 2, 3)]})
    finally:
        events.unregister("provide-client-params.dynamodb.UpdateItem", note)

    assert answer.status_code == 202 and [d["status"] for d in answer.json()["data"]] == ["queued"] * 3
    assert len([w for w in usage_writes if "#jobs" in w]) == 1  # the three reservations: one write
    assert services.usage_store.window(TENANT_A).tokens == 3 * HI_INPUT_TOKENS + 600
    assert answer.headers["x-ratelimit-remaining-tokens"] == str(10_000 - 3 * HI_INPUT_TOKENS - 600)
    assert services.usage.usage(TENANT_A).today.jobs == 3
    run_worker(services, worker_handler)
    assert services.usage_store.window(TENANT_A).tokens < 3 * HI_INPUT_TOKENS  # each job's real tokens replaced its own


def test_a_batch_whose_last_job_would_find_the_budget_spent_is_admitted_one_by_one(
        api: Any, services: Services) -> None:
    from aijobs.rates import estimate

    item = {"input": "hi", "max_output_tokens": 1000}
    job_id = api.post("/v1/jobs", json=item).json()["id"]
    one = estimate(services.store.get_job(job_id))[1]  # type: ignore[arg-type]
    _limit(services, daily_cost_usd=float(one * 2 + one / 2))  # two more jobs' estimates fit under it, not three

    answer = api.post("/v1/jobs/batch", json={"jobs": [item, item, item]})

    assert [d.get("status") for d in answer.json()["data"]] == ["queued", "queued", None]
    assert answer.json()["data"][2]["error"]["type"] == "quota_exceeded"
    assert services.usage.usage(TENANT_A).today.jobs == 3


def test_a_retry_goes_through_admission_too(api: Any, services: Services) -> None:
    _limit(services, tokens_per_minute=1000)
    job = {"input": "hi", "max_output_tokens": 600}
    job_id = api.post("/v1/jobs", json=job).json()["id"]
    api.delete(f"/v1/jobs/{job_id}")  # its tokens go back to the minute...
    assert api.post("/v1/jobs", json=job).status_code == 202  # ...and another job takes them

    answer = api.post(f"/v1/jobs/{job_id}/retry")

    assert answer.status_code == 429 and answer.json()["error"]["code"] == "tokens_per_minute"


def test_a_job_that_could_not_be_queued_gives_its_tokens_back(api: Any, services: Services) -> None:
    with sqs_down(services):
        assert api.post("/v1/jobs", json={"input": "hi", "max_output_tokens": 100}).status_code == 503

    assert services.usage_store.window(TENANT_A).tokens == 0
    assert services.usage.usage(TENANT_A).today.jobs == 0


def test_the_real_usage_replaces_the_estimate_when_the_job_ends_in_its_minute(
        api: Any, services: Services, worker_handler: Any) -> None:
    job_id = api.post("/v1/jobs", json={"input": "hi", "max_output_tokens": 1000}).json()["id"]
    assert services.usage_store.window(TENANT_A).tokens == HI_INPUT_TOKENS + 1000

    run_worker(services, worker_handler)

    usage = api.get(f"/v1/jobs/{job_id}").json()["usage"]
    assert services.usage_store.window(TENANT_A).tokens == usage["input_tokens"] + usage["output_tokens"]
    assert usage["input_tokens"] + usage["output_tokens"] < HI_INPUT_TOKENS + 1000


def test_a_schedule_fire_is_admitted_like_any_submit(services: Services) -> None:
    from aijobs.models.jobs import JobRequest

    _limit(services, tokens_per_minute=1000)
    request = JobRequest(input="hi", max_output_tokens=600)
    services.jobs.submit_job(tenant=TENANT_A, request=request)

    with pytest.raises(Exception) as refused:
        services.jobs.submit_job(tenant=TENANT_A, request=request, schedule_id="sch_x", job_id="job_fire_1")

    assert getattr(refused.value, "code", None) == "tokens_per_minute"
    assert services.store.get_job("job_fire_1") is None


def _window_attributes(services: Services) -> set[str]:
    from aijobs.usage import Minute, usage_key

    item = services.table.get_item(Key=usage_key(TENANT_A, Minute.at(services.clock()).day))["Item"]
    return {name for name in item if name[0] in "rt" and name[1:].isdigit()}


def test_the_minutes_gone_by_leave_the_days_item(api: Any, services: Services) -> None:
    from aijobs.usage import Minute

    api.post("/v1/jobs", json={"input": "hi"})
    services.clock.advance(120)  # type: ignore[attr-defined]  # a minute with no request in between
    api.get("/v1/jobs")  # sees the old minute's counters on the item...
    api.get("/v1/jobs")  # ...and removes them

    now = Minute.at(services.clock()).index
    assert _window_attributes(services) == {f"r{now}"}
    assert api.get("/v1/usage").json()["today"]["requests"] == 4  # the day keeps counting


def test_a_job_that_ends_after_its_minute_leaves_the_new_minute_alone(
        api: Any, services: Services, worker_handler: Any) -> None:
    api.post("/v1/jobs", json={"input": "hi", "max_output_tokens": 1000})
    services.clock.advance(60)  # type: ignore[attr-defined]

    run_worker(services, worker_handler)

    assert services.usage_store.window(TENANT_A).tokens == 0


def test_a_job_cancelled_before_it_ran_gives_its_tokens_back(api: Any, services: Services) -> None:
    _limit(services, tokens_per_minute=1000)
    job = {"input": "hi", "max_output_tokens": 600}
    job_id = api.post("/v1/jobs", json=job).json()["id"]
    assert api.post("/v1/jobs", json=job).status_code == 429

    api.delete(f"/v1/jobs/{job_id}")

    assert services.usage_store.window(TENANT_A).tokens == 0
    assert api.post("/v1/jobs", json=job).status_code == 202
    assert api.get("/v1/usage").json()["today"]["jobs"] == 2  # the cancelled one was admitted all the same
