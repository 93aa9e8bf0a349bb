"""Rates and usage over real HTTP on the local stack (`make run`), with the stack's default limits set low."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Stack, start_stack, stop_stack
from tests.helpers import eventually

LIMIT = 3
ADMIN_KEY = "aj_e2e_admin_key_limits_0123456789"  # reads a tenant's usage without spending its requests


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    process, running = start_stack(tmp_path_factory.mktemp("limited") / "stack.log",
                                   AIJOBS_LIMIT_REQUESTS_PER_MINUTE=str(LIMIT), AIJOBS_ADMIN_KEY=ADMIN_KEY)
    yield running
    stop_stack(process)


def test_a_tenant_past_its_request_rate_gets_429_and_another_tenant_does_not(limited: Stack) -> None:
    with limited.client("tenant-a") as client:
        # Fixed one-minute windows: should a minute end among them, 2 x LIMIT + 1 requests still pass one limit.
        answers = [client.get("/v1/jobs") for _ in range(2 * LIMIT + 1)]
    refused = [a for a in answers if a.status_code == 429]
    assert refused and all(a.status_code in (200, 429) for a in answers)
    error = refused[0].json()["error"]
    assert (error["code"], error["retryable"]) == ("requests_per_minute", True)
    assert 1 <= int(refused[0].headers["Retry-After"]) <= 60
    assert refused[0].headers["x-ratelimit-remaining-requests"] == "0"

    with limited.client("tenant-b") as other:
        usage = other.get("/v1/usage")
    assert usage.status_code == 200
    assert usage.headers["x-ratelimit-limit-requests"] == str(LIMIT)
    assert usage.json()["limits"]["requests_per_minute"] == LIMIT
    assert usage.json()["today"]["requests"] == 1  # tenant A's requests are its own


def test_the_usage_of_a_finished_job_shows_today(limited: Stack) -> None:
    with limited.client("tenant-b") as client:  # with the test above, its 3 requests: within its limit
        answer = client.post("/v1/jobs", json={"input": "count me"}, headers={"Prefer": "wait=10"})
        job = answer.json()
        assert job["status"] == "completed"

        # A job's end is counted right after its final write (README, Usage): the operator's view shows it first.
        def counted(today: dict[str, Any]) -> bool:
            return today["jobs"] >= 1 and today["output_tokens"] >= job["usage"]["output_tokens"]

        with httpx.Client(base_url=limited.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as admin:
            eventually(lambda: counted(admin.get("/v1/admin/tenants/tenant-b/usage").json()["today"]), timeout_s=10)
        usage = client.get("/v1/usage")
    today = usage.json()["today"]
    assert counted(today)
    assert today["cost_usd"] >= job["cost_usd"] > 0
