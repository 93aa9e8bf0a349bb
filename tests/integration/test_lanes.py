"""Priority lanes: every path that sends a job's message sends it to its priority's queue (moto, from template.yaml).

A job's ``priority`` picks its lane: submit, batch, deferral, retry, schedule fires, a parked job's release and the
sweeper's re-sends all keep it, a message's visibility is changed on the queue it came from, and the sweeper reads
every lane's dead-letter queue.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3

from aijobs.concurrency import TenantSlots
from aijobs.local.pollers import FakeLambdaContext, sqs_event
from aijobs.local.stack import load_handler
from aijobs.local.template import LocalResources
from aijobs.models.jobs import JobRequest, Priority
from aijobs.models.tenants import TenantLimits
from aijobs.services import Services
from tests.helpers import load_event
from tests.integration.conftest import TENANT_A

AWS = tuple[boto3.session.Session, LocalResources]
QUEUES: dict[Priority, str] = {"high": "JobsHighQueue", "normal": "JobsQueue", "low": "JobsLowQueue"}


def _url(services: Services, lane: Priority) -> str:
    return services.settings.jobs_queue_urls[lane]


def _ids_in(services: Services, lane: Priority) -> list[str]:
    """The job ids of the lane's visible messages (each received, then made visible again)."""
    ids: list[str] = []
    handles: list[str] = []
    while batch := services.sqs.receive_message(QueueUrl=_url(services, lane), MaxNumberOfMessages=10,
                                                VisibilityTimeout=30).get("Messages", []):
        ids += [json.loads(m["Body"])["job_id"] for m in batch]
        handles += [m["ReceiptHandle"] for m in batch]
    for handle in handles:
        services.sqs.change_message_visibility(QueueUrl=_url(services, lane), ReceiptHandle=handle,
                                               VisibilityTimeout=0)
    return ids


def _delayed(services: Services, lane: Priority) -> int:
    attributes = services.sqs.get_queue_attributes(QueueUrl=_url(services, lane),
                                                   AttributeNames=["ApproximateNumberOfMessagesDelayed"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessagesDelayed"])


def _lanes(services: Services) -> dict[Priority, list[str]]:
    return {lane: _ids_in(services, lane) for lane in QUEUES}


def _run_lane(services: Services, aws: AWS, lane: Priority) -> dict[str, Any]:
    """One worker invocation on what the lane's queue holds, as its event source mapping makes it (the record names
    the lane's queue ARN); successes are deleted."""
    _, resources = aws
    url = _url(services, lane)
    messages = services.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]).get(
        "Messages", [])
    handler = load_handler("worker", "lambda_handler")
    result = dict(handler(sqs_event(messages, resources.arns[QUEUES[lane]]), FakeLambdaContext("WorkerFunction")))
    failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
    for m in messages:
        if m["MessageId"] not in failed:
            services.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return result


@contextmanager
def _visibility_changes(services: Services) -> Iterator[list[str]]:
    """The queue URL of every ChangeMessageVisibility the services' SQS client makes meanwhile."""
    urls: list[str] = []

    def note(params: dict[str, Any], **_: Any) -> None:
        urls.append(params["QueueUrl"])

    events = services.sqs.meta.events
    events.register("provide-client-params.sqs.ChangeMessageVisibility", note)
    try:
        yield urls
    finally:
        events.unregister("provide-client-params.sqs.ChangeMessageVisibility", note)


def test_each_job_is_sent_to_its_lanes_queue_and_shows_its_priority(api: Any, services: Services) -> None:
    jobs = {lane: api.post("/v1/jobs", json={"input": f"a {lane} job", "priority": lane}).json() for lane in QUEUES}
    unset = api.post("/v1/jobs", json={"input": "no priority"}).json()

    assert {lane: job["priority"] for lane, job in jobs.items()} == {lane: lane for lane in QUEUES}
    assert unset["priority"] == "normal" and api.get(f"/v1/jobs/{jobs['high']['id']}").json()["priority"] == "high"
    assert _lanes(services) == {"high": [jobs["high"]["id"]], "normal": [jobs["normal"]["id"], unset["id"]],
                                "low": [jobs["low"]["id"]]}


