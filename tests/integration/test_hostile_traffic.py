"""What any caller can do to the service: waits that hold no thread, and bounds per caller."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from aijobs.models.jobs import JobRequest
from aijobs.services import Services
from tests.integration.conftest import KEY_A, KEY_B, run_worker

WAITERS = 60


def test_sixty_waiters_hold_no_thread_and_another_tenant_is_answered_while_they_wait(
        services: Services, worker_handler: Any) -> None:
    from aijobs.api import create_app

    services.jobs.submit_job(tenant="warm-up", request=JobRequest(input="load the worker's provider"))
    run_worker(services, worker_handler)  # so that the waiters' jobs run within their 20 s

    async def scenario() -> tuple[list[httpx.Response], httpx.Response, int]:
        transport = httpx.ASGITransport(app=create_app())
        async with (httpx.AsyncClient(transport=transport, base_url="http://api",
                                      headers={"Authorization": f"Bearer {KEY_A}"}) as a,
                    httpx.AsyncClient(transport=transport, base_url="http://api",
                                      headers={"Authorization": f"Bearer {KEY_B}"}) as b):
            waiters = [asyncio.create_task(a.post("/v1/jobs", json={"input": f"waiter {i}"},
                                                  headers={"Prefer": "wait=20"})) for i in range(WAITERS)]
            for _ in range(2000):  # bounded: every request submitted and waiting
                if services.job_waits.waiting == WAITERS:
                    break
                await asyncio.sleep(0.005)
            other = await b.get("/v1/jobs")  # a plain read of another tenant needs a thread
            still_waiting = sum(not w.done() for w in waiters)
            while services.job_waits.waiting:  # the jobs run; each waiter answers with its finished job
                await asyncio.to_thread(run_worker, services, worker_handler)
                await asyncio.sleep(0.01)
            return await asyncio.gather(*waiters), other, still_waiting

    answers, other, still_waiting = asyncio.run(scenario())
    assert other.status_code == 200 and other.json()["data"] == []
    assert still_waiting == WAITERS  # B was answered while all of A's waiters still waited
    # Each waiter answers with its finished job (200) once it ends; on a slow machine a job may outlast the 20 s.
    seen = [(r.status_code, r.json()["status"], r.headers["Preference-Applied"]) for r in answers]
    assert set(seen) <= {(200, "completed", "wait=20"), (202, "in_progress", "wait=20"), (202, "queued", "wait=20")}
    assert seen.count((200, "completed", "wait=20")) >= 10


def test_a_wait_through_the_lambda_handler_answers_in_each_invocation(services: Services) -> None:
    # Mangum runs each invocation on its event loop: the waits of one invocation must not outlive it.
    from aijobs.local.pollers import FakeLambdaContext
    from aijobs.local.stack import load_handler
    from tests.helpers import load_event

    handler = load_handler("api", "handler")
    for attempt in range(2):
        event = load_event("api_submit_job")
        event["headers"].pop("idempotency-key", None)
        event["headers"]["prefer"] = "wait=1"
        event["body"] = json.dumps({"input": f"not run within the wait {attempt}"})
        answer = handler(event, FakeLambdaContext("ApiFunction", timeout_s=29))
        assert (answer["statusCode"], json.loads(answer["body"])["status"]) == (202, "queued")
        assert answer["headers"]["preference-applied"] == "wait=1" and services.job_waits.waiting == 0


def test_failed_authentications_are_throttled_per_source_address(services: Services) -> None:
    from fastapi.testclient import TestClient

    from aijobs.api import create_app

    limit = services.settings.auth_failures_limit
    with (TestClient(create_app(), client=("203.0.113.7", 50000)) as attacker,
          TestClient(create_app(), client=("198.51.100.9", 50000)) as neighbour):
        wrong = [attacker.get("/v1/jobs", headers={"Authorization": f"Bearer wrong-{i}"}).status_code
                 for i in range(limit)]
        refused = attacker.get("/v1/jobs", headers={"Authorization": "Bearer wrong-again"})
        with_the_right_key = attacker.get("/v1/jobs", headers={"Authorization": f"Bearer {KEY_A}"})
        no_key = attacker.get("/v1/jobs")
        other_address = neighbour.get("/v1/jobs", headers={"Authorization": f"Bearer {KEY_B}"})
        services.clock.advance(services.settings.auth_failures_window_s)  # type: ignore[attr-defined]
        after_the_window = attacker.get("/v1/jobs", headers={"Authorization": f"Bearer {KEY_A}"})
    assert wrong == [401] * limit
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "too_many_failed_authentications"
    assert 1 <= int(refused.headers["Retry-After"]) <= services.settings.auth_failures_window_s
    assert with_the_right_key.status_code == 429 and no_key.status_code == 429  # it cannot go on trying keys
    assert other_address.status_code == 200 and after_the_window.status_code == 200
