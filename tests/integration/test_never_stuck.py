"""Every case of the never-stuck issue, reproduced as a user would meet it: a submitted job ends, once, and its
webhook goes out, whatever fails in between. The worker's death is a ``BaseException`` out of the model call, so
that the whole invocation fails as a killed process's would; time moves on the services' clock."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from aijobs.dynamo import job_key
from aijobs.local.pollers import FakeLambdaContext, sqs_event
from aijobs.local.server_process import UvicornThread
from aijobs.models.jobs import JobRequest
from aijobs.outcomes import DONE, RetryIn
from aijobs.providers import ModelProvider, StreamEvent
from aijobs.services import Services
from tests.faults import client_error, fail_calls, sqs_down
from tests.integration.conftest import TENANT_A, run_worker

QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:test-JobsQueue"


class WorkerKilled(BaseException):
    """The process died (out of memory, a timeout, a crash): nothing of its invocation finishes."""


class KillingProvider(ModelProvider):
    """The real provider, except that a prompt holding ``[[kill]]`` kills the worker before the model answers."""

    def __init__(self, real: ModelProvider) -> None:
        self.real = real
        self.kills = 0

    async def stream(self, request: JobRequest, *, model: str) -> AsyncIterator[StreamEvent]:
        if "[[kill]]" in str(request.input):
            self.kills += 1
            raise WorkerKilled
        async for event in self.real.stream(request, model=model):
            yield event


@pytest.fixture
def killer(services: Services) -> Iterator[KillingProvider]:
    provider = KillingProvider(services.worker.provider)
    services.worker.provider = provider
    yield provider


def _submit(services: Services, prompt: str, **fields: Any) -> str:
    return services.jobs.submit_job(tenant=TENANT_A, request=JobRequest(input=prompt, **fields)).id


def _status(services: Services, job_id: str) -> Any:
    return services.jobs.get_job(tenant=TENANT_A, job_id=job_id)


def _calls(fake_model: UvicornThread, prompt: str) -> int:
    return int(fake_model.server.config.app.state.calls[f"prompt:{prompt}"])


def _queue_depth(services: Services, url: str | None = None) -> int:
    attributes = services.sqs.get_queue_attributes(
        QueueUrl=url or services.settings.jobs_queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return sum(int(v) for v in attributes.values())


def run_invocation(services: Services, handler: Any) -> str:
    """One worker invocation on what is visible. If the worker dies, SQS hands the batch out again after its
    visibility timeout (here at once); returns "died", "ok" or "empty"."""
    sqs, url = services.sqs, services.settings.jobs_queue_url
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]).get("Messages", [])
    if not messages:
        return "empty"
    try:
        result = handler(sqs_event(messages, QUEUE_ARN), FakeLambdaContext("WorkerFunction"))
    except WorkerKilled:
        for m in messages:
            sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
        return "died"
    failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
    for m in messages:
        if m["MessageId"] not in failed:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        else:
            held.append(m["ReceiptHandle"])
    return "ok"


held: list[str] = []  # receipt handles of messages a worker kept back, to hand out again when the test says


def worker_died_holding(services: Services, job_id: str) -> None:
    """A worker received the job's message, claimed the job, and died: the message stays in flight (for the
    queue's visibility timeout) and the job in_progress (until the lease ends)."""
    sqs, url = services.sqs, services.settings.jobs_queue_url
    assert sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)["Messages"]
    assert services.store.claim_job(job_id, lease_s=services.settings.job_lease_s).job is not None


# --- 1, 2, 3: a crash or a failure between storing a job and sending its message ----------------------------------


def test_1_a_job_that_cannot_be_stored_after_its_message_went_out_leaves_nothing_that_runs(
        api: Any, services: Services, worker_handler: Any, fake_model: UvicornThread) -> None:
    remove = fail_calls(services.dynamodb.meta.client, "PutItem",
                        error=lambda op: client_error("InternalServerError", op))
    try:
        response = api.post("/v1/jobs", json={"input": "never stored"})
    finally:
        remove()

    assert response.status_code == 503 and response.json()["error"]["retryable"] is True
    assert api.get("/v1/jobs").json()["data"] == []
    assert _queue_depth(services) == 1  # its message went out first: it finds no job
    services.clock.advance(60)  # type: ignore[attr-defined]
    run_worker(services, worker_handler)
    assert _queue_depth(services) == 0 and _calls(fake_model, "never stored") == 0


def test_1_a_message_that_arrives_before_its_job_is_stored_waits_for_it(services: Services) -> None:
    job_id = "job_01JAAAAAAAAAAAAAAAAAAAAAA9"
    sent_at = services.clock()

    assert asyncio.run(services.worker.run(job_id, sent_at=sent_at)) == RetryIn(1)
    services.clock.advance(40)  # type: ignore[attr-defined]
    assert asyncio.run(services.worker.run(job_id, sent_at=sent_at)) == DONE  # never stored: dropped


