"""The daily cost budget (aijobs/rates.py, aijobs/usage.py) and ``on_limit: "defer"``: a job reserves its estimated
cost at admission, its end replaces the estimate with its real cost; past the soft budget every answer warns, past
the hard one new jobs are 429 ``quota_exceeded`` until the next UTC day, or wait for it when deferred."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import threading
from decimal import Decimal
from typing import Any

import pytest

from aijobs.models.jobs import JobRequest, JobStatus
from aijobs.models.tenants import TenantLimits
from aijobs.pricing import estimate_cost
from aijobs.services import Services
from aijobs.usage import spent, usage_key
from tests.helpers import MovableClock
from tests.integration.conftest import KEY_B, TENANT_A, TENANT_B, api_client, run_worker

# fake-model's "hi" is 7 input tokens (estimated: it is not an OpenAI model, see test_rates.py)
HI = {"input": "hi", "max_output_tokens": 1000}
HI_ESTIMATE = estimate_cost("fake-model", input_tokens=7, output_tokens=1000).cost_usd  # 0.00060105 USD


@pytest.fixture(autouse=True)
def _mid_day(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """The services' clock stands at noon UTC of a day (``advance`` still moves it): a test's spend stays on one
    day, and the resets it reads do not depend on when it runs."""
    clock = services.clock
    assert isinstance(clock, MovableClock)
    noon, offset = (clock() // 86_400 + 1) * 86_400 + 43_200 + 1, clock.offset
    monkeypatch.setattr(MovableClock, "__call__", lambda self: noon + self.offset - offset)


def _budget(services: Services, tenant: str = TENANT_A, **limits: Any) -> None:
    services.tenants.set_limits(tenant, TenantLimits(**limits))


def _spent(services: Services, tenant: str = TENANT_A) -> Decimal:
    day = dt.datetime.fromtimestamp(services.clock(), dt.UTC).date()
    return spent(services.table.get_item(Key=usage_key(tenant, day)).get("Item") or {})


def test_past_the_soft_budget_answers_warn_and_past_the_hard_one_new_jobs_are_refused_until_tomorrow(
        api: Any, services: Services) -> None:
    _budget(services, daily_cost_soft_usd=0.0006, daily_cost_usd=0.0012)
    first = api.post("/v1/jobs", json=HI)
    second = api.post("/v1/jobs", json=HI)  # the spend (one estimate) is under the hard budget: admitted

    refused = api.post("/v1/jobs", json=HI)

    assert (first.status_code, second.status_code, refused.status_code) == (202, 202, 429)
    assert first.headers["x-aijobs-budget-warning"] == (
        f"spent_usd={HI_ESTIMATE:.4f}; daily_cost_soft_usd=0.0006; daily_cost_usd=0.0012")
    error = refused.json()["error"]
    assert (error["type"], error["code"], error["retryable"]) == ("quota_exceeded", "daily_budget", True)
    assert int(refused.headers["Retry-After"]) == 43_200 - 1  # to the next UTC midnight
    # reads, cancels and the usage endpoint keep working, and warn
    listed = api.get("/v1/jobs")
    assert listed.status_code == 200 and "x-aijobs-budget-warning" in listed.headers
    assert api.delete(f"/v1/jobs/{first.json()['id']}").status_code == 200
    budget = api.get("/v1/usage").json()["budget"]
    assert budget["spent_usd"] == float(HI_ESTIMATE)  # the cancelled job's estimate went back
    assert (budget["soft_limit_reached"], budget["hard_limit_reached"]) == (True, False)
    assert budget["remaining_usd"] == pytest.approx(0.0012 - float(HI_ESTIMATE))
    assert budget["resets_at"] == math.ceil(services.clock() / 86_400) * 86_400


def test_a_new_day_has_a_new_budget(api: Any, services: Services) -> None:
    _budget(services, daily_cost_usd=0.0001)
    assert api.post("/v1/jobs", json=HI).status_code == 202
    assert api.post("/v1/jobs", json=HI).status_code == 429

    services.clock.advance(43_200)  # type: ignore[attr-defined]

    assert api.post("/v1/jobs", json=HI).status_code == 202


def test_a_budget_under_the_soft_limit_sends_no_warning(api: Any, services: Services) -> None:
    answer = api.post("/v1/jobs", json=HI)

    assert answer.status_code == 202 and "x-aijobs-budget-warning" not in answer.headers
    assert api.get("/v1/usage").json()["budget"]["soft_limit_reached"] is False


def test_the_real_cost_replaces_the_estimate_and_the_spend_equals_the_jobs_costs(
        api: Any, services: Services, worker_handler: Any) -> None:
    ids = [api.post("/v1/jobs", json={**HI, "input": f"job {n} " * (n + 1)}).json()["id"] for n in range(3)]
    assert _spent(services) > 0

    run_worker(services, worker_handler)

    jobs = [services.store.get_job(job_id) for job_id in ids]
    assert all(job is not None and job.status is JobStatus.completed for job in jobs)
    costs = sum((job.cost_usd for job in jobs if job and job.cost_usd), Decimal(0))
    assert _spent(services) == costs  # exactly: no estimate is left in the spend
    usage = api.get("/v1/usage").json()
    assert usage["budget"]["spent_usd"] == usage["today"]["cost_usd"] == float(costs)


def test_failed_and_cancelled_jobs_pay_for_what_they_used(api: Any, services: Services, worker_handler: Any) -> None:
    failed = api.post("/v1/jobs", json={"input": "[[fail=400]] no", "max_output_tokens": 50}).json()["id"]
    cancelled = api.post("/v1/jobs", json=HI).json()["id"]
    api.delete(f"/v1/jobs/{cancelled}")

    run_worker(services, worker_handler)

    assert services.store.get_job(failed).status is JobStatus.failed  # type: ignore[union-attr]
    assert _spent(services) == 0  # neither used anything: their estimates went back


def test_a_burst_of_concurrent_submissions_passes_the_hard_budget_by_at_most_one_estimate(services: Services) -> None:
    _budget(services, daily_cost_usd=float(HI_ESTIMATE * 5 + HI_ESTIMATE / 2))
    answers: list[int] = []

    def submit() -> None:
        with api_client() as client:
            for _ in range(3):
                answers.append(client.post("/v1/jobs", json=HI).status_code)

    threads = [threading.Thread(target=submit) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(set(answers)) == [202, 429]
    assert answers.count(202) == 6  # 5 fit; the 6th finds the spend under the budget and passes it
    assert _spent(services) - Decimal(str(services.tenants.limits(TENANT_A).daily_cost_usd)) < HI_ESTIMATE


def test_one_tenants_budget_never_refuses_another(api: Any, services: Services) -> None:
    _budget(services, daily_cost_usd=0.0001)
    api.post("/v1/jobs", json=HI)
    assert api.post("/v1/jobs", json=HI).status_code == 429

    with api_client(KEY_B) as other:
        answer = other.post("/v1/jobs", json=HI)

    assert answer.status_code == 202 and "x-aijobs-budget-warning" not in answer.headers
    assert _spent(services, TENANT_B) == HI_ESTIMATE


def test_a_model_without_a_price_is_charged_at_the_fallback_never_free(
        api: Any, services: Services, worker_handler: Any) -> None:
    job_id = api.post("/v1/jobs", json={**HI, "model": "someones-own-llama"}).json()["id"]
    assert _spent(services) == estimate_cost("someones-own-llama", input_tokens=7, output_tokens=1000).cost_usd > 0

    run_worker(services, worker_handler)

    job = api.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "completed" and job["price_known"] is False and job["cost_usd"] > 0
    assert _spent(services) == Decimal(str(job["cost_usd"]))


# --- on_limit: "defer" ----------------------------------------------------------------------------------------------


def _run(services: Services, job_id: str) -> Any:
    """The worker's outcome for one delivery of the job's message (the test stands in for SQS's delay)."""
    return asyncio.run(services.worker.run(job_id))


def test_a_deferred_job_over_the_token_rate_waits_queued_and_starts_when_the_next_minute_allows(
        api: Any, services: Services) -> None:
    _budget(services, tokens_per_minute=1500)
    api.post("/v1/jobs", json=HI)

    answer = api.post("/v1/jobs", json={**HI, "on_limit": "defer"})

    assert answer.status_code == 202
    job = answer.json()
    minute_end = (int(services.clock()) // 60 + 1) * 60
    assert job["status"] == "queued"
    assert job["status_details"] == {"reason": "tokens_per_minute", "not_before": minute_end}
    delayed = services.sqs.get_queue_attributes(QueueUrl=services.settings.jobs_queue_url,
                                                AttributeNames=["ApproximateNumberOfMessagesDelayed"])
    assert delayed["Attributes"]["ApproximateNumberOfMessagesDelayed"] == "1"  # its message comes back then
    # Delivered early (the minute is still full): it waits again, its message sent again with a delay
    _run(services, job["id"])
    assert api.get(f"/v1/jobs/{job['id']}").json()["status"] == "queued"
    delayed = services.sqs.get_queue_attributes(QueueUrl=services.settings.jobs_queue_url,
                                                AttributeNames=["ApproximateNumberOfMessagesDelayed"])
    assert delayed["Attributes"]["ApproximateNumberOfMessagesDelayed"] == "2"

    services.clock.advance(60)  # type: ignore[attr-defined]
    _run(services, job["id"])

    done = api.get(f"/v1/jobs/{job['id']}").json()
    assert done["status"] == "completed" and done["status_details"] is None
    assert api.get("/v1/usage").json()["today"]["jobs"] == 2  # counted once, when admitted


def test_a_tenant_may_defer_by_default_and_a_job_may_still_ask_to_be_refused(api: Any, services: Services) -> None:
    _budget(services, daily_cost_usd=0.0001, on_limit="defer")
    api.post("/v1/jobs", json=HI)

    deferred = api.post("/v1/jobs", json=HI)
    refused = api.post("/v1/jobs", json={**HI, "on_limit": "reject"})

    assert deferred.status_code == 202 and deferred.json()["status_details"]["reason"] == "daily_budget"
    assert refused.status_code == 429 and refused.json()["error"]["type"] == "quota_exceeded"


def test_a_job_deferred_to_the_next_day_is_released_by_the_sweeper(
        api: Any, services: Services, worker_handler: Any) -> None:
    _budget(services, daily_cost_usd=0.0001)
    api.post("/v1/jobs", json=HI)
    run_worker(services, lambda *a: {"batchItemFailures": []})  # the first job's message, out of the way (deleted)

    job = api.post("/v1/jobs", json={**HI, "on_limit": "defer"}).json()

    midnight = math.ceil(services.clock() / 86_400) * 86_400
    assert job["status_details"] == {"reason": "daily_budget", "not_before": midnight}
    visible = services.sqs.get_queue_attributes(
        QueueUrl=services.settings.jobs_queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"])["Attributes"]
    assert visible == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesDelayed": "0"}
    assert services.sweeper.sweep().resent == 0  # not due yet

    services.clock.advance(43_200 + services.settings.sweep_resend_after_s)  # type: ignore[attr-defined]
    assert services.sweeper.sweep().resent == 1
    run_worker(services, worker_handler)

    assert api.get(f"/v1/jobs/{job['id']}").json()["status"] == "completed"


def test_a_schedule_fire_over_a_limit_is_deferred_not_lost(services: Services) -> None:
    from aijobs.models.schedules import ScheduledFire, ScheduleRequest

    _budget(services, daily_cost_usd=0.0001)
    services.jobs.submit_job(tenant=TENANT_A, request=JobRequest(**HI))
    schedule = services.schedules.create_schedule(tenant=TENANT_A, request=ScheduleRequest(
        expression="rate(1 hour)", job=JobRequest(**HI)))

    outcome = services.schedules.fire(ScheduledFire(schedule_id=schedule.id, tenant=TENANT_A,
                                                    scheduled_time=dt.datetime.now(dt.UTC)))

    assert outcome.outcome == "created"
    job = services.store.get_job(outcome.job_id or "")
    assert job is not None and job.status is JobStatus.queued
    assert job.status_details is not None and job.status_details.reason == "daily_budget"


def test_a_schedule_fire_that_could_never_fit_the_token_rate_is_skipped_not_retried(services: Services) -> None:
    from aijobs.models.schedules import ScheduledFire, ScheduleRequest

    schedule = services.schedules.create_schedule(tenant=TENANT_A, request=ScheduleRequest(
        expression="rate(1 hour)", job=JobRequest(**HI)))
    _budget(services, tokens_per_minute=500)  # lowered after the schedule was made

    outcome = services.schedules.fire(ScheduledFire(schedule_id=schedule.id, tenant=TENANT_A,
                                                    scheduled_time=dt.datetime.now(dt.UTC)))

    assert (outcome.outcome, outcome.reason, outcome.job_id) == ("skipped", "tokens_per_minute", None)


def test_a_budget_of_zero_admits_nothing_not_even_the_days_first_job(api: Any, services: Services) -> None:
    _budget(services, daily_cost_usd=0)

    answer = api.post("/v1/jobs", json=HI)

    assert answer.status_code == 429 and answer.json()["error"]["code"] == "daily_budget"
    assert _spent(services) == 0