def test_an_unknown_priority_is_refused_and_nothing_is_sent(api: Any, services: Services) -> None:
    response = api.post("/v1/jobs", json={"input": "urgent!", "priority": "urgent"})

    assert response.status_code == 422
    assert _lanes(services) == {"high": [], "normal": [], "low": []}


def test_a_batch_sends_each_item_to_its_lane_in_batches_of_ten(api: Any, services: Services) -> None:
    lanes: list[Priority] = ["low"] * 12 + ["high"] * 11 + ["normal"] * 2
    items = [{"input": f"item {i}", "priority": lane} for i, lane in enumerate(lanes)]

    answer = api.post("/v1/jobs/batch", json={"jobs": items})

    assert answer.status_code == 202
    ids = [item["id"] for item in answer.json()["data"]]
    sent = _lanes(services)
    assert {lane: sorted(found) for lane, found in sent.items()} == {
        lane: sorted(i for i, item_lane in zip(ids, lanes, strict=True) if item_lane == lane) for lane in QUEUES}


def test_a_deferred_job_waits_in_its_lane(api: Any, services: Services) -> None:
    services.tenants.set_limits(TENANT_A, TenantLimits(tokens_per_minute=1500))
    api.post("/v1/jobs", json={"input": "hi", "max_output_tokens": 1000})

    job = api.post("/v1/jobs", json={"input": "hi", "max_output_tokens": 1000, "on_limit": "defer",
                                     "priority": "low"}).json()

    assert job["status_details"]["reason"] == "tokens_per_minute"
    assert (_delayed(services, "low"), _delayed(services, "normal")) == (1, 0)
    # Delivered early (the minute is still full): deferred again, its message sent again with a delay, to its lane
    asyncio.run(services.worker.run(job["id"]))
    assert api.get(f"/v1/jobs/{job['id']}").json()["status"] == "queued"
    assert (_delayed(services, "low"), _delayed(services, "normal")) == (2, 0)


def test_a_retry_and_a_schedules_fire_keep_the_priority(api: Any, services: Services, aws: AWS) -> None:
    failed = api.post("/v1/jobs", json={"input": "refused [[fail=400]]", "priority": "high"}).json()
    _run_lane(services, aws, "high")
    assert api.get(f"/v1/jobs/{failed['id']}").json()["status"] == "failed"

    retry = api.post(f"/v1/jobs/{failed['id']}/retry").json()
    schedule = api.post("/v1/schedules", json={"expression": "rate(1 hour)",
                                               "job": {"input": "digest", "priority": "low"}}).json()
    event = {**load_event("scheduler_fire"), "schedule_id": schedule["id"], "tenant": TENANT_A}
    load_handler("scheduler", "lambda_handler")(event, FakeLambdaContext("SchedulerFunction"))

    fired = api.get(f"/v1/jobs?schedule_id={schedule['id']}").json()["data"]
    assert retry["priority"] == "high" and [job["priority"] for job in fired] == ["low"]
    assert _lanes(services) == {"high": [retry["id"]], "normal": [], "low": [fired[0]["id"]]}


def test_a_parked_job_is_released_to_its_lane(services: Services, aws: AWS) -> None:
    services.tenants.set_limits(TENANT_A, TenantLimits(concurrent_jobs=1))
    [running] = [TenantSlots(table=services.table, clock=services.clock).take(
        TENANT_A, limit=1, lease_s=services.settings.job_lease_s)]
    job = services.jobs.submit_job(tenant=TENANT_A, request=JobRequest(input="parked", priority="high")).id

    _run_lane(services, aws, "high")  # its tenant is full: parked, its message deleted
    assert _lanes(services) == {"high": [], "normal": [], "low": []}

    services.worker._give_back_slots([running])  # the running job ends: its worker gives its slot back
    assert _lanes(services) == {"high": [job], "normal": [], "low": []}