def test_1_a_message_whose_job_is_stored_a_moment_later_runs_it_in_the_same_delivery(
        services: Services, fake_model: UvicornThread) -> None:
    # As a batch's messages go out before its jobs are stored: the job item appears 0.15 s into the delivery.
    assert services.worker.slots is not None  # (limits on: the worker reads a job's state before its claim)
    job_id = _submit(services, "stored late")
    key = job_key(job_id)
    item = services.table.get_item(Key=key)["Item"]
    services.table.delete_item(Key=key)
    late = threading.Timer(0.15, services.table.put_item, kwargs={"Item": item})
    late.start()
    try:
        assert asyncio.run(services.worker.run(job_id, sent_at=services.clock())) == DONE
    finally:
        late.join()
    assert _status(services, job_id).status == "completed" and _calls(fake_model, "stored late") == 1


def test_2_a_schedule_fire_that_failed_before_its_message_went_out_is_made_good_by_its_retry(
        api: Any, services: Services, worker_handler: Any) -> None:
    from aijobs.local.stack import load_handler

    schedule = api.post("/v1/schedules", json={"expression": "rate(1 hour)", "job": {"input": "nightly"}}).json()
    fire = {"schedule_id": schedule["id"], "tenant": TENANT_A, "scheduled_time": "2026-12-01T09:00:00Z"}
    handler = load_handler("scheduler", "lambda_handler")
    with sqs_down(services), pytest.raises(Exception):  # noqa: B017  (Lambda retries a fire that raised)
        handler(fire, FakeLambdaContext("SchedulerFunction"))
    assert api.get(f"/v1/jobs?schedule_id={schedule['id']}").json()["data"] == []

    assert handler(fire, FakeLambdaContext("SchedulerFunction"))["outcome"] == "created"
    assert handler(fire, FakeLambdaContext("SchedulerFunction"))["outcome"] == "duplicate"
    run_worker(services, worker_handler)
    (job,) = api.get(f"/v1/jobs?schedule_id={schedule['id']}").json()["data"]
    assert job["status"] == "completed"


def test_3_a_batch_whose_third_send_fails_stores_nothing_and_its_retry_runs_each_job_once(
        api: Any, services: Services, worker_handler: Any, fake_model: UvicornThread) -> None:
    sends = {"n": 0}

    def third(params: dict[str, Any]) -> bool:
        sends["n"] += 1
        return sends["n"] == 3

    body = {"jobs": [{"input": f"batch item {i}"} for i in range(100)]}
    remove = fail_calls(services.sqs, "SendMessageBatch", when=third,
                        error=lambda op: client_error("InternalError", op))
    try:
        first = api.post("/v1/jobs/batch", json=body, headers={"Idempotency-Key": "batch-1"})
    finally:
        remove()
    assert first.status_code == 503 and api.get("/v1/jobs").json()["data"] == []

    again = api.post("/v1/jobs/batch", json=body, headers={"Idempotency-Key": "batch-1"})
    replay = api.post("/v1/jobs/batch", json=body, headers={"Idempotency-Key": "batch-1"})
    assert again.status_code == 202 and replay.json() == again.json()
    ids = [d["id"] for d in again.json()["data"]]
    services.clock.advance(60)  # type: ignore[attr-defined]  # the first try's 20 messages find no job
    for _ in range(20):
        if run_worker(services, worker_handler)["received"] == 0:
            break
    assert {services.jobs.get_job(tenant=TENANT_A, job_id=i).status for i in ids} == {"completed"}
    assert [_calls(fake_model, f"batch item {i}") for i in range(100)] == [1] * 100


# --- 4, 5, 6: a worker that dies ---------------------------------------------------------------------------------


def test_4_a_duplicate_that_arrives_while_a_dead_workers_lease_holds_takes_the_job_over_after_it(
        services: Services, worker_handler: Any, fake_model: UvicornThread) -> None:
    job_id = _submit(services, "orphaned run")
    worker_died_holding(services, job_id)
    services.jobs.queue.send_job(job_id)  # SQS delivers a copy (at least once)
    held.clear()

    assert run_invocation(services, worker_handler) == "ok"
    assert len(held) == 1 and _queue_depth(services) == 2  # the copy is kept back, not deleted
    assert _status(services, job_id).status == "in_progress"

    services.clock.advance(services.settings.job_lease_s + 10)  # type: ignore[attr-defined]
    services.sqs.change_message_visibility(QueueUrl=services.settings.jobs_queue_url, ReceiptHandle=held[0],
                                           VisibilityTimeout=0)  # its delay is over
    run_invocation(services, worker_handler)
    job = _status(services, job_id)
    assert (job.status, job.attempt) == ("completed", 2) and _calls(fake_model, "orphaned run") == 1


