"""GET /v1/usage: a tenant's counters per UTC day (aijobs/usage.py), equal to the sum of its jobs, and its own only."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal
from typing import Any

from aijobs.models.jobs import JobStatus
from aijobs.services import Services
from aijobs.usage import spent, usage_key
from tests.helpers import eventually
from tests.integration.conftest import KEY_B, TENANT_A, api_client, run_worker


def _today(services: Services) -> dt.date:
    return dt.datetime.fromtimestamp(services.clock(), dt.UTC).date()


def test_a_days_usage_is_the_sum_of_its_jobs_cancelled_ones_included(
        api: Any, services: Services, worker_handler: Any) -> None:
    ids = [api.post("/v1/jobs", json={"input": f"job {n} " * (n + 1)}).json()["id"] for n in range(3)]
    run_worker(services, worker_handler)
    cancelled = api.post("/v1/jobs", json={"input": "never runs"}).json()["id"]
    api.delete(f"/v1/jobs/{cancelled}")  # cancelled while queued: it used nothing

    answer = api.get("/v1/usage")

    assert answer.status_code == 200
    jobs = [services.store.get_job(job_id) for job_id in ids]
    assert all(job is not None and job.status is JobStatus.completed for job in jobs)
    item = services.table.get_item(Key=usage_key(TENANT_A, _today(services)))["Item"]
    assert item["cost_usd"] == sum((job.cost_usd for job in jobs if job and job.cost_usd), Decimal(0))  # exactly
    assert spent(item) == item["cost_usd"]  # every reservation replaced by its job's cost (the batch's in one write)
    today = answer.json()["today"]
    assert today["jobs"] == 4
    assert today["input_tokens"] == sum(job.usage.input_tokens for job in jobs if job and job.usage)
    assert today["output_tokens"] == sum(job.usage.output_tokens for job in jobs if job and job.usage)
    assert today["requests"] == 6  # 4 submits, 1 cancel, this GET
    assert answer.json()["data"][-1] == today and len(answer.json()["data"]) == 7
    assert answer.json()["limits"]["requests_per_minute"] == services.settings.limit_requests_per_minute


def test_a_job_cancelled_while_it_ran_counts_what_it_used(api: Any, services: Services, worker_handler: Any) -> None:
    job_id = api.post("/v1/jobs", json={"input": "long [[tokens=100]] [[token_ms=100]]"}).json()["id"]
    worker = threading.Thread(target=run_worker, args=(services, worker_handler))
    worker.start()
    eventually(lambda: api.get(f"/v1/jobs/{job_id}").json()["status"] == "in_progress", timeout_s=10)
    api.delete(f"/v1/jobs/{job_id}")
    worker.join(timeout=15)

    job = eventually(lambda: (j := services.store.get_job(job_id)) and j.usage and j, timeout_s=5)
    today = api.get("/v1/usage").json()["today"]
    assert job.usage is not None and 0 < job.usage.output_tokens < 100
    assert (today["input_tokens"], today["output_tokens"]) == (job.usage.input_tokens, job.usage.output_tokens)
    assert today["cost_usd"] == float(job.cost_usd or 0)


def test_a_tenant_sees_only_its_own_usage(api: Any, services: Services, worker_handler: Any) -> None:
    api.post("/v1/jobs", json={"input": "a's job"})
    run_worker(services, worker_handler)

    with api_client(KEY_B) as other:
        today = other.get("/v1/usage").json()["today"]

    assert (today["requests"], today["jobs"], today["input_tokens"], today["cost_usd"]) == (1, 0, 0, 0)


def test_a_range_lists_every_day_oldest_first_and_is_bounded(api: Any, services: Services) -> None:
    today = _today(services)
    first = today - dt.timedelta(days=2)

    answer = api.get("/v1/usage", params={"from": first.isoformat(), "to": today.isoformat()})

    assert [day["date"] for day in answer.json()["data"]] == [(first + dt.timedelta(days=n)).isoformat()
                                                              for n in range(3)]
    assert answer.json()["data"][0]["requests"] == 0
    too_long = api.get("/v1/usage", params={"from": (today - dt.timedelta(days=92)).isoformat()})
    backwards = api.get("/v1/usage", params={"from": today.isoformat(), "to": first.isoformat()})
    not_a_date = api.get("/v1/usage", params={"from": "yesterday"})
    assert [too_long.status_code, backwards.status_code, not_a_date.status_code] == [422, 422, 422]
    assert too_long.json()["error"]["code"] == "range_too_long"
    assert backwards.json()["error"]["code"] == "invalid_range"


def test_a_past_range_still_answers_today(api: Any, services: Services) -> None:
    long_ago = _today(services) - dt.timedelta(days=30)

    answer = api.get("/v1/usage", params={"from": long_ago.isoformat(), "to": long_ago.isoformat()})

    assert answer.json()["today"]["requests"] == 1
    assert [day["requests"] for day in answer.json()["data"]] == [0]


def test_the_default_range_stops_at_the_first_day_there_is(api: Any) -> None:
    answer = api.get("/v1/usage", params={"to": "0001-01-02"})

    assert [day["date"] for day in answer.json()["data"]] == ["0001-01-01", "0001-01-02"]