def test_a_tenants_parked_jobs_are_released_high_first_then_normal_then_low_each_oldest_first(
        services: Services, aws: AWS) -> None:
    services.tenants.set_limits(TENANT_A, TenantLimits(concurrent_jobs=1))
    [running] = [TenantSlots(table=services.table, clock=services.clock).take(
        TENANT_A, limit=1, lease_s=services.settings.job_lease_s)]
    order: list[Priority] = ["low", "normal", "high", "low", "normal", "high"]  # as submitted, oldest first
    jobs = [services.jobs.submit_job(tenant=TENANT_A, request=JobRequest(input=f"parked {i}", priority=lane)).id
            for i, lane in enumerate(order)]
    for lane in QUEUES:
        _run_lane(services, aws, lane)  # its tenant is full: every one parks
    assert _lanes(services) == {"high": [], "normal": [], "low": []}

    released = []
    for _ in jobs:  # one slot given back at a time: one job released at a time
        services.worker._give_back_slots([running])
        [(lane, [job])] = [(lane, ids) for lane, ids in _lanes(services).items() if ids]
        released.append(job)
        services.sqs.purge_queue(QueueUrl=_url(services, lane))  # (it ran and ended: its slot is given back next)
        running = TenantSlots(table=services.table, clock=services.clock).take(
            TENANT_A, limit=1, lease_s=services.settings.job_lease_s)

    assert released == [jobs[2], jobs[5], jobs[1], jobs[4], jobs[0], jobs[3]]


def test_the_sweeper_sends_a_stuck_job_again_to_its_lane(services: Services) -> None:
    job = services.jobs.submit_job(tenant=TENANT_A, request=JobRequest(input="stuck", priority="low")).id
    # Its worker received its message, claimed it and died.
    [message] = services.sqs.receive_message(QueueUrl=_url(services, "low"))["Messages"]
    services.sqs.delete_message(QueueUrl=_url(services, "low"), ReceiptHandle=message["ReceiptHandle"])
    assert services.store.claim_job(job, lease_s=services.settings.job_lease_s).job is not None
    services.clock.advance(services.settings.job_lease_s + services.settings.sweep_grace_s + 1)  # type: ignore[attr-defined]

    assert services.sweeper.sweep().resent == 1
    assert _lanes(services) == {"high": [], "normal": [], "low": [job]}


def test_the_sweeper_fails_the_dead_lettered_jobs_of_every_lane(services: Services) -> None:
    jobs = {lane: services.jobs.submit_job(tenant=TENANT_A, request=JobRequest(input="dead", priority=lane)).id
            for lane in QUEUES}
    dead_letter_queues = {"high": services.settings.jobs_high_dead_letter_queue_url,
                          "normal": services.settings.jobs_dead_letter_queue_url,
                          "low": services.settings.jobs_low_dead_letter_queue_url}
    for lane, url in dead_letter_queues.items():
        services.sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"job_id": jobs[lane]}))

    assert services.sweeper.sweep().dead_lettered == 3
    assert {lane: services.jobs.get_job(tenant=TENANT_A, job_id=job).error.code  # type: ignore[union-attr]
            for lane, job in jobs.items()} == {lane: "dead_lettered" for lane in QUEUES}


def test_a_message_to_come_back_later_has_its_visibility_changed_on_its_own_queue(
        services: Services, aws: AWS) -> None:
    jobs = {lane: services.jobs.submit_job(tenant=TENANT_A, request=JobRequest(
        input=f"flaky {lane} [[fail=500,times=1]]", priority=lane)).id for lane in ("high", "low")}

    with _visibility_changes(services) as urls:
        results = {lane: _run_lane(services, aws, lane) for lane in jobs}

    assert {lane: len(result["batchItemFailures"]) for lane, result in results.items()} == {"high": 1, "low": 1}
    assert urls == [_url(services, "high"), _url(services, "low")]
