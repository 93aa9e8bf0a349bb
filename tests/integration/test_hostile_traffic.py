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
    assert [(r.status_code, r.json()["status"], r.headers["Preference-Applied"]) for r in answers] == [
        (200, "completed", "wait=20")] * WAITERS


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