def test_5_a_job_that_kills_the_worker_every_time_costs_only_its_own_attempts(
        services: Services, worker_handler: Any, killer: KillingProvider, fake_model: UvicornThread) -> None:
    crasher = _submit(services, "poison pill [[kill]]")
    healthy = [_submit(services, f"healthy mate {i}") for i in range(9)]

    outcomes = []
    for _ in range(2 * services.settings.max_attempts + 10):
        services.clock.advance(services.settings.job_lease_s + 1)  # type: ignore[attr-defined]
        outcome = run_invocation(services, worker_handler)
        outcomes.append(outcome)
        if outcome == "empty":
            break
    assert outcomes[-1] == "empty"

    assert [_status(services, i).status for i in healthy] == ["completed"] * 9
    # Its first death costs the mates whose calls had begun in that batch (they start together) one more call;
    # its later attempts run alone, and cost them nothing (without that, each of its 4 deaths would).
    assert all(_calls(fake_model, f"healthy mate {i}") in (1, 2) for i in range(9))
    dead = _status(services, crasher)
    assert (dead.status, dead.error.code, dead.error.retryable) == ("failed", "attempts_exhausted", False)
    assert killer.kills == services.settings.max_attempts  # it ran on each of its attempts, and no more


def test_6_a_job_whose_worker_died_runs_again_one_sweep_after_its_lease(
        services: Services, worker_handler: Any, fake_model: UvicornThread) -> None:
    job_id = _submit(services, "after a death")
    worker_died_holding(services, job_id)  # its message stays in flight for the queue's 5400 s

    assert services.sweeper.sweep().resent == 0  # the lease holds: nothing to repair
    services.clock.advance(services.settings.job_lease_s + 1)  # type: ignore[attr-defined]
    assert services.sweeper.sweep().resent == 1
    assert services.sweeper.sweep().resent == 0  # repaired once per period, not once per sweep
    run_invocation(services, worker_handler)

    assert _status(services, job_id).status == "completed" and _calls(fake_model, "after a death") == 1


# --- 8, 9: what the worker reads ---------------------------------------------------------------------------------


def test_8_a_job_this_version_cannot_read_fails_with_a_typed_error_and_reads_as_one(
        api: Any, services: Services, worker_handler: Any) -> None:
    job_id = api.post("/v1/jobs", json={"input": "from the future"}).json()["id"]
    services.table.update_item(Key={"pk": f"JOB#{job_id}", "sk": "JOB"}, UpdateExpression="SET #r = :r",
                               ExpressionAttributeNames={"#r": "request"},
                               ExpressionAttributeValues={":r": {"prompt_v9": "a shape this version never wrote"}})

    read = api.get(f"/v1/jobs/{job_id}")
    assert read.status_code == 200 and read.json()["error"]["code"] == "job_unreadable"
    run_worker(services, worker_handler)

    job = api.get(f"/v1/jobs/{job_id}").json()
    assert (job["status"], job["error"]["code"], job["attempt"]) == ("failed", "job_unreadable", 1)
    assert _queue_depth(services) == 0


@pytest.mark.parametrize(("retry_after", "at_least_s"), [
    ("[[retry_after=30]]", 30),
    ("[[retry_after_ms=45000]]", 45),
    ("an HTTP date 90 s ahead", 85),
])
def test_9_a_providers_retry_after_is_waited_for_in_any_form(services: Services, retry_after: str,
                                                            at_least_s: int) -> None:
    if retry_after.startswith("an HTTP date"):
        retry_after = f"[[retry_after={format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)}]]"
    job_id = _submit(services, f"busy {retry_after} [[fail=429,times=1]]")

    outcome = asyncio.run(services.worker.run(job_id))

    assert isinstance(outcome, RetryIn) and at_least_s <= outcome.seconds <= at_least_s + 10
    assert _status(services, job_id).status == "queued"


def test_9_a_retry_after_beyond_what_the_deployment_waits_fails_the_job_clearly(services: Services) -> None:
    job_id = _submit(services, "come back tomorrow [[retry_after=86400]] [[fail=429]]")

    assert asyncio.run(services.worker.run(job_id)) == DONE

    job = _status(services, job_id)
    assert (job.status, job.error.type, job.error.code) == ("failed", "provider_rate_limited", "retry_after_too_long")
    assert "86400" in job.error.message and job.attempt == 1


# --- the dead-letter queue ---------------------------------------------------------------------------------------


def test_a_job_whose_message_reached_the_dead_letter_queue_fails_and_its_webhook_goes_out(
        services: Services) -> None:
    job_id = _submit(services, "dead letter", callback_url="https://hooks.example.com/x")
    dlq = services.settings.jobs_dead_letter_queue_url
    services.sqs.send_message(QueueUrl=dlq, MessageBody=json.dumps({"job_id": job_id}))

    assert services.sweeper.sweep().dead_lettered == 1
    job = _status(services, job_id)
    assert (job.status, job.error.code, job.error.retryable) == ("failed", "dead_lettered", False)
    assert _queue_depth(services, services.settings.deliveries_queue_url) == 1
    assert _queue_depth(services, dlq) == 1  # kept for the operator
    assert services.sweeper.sweep().dead_lettered == 0
